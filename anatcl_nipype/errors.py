"""The one exception family of anatcl-nipype.

Every error a user can cause with a bad file or option is an :class:`AnatCLError`
whose message says what was wrong, in which file, and what to do about it.

>>> from anatcl_nipype.errors import VolumeError
>>> try:
...     raise VolumeError("sub-01.nii: 4D image; pass one 3D grey-matter map")
... except AnatCLError as err:
...     print(err)
sub-01.nii: 4D image; pass one 3D grey-matter map
"""


class AnatCLError(Exception):
    """Base class: a problem with the user's input, files or options."""


class VolumeError(AnatCLError):
    """A grey-matter map that cannot be used as AnatCL input."""


class CheckpointError(AnatCLError):
    """A weights file that is not a usable AnatCL checkpoint."""


class WeightsError(CheckpointError):
    """A checkpoint whose tensors or metadata are not what an AnatCL network holds.

    Raised at load time, naming the file and the key: sparse, meta or non-strided
    tensors, integer weights, NaN/inf values, wrong shapes, metadata of odd types.
    """


class WeightsDownloadError(AnatCLError):
    """Released weights that cannot be downloaded or verified."""


class RegionalError(AnatCLError):
    """A region-wise measures file (CAT12 XML, FreeSurfer stats, atlas) that cannot be read."""


class PredictionError(AnatCLError):
    """Labels, features or a model file that cannot be used for prediction."""
