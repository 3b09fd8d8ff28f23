"""torch's CPU threads: the one place that sets them, safe in forked processes.

PyTorch's CPU build runs its parallel regions on a GNU OpenMP thread pool, and that pool does
not survive ``fork()``: a child forked after its parent ran any parallel torch operation
blocks forever in its first parallel region with more than one thread (seen with Nipype's
MultiProc, whose workers are forked by default on Linux). Nothing in OpenMP can repair the
pool in the child, so the rules are:

- workers that run torch are started from a process that never ran it: the command line
  starts MultiProc's workers from a forkserver (:mod:`anatcl_nipype.cli.worker_template`,
  which marks itself a clean template with :func:`mark_clean_template`);
- a process forked from one that had imported torch (it may have run a parallel region;
  which one cannot be told from outside) runs torch with one thread, with a warning that
  says how to get more (:func:`set_torch_threads`). One thread gives the same embeddings.

The fork hooks are installed when :mod:`anatcl_nipype` is imported; this module imports
neither torch nor anything heavy.

>>> forked_after_torch()  # this process was not forked from a torch user
False
"""

import logging
import os
import sys

LOGGER = logging.getLogger("anatcl_nipype.threads")
#: How a user of Nipype's MultiProc avoids forked workers.
FORKSERVER_HINT = ("run MultiProc with plugin_args={'mp_context': 'forkserver'} (the "
                   "command line does) to use more")

_clean_template = False  # this process only imports: its forked children may use threads
_torch_at_fork = False  # set in the parent just before each fork
_inherited_torch = False  # this process was forked from one that had imported torch
_warned = False


def mark_clean_template():
    """Declare this process a clean template: it imports torch but never runs it, so the
    processes forked from it may use torch's thread pool (the command line's forkserver)."""
    global _clean_template
    _clean_template = True


def forked_after_torch():
    """Whether this process was forked from one that had imported torch."""
    return _inherited_torch


def set_torch_threads(num_threads=None):
    """Set torch's CPU threads for this process (``None``: keep torch's choice) and return
    how many it runs with: one in a process forked after torch was used (see the module).

    >>> set_torch_threads(1)
    1
    """
    import torch

    if _inherited_torch:
        if num_threads is None or int(num_threads) > 1:
            _warn_once(num_threads or torch.get_num_threads())
        num_threads = 1
    if num_threads:
        torch.set_num_threads(int(num_threads))
    return torch.get_num_threads()


def _warn_once(asked):
    global _warned
    if not _warned:
        _warned = True
        LOGGER.warning(
            "process %d was forked from one that had used PyTorch: torch runs with 1 thread "
            "instead of %s here, since its thread pool deadlocks in a forked process; %s",
            os.getpid(), asked, FORKSERVER_HINT)


def _before_fork():
    global _torch_at_fork
    _torch_at_fork = "torch" in sys.modules and not _clean_template


def _after_fork_in_child():
    global _inherited_torch, _clean_template, _warned
    _clean_template, _warned = False, False
    if _torch_at_fork or _inherited_torch:
        _inherited_torch = True
        sys.modules["torch"].set_num_threads(1)  # before any code here can use the pool


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
