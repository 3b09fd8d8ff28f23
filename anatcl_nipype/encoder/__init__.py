"""AnatCL encoder: network, checkpoints, released weights, CAT12 input and batched inference.

Everything here imports torch; nothing here imports Nipype.
"""

from anatcl_nipype.encoder.checkpoint import (
    Checkpoint,
    load_checkpoint,
    make_random_network,
    save_checkpoint,
    write_random_checkpoint,
)
from anatcl_nipype.encoder.model import AnatCLNetwork, ResNet3d18
from anatcl_nipype.encoder.runner import AnatCLEncoder, Encoded, load_network, resolve_device
from anatcl_nipype.encoder.volumes import ANATCL_SHAPE, CAT12_AFFINE, CAT12_SHAPE, crop_to_anatcl, load_cat12_volume
from anatcl_nipype.encoder.weights import cached_weights_path, fetch_weights, list_weights, weights_url

__all__ = [
    "ANATCL_SHAPE", "CAT12_AFFINE", "CAT12_SHAPE", "AnatCLEncoder", "AnatCLNetwork", "Checkpoint",
    "Encoded", "ResNet3d18", "cached_weights_path", "crop_to_anatcl", "fetch_weights",
    "list_weights", "load_cat12_volume", "load_checkpoint", "load_network", "make_random_network",
    "resolve_device", "save_checkpoint", "weights_url", "write_random_checkpoint",
]
