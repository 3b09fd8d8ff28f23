"""Random views of grey-matter volumes for contrastive pretraining (y-Aware's crop and cutout).

The released AnatCL weights were trained without augmentation (``tf_none`` in their run
names): the two views of a subject are the same volume. These are the y-Aware
(Dufumier et al., MICCAI 2021) transforms, as an option:

- ``crop``: keep a random box of :data:`CROP_FRACTION` of each side, zero everything
  else and move the box to the centre (y-Aware's random crop, padded back to full size);
- ``cutout``: zero a random box of :data:`CUTOUT_FRACTION` of each side.

Each named transform is applied to every view; each view draws its own boxes from the
``generator`` passed in, so a seeded generator gives the same views again.

>>> import torch
>>> volumes = torch.ones(2, 1, 8, 8, 8)
>>> views = augment_batch(volumes, ("cutout",), torch.Generator().manual_seed(0))
>>> views.shape, int((views == 0).sum())      # a 2x2x2 box zeroed in each volume
(torch.Size([2, 1, 8, 8, 8]), 16)
"""

import math

import torch

from anatcl_nipype.errors import AnatCLError

AUGMENTATIONS = ("crop", "cutout")
#: Side of the box ``crop`` keeps, as a fraction of each side (y-Aware: 75%).
CROP_FRACTION = 0.75
#: Side of the box ``cutout`` zeroes, as a fraction of each side (y-Aware: 25%).
CUTOUT_FRACTION = 0.25


def check_augmentations(names):
    """Return ``names`` as a tuple of known augmentations (``None`` gives ``()``).

    >>> check_augmentations(None), check_augmentations(["crop", "cutout"])
    ((), ('crop', 'cutout'))
    """
    names = () if names is None else (names,) if isinstance(names, str) else tuple(names)
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise AnatCLError(f"unknown augmentation(s) {', '.join(map(repr, unknown))}; choose "
                          f"from {', '.join(AUGMENTATIONS)}, or none (the released recipe)")
    return names


def augment_batch(volumes, names, generator):
    """Return one random view of every volume of a (B, C, X, Y, Z) batch."""
    for name in names:
        volumes = random_crop(volumes, generator) if name == "crop" else cutout(volumes, generator)
    return volumes


def random_crop(volumes, generator):
    """Keep a random box of 75% of each side of every volume, centred, zeros around it."""
    spatial = volumes.shape[2:]
    box = [math.ceil(CROP_FRACTION * side) for side in spatial]
    centred = _slices([(side - size) // 2 for side, size in zip(spatial, box)], box)
    views = torch.zeros_like(volumes)
    for index in range(len(volumes)):
        source = _slices(_random_corner(spatial, box, generator), box)
        views[(index, slice(None), *centred)] = volumes[(index, slice(None), *source)]
    return views


def cutout(volumes, generator):
    """Zero a random box of 25% of each side of every volume."""
    spatial = volumes.shape[2:]
    box = [max(1, math.ceil(CUTOUT_FRACTION * side)) for side in spatial]
    views = volumes.clone()
    for index in range(len(volumes)):
        views[(index, slice(None), *_slices(_random_corner(spatial, box, generator), box))] = 0
    return views


def _random_corner(spatial, box, generator):
    return [int(torch.randint(0, side - size + 1, (), generator=generator))
            for side, size in zip(spatial, box)]


def _slices(corner, box):
    return [slice(start, start + size) for start, size in zip(corner, box)]
