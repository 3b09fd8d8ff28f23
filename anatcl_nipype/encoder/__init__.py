"""AnatCL encoder: network, checkpoints, released weights, CAT12 input and batched inference.

Inference only: training lives in :mod:`anatcl_nipype.training`. Nothing here imports
Nipype, nor :mod:`~anatcl_nipype.regional`, :mod:`~anatcl_nipype.training` or
:mod:`~anatcl_nipype.prediction`. Names are imported on first use, so that torch-free modules
(``volumes``, ``weights``, ``embedding_files``) can be used without importing torch.

>>> from anatcl_nipype.encoder import CAT12_SHAPE
>>> CAT12_SHAPE
(121, 145, 121)
"""

from anatcl_nipype.lazy_exports import lazy_exports

_EXPORTS = {
    "checkpoint": ("Checkpoint", "load_checkpoint", "make_random_network", "save_checkpoint",
                   "write_random_checkpoint"),
    "model": ("AnatCLNetwork", "ResNet3d18"),
    "runner": ("AnatCLEncoder", "Encoded", "load_network", "resolve_device"),
    "volumes": ("ANATCL_SHAPE", "CAT12_AFFINE", "CAT12_SHAPE", "crop_to_anatcl",
                "load_cat12_volume"),
    "weights": ("cached_weights_path", "fetch_weights", "list_weights", "weights_url"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
