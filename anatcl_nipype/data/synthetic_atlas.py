"""A SYNTHETIC parcellation on the CAT12 1.5 mm grid, for tests and the demo.

No real atlas can be downloaded here, so this module cuts the MNI space into
left/right boxes (coordinate ranges in mm) and keeps only the voxels where the
grey-matter template has grey matter. The names (``lFrontalPole``,
``rMedialTemporal``, ...) say roughly where each box lies; the boxes follow no
anatomical boundary and must not be used as anatomy.

Labels alternate left/right as in CAT12's atlases: ``lX`` gets an odd index,
``rX`` the next even one.

>>> table = region_table()
>>> table[:2]
[(1, 'lCerebellum'), (2, 'rCerebellum')]
>>> len(table)
34
"""

import numpy as np

#: Grey-matter probability above which a template voxel can belong to a region.
GM_THRESHOLD = 0.1

#: One hemisphere's boxes, in priority order (the first box that holds a voxel wins):
#: (name, (|x| min, |x| max), (y min, y max), (z min, z max)), MNI mm, half-open ranges.
HEMISPHERE_BOXES = (
    ("Cerebellum", (0, 90), (-126, -40), (-72, -20)),
    ("MedialTemporal", (12, 40), (-42, 0), (-40, -8)),
    ("TemporalPole", (20, 70), (0, 30), (-50, -10)),
    ("DeepGrey", (0, 28), (-35, 25), (-15, 22)),
    ("Insula", (28, 44), (-30, 30), (-12, 22)),
    ("Orbitofrontal", (0, 90), (10, 90), (-40, -5)),
    ("FrontalPole", (0, 90), (50, 90), (-5, 108)),
    ("Cingulate", (0, 14), (-60, 50), (-5, 45)),
    ("MedialFrontal", (0, 20), (10, 50), (45, 108)),
    ("InferiorFrontal", (20, 90), (10, 50), (-5, 25)),
    ("SuperiorFrontal", (20, 90), (10, 50), (25, 108)),
    ("Sensorimotor", (0, 90), (-40, 10), (40, 108)),
    ("Precuneus", (0, 20), (-85, -40), (10, 108)),
    ("SuperiorParietal", (20, 90), (-85, -40), (35, 108)),
    ("InferiorParietal", (35, 90), (-70, -20), (10, 40)),
    ("LateralTemporal", (40, 90), (-70, 10), (-50, 10)),
    ("Occipital", (0, 90), (-126, -70), (-20, 108)),
)


def region_table():
    """Return the atlas's ``(index, name)`` pairs, left/right interleaved.

    >>> region_table()[-1]
    (34, 'rOccipital')
    """
    table = []
    for position, (name, *_ranges) in enumerate(HEMISPHERE_BOXES):
        table.append((2 * position + 1, f"l{name}"))
        table.append((2 * position + 2, f"r{name}"))
    return table


def make_synthetic_atlas(template, affine):
    """Label the template's grey matter with the boxes of :data:`HEMISPHERE_BOXES`.

    Parameters
    ----------
    template : ndarray
        Grey-matter probabilities (0..1) on the grid described by ``affine``.
    affine : ndarray
        4x4 voxel-to-MNI-mm matrix of that grid.

    Returns an ``int16`` label image of the template's shape: 0 outside the
    boxes or where the template holds less than :data:`GM_THRESHOLD`.

    >>> import numpy as np
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> affine[:3, 3] = [-40.0, -100.0, -60.0]
    >>> labels = make_synthetic_atlas(np.ones((41, 101, 81)), affine)
    >>> int(labels[0, 0, 0])  # x=-40, y=-100, z=-60: left cerebellum box
    1
    >>> sorted(np.unique(labels).tolist())[:4]
    [0, 1, 2, 3]
    """
    x, y, z = _voxel_coordinates(template.shape, affine)
    labels = np.zeros(template.shape, dtype=np.int16)
    has_grey_matter = template > GM_THRESHOLD
    for position, (_name, abs_x, y_range, z_range) in enumerate(HEMISPHERE_BOXES):
        in_box = (_between(np.abs(x), abs_x) & _between(y, y_range) & _between(z, z_range)
                  & has_grey_matter & (labels == 0))
        labels[in_box & (x < 0)] = 2 * position + 1
        labels[in_box & (x >= 0)] = 2 * position + 2
    return labels


def _voxel_coordinates(shape, affine):
    """Return the MNI x, y, z (mm) of every voxel, each as an array of ``shape``."""
    grid = np.indices(shape, dtype=np.float64)
    return [affine[axis, 3] + sum(affine[axis, k] * grid[k] for k in range(3))
            for axis in range(3)]


def _between(values, bounds):
    low, high = bounds
    return (values >= low) & (values < high)
