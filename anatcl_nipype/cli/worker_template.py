"""Imported by the forkserver that starts the command line's MultiProc workers.

It loads once what every worker needs (Nipype's engine, the interfaces, torch) and runs
none of it, so each worker forks ready to work and with a thread pool no parallel region
has touched (see :mod:`anatcl_nipype.threads`). Importing this module anywhere else only
marks that process a clean template: do not.
"""

from anatcl_nipype import threads
from anatcl_nipype.cli.supervision import stop_quietly_on_interrupt

threads.mark_clean_template()
stop_quietly_on_interrupt()  # before the forkserver ignores SIGINT: its children get these

import nipype.pipeline.engine  # noqa: E402,F401
import nipype.pipeline.plugins.multiproc  # noqa: E402,F401  (each worker's initializer)
import torch  # noqa: E402,F401

import anatcl_nipype.interfaces.bids  # noqa: E402,F401
import anatcl_nipype.interfaces.encoder  # noqa: E402,F401
import anatcl_nipype.interfaces.regional  # noqa: E402,F401
