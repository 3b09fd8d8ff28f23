"""What the training loops read: grey-matter maps streamed from disk, regional descriptors,
ages and fine-tuning labels, each checked against the number of volumes."""

import reprlib

import numpy as np
import torch
from torch.nn import functional as F

from anatcl_nipype.encoder.volumes import (
    CAT12_SHAPE,
    check_volume_values,
    crop_to_anatcl,
    load_cat12_volume,
)
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.training.descriptors import RegionalDescriptors


class VolumeDataset(torch.utils.data.Dataset):
    """Grey-matter maps as ``(index, (1, X, Y, Z) float32 tensor)``, read when asked for.

    A path is read with :func:`~anatcl_nipype.encoder.volumes.load_cat12_volume`
    (checked, cropped to 121x128x121); an array is used as it is (cropped if on the
    CAT12 grid). ``volume_size`` (an int or 3 ints) resizes by averaging (``area``).

    >>> import numpy as np
    >>> dataset = VolumeDataset([np.ones((121, 145, 121), np.float32)], volume_size=16)
    >>> index, volume = dataset[0]
    >>> index, tuple(volume.shape)
    (0, (1, 16, 16, 16))
    """

    def __init__(self, volumes, volume_size=None):
        self.volumes = list(volumes)
        self.volume_size = check_volume_size(volume_size)

    def __len__(self):
        return len(self.volumes)

    def __getitem__(self, index):
        volume = torch.from_numpy(read_volume(self.volumes[index]))[None]
        if self.volume_size:
            volume = F.interpolate(volume[None], size=self.volume_size, mode="area")[0]
        return index, volume


def check_volume_size(volume_size):
    if volume_size is None:
        return None
    size = (volume_size,) * 3 if isinstance(volume_size, int) else tuple(volume_size)
    if len(size) != 3 or not all(isinstance(side, int) and side >= 8 for side in size):
        raise AnatCLError(f"volume_size must be None (full size), an integer >= 8 or 3 of "
                          f"them, got {volume_size!r}")
    return size


def read_volume(item):
    if not isinstance(item, np.ndarray):
        return load_cat12_volume(item)
    volume = np.asarray(item, dtype=np.float32)
    volume = crop_to_anatcl(volume) if volume.shape == CAT12_SHAPE else volume
    check_volume_values(volume)
    return np.ascontiguousarray(volume)


def descriptor_values(descriptors, n_subjects):
    names = {}
    if isinstance(descriptors, RegionalDescriptors):
        names = {"anat_atlas": descriptors.atlas, "anat_regions": list(descriptors.regions),
                 "anat_measures": list(descriptors.measures)}
        descriptors = descriptors.values
    values = torch.as_tensor(np.asarray(descriptors, dtype=np.float64))
    if values.ndim == 0 or len(values) != n_subjects:
        raise AnatCLError(f"descriptors of shape {tuple(values.shape)} for {n_subjects} "
                          "volumes: give one row of regional measures per volume, same order")
    if n_subjects < 2:
        raise AnatCLError(f"{n_subjects} volume(s): training needs at least 2 subjects")
    return values, names


def check_ages(ages, n_subjects):
    if ages is None:
        return None
    ages = torch.as_tensor(np.asarray(ages, dtype=np.float64))
    if tuple(ages.shape) != (n_subjects,) or not torch.isfinite(ages).all():
        raise AnatCLError(f"ages must be {n_subjects} finite numbers, one per volume, got "
                          f"{reprlib.repr(ages.tolist())}")
    return ages


def finetune_targets(labels, task, n_subjects):
    labels = np.asarray(labels)
    if labels.shape != (n_subjects,):
        raise AnatCLError(f"labels of shape {labels.shape} for {n_subjects} volumes: give one "
                          "label per volume, in the same order")
    if n_subjects < 2:
        raise AnatCLError(f"{n_subjects} volume(s): training needs at least 2 subjects")
    if task == "classification":
        classes, indices = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise AnatCLError(f"every label is {str(classes[0])!r}: classification needs 2 classes "
                              "or more")
        return torch.as_tensor(indices), {"classes": [str(c) for c in classes]}
    values = labels.astype(np.float64)
    if not np.isfinite(values).all() or values.std() == 0:
        raise AnatCLError("regression labels must be finite numbers that are not all equal")
    mean, std = float(values.mean()), float(values.std())
    return torch.as_tensor((values - mean) / std, dtype=torch.float32), {
        "target_mean": mean, "target_std": std}
