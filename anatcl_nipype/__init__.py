"""AnatCL, the anatomical foundation model for structural brain MRI, as Nipype nodes.

The package is layered (imports only go downward)::

    cli/  ->  workflows/  ->  interfaces/  ->  training/  ->  encoder/ regional/ prediction/
                                                          ->  inputs, options, bids, files, errors

Importing :mod:`anatcl_nipype` is cheap: torch, scikit-learn and niworkflows are
imported only by the modules that need them.

>>> import anatcl_nipype
>>> anatcl_nipype.__version__ != ""
True
"""

__version__ = "0.1.0"

from anatcl_nipype import threads  # noqa: E402,F401  (fork hooks: see threads)
from anatcl_nipype.errors import AnatCLError  # noqa: E402
from anatcl_nipype.options import EncoderOptions  # noqa: E402

__all__ = ["AnatCLError", "EncoderOptions", "__version__"]
