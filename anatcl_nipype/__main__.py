"""``python -m anatcl_nipype`` is the ``anatcl-nipype`` command."""

import sys

from anatcl_nipype.cli.main import main

sys.exit(main())
