"""Training AnatCL: the contrastive loss, anatomical descriptors, augmentation, the loops.

Pretraining and fine-tuning write checkpoints in the official format that
:mod:`anatcl_nipype.encoder` loads for inference; the encoder imports nothing from here.
Names are imported on first use (torch is imported only by the modules that need it).

>>> from anatcl_nipype.training import AnatCLLoss
>>> AnatCLLoss.__module__
'anatcl_nipype.training.loss'
"""

from anatcl_nipype.lazy_exports import lazy_exports

_EXPORTS = {
    "loss": ("AnatCLLoss", "normalise_descriptors"),
    "loops": ("pretrain", "finetune", "TrainingResult"),
    "records": ("EpochRecord",),
    "data": ("VolumeDataset",),
    "descriptors": ("RegionalDescriptors", "descriptors_from_table"),
    "augment": ("augment_batch", "check_augmentations"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
