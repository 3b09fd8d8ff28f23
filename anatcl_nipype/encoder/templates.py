"""Real templates on the CAT12 grid: nilearn's MNI152 grey-matter template, which the report
draws as the prior contour and the synthetic cohort starts from (nilearn ships it: nothing
is downloaded).

>>> load_gm_template().shape
(121, 145, 121)
"""

import functools

import numpy as np

from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE


@functools.lru_cache(maxsize=1)
def load_gm_template():
    """nilearn's MNI152 GM template (1 mm), resampled (linear) onto the CAT12 grid.

    Returns a read-only float32 array of shape 121x145x121 with values in 0..1.
    Cached: only the first call in a process pays the resampling.
    """
    from nilearn import datasets, image

    template = datasets.load_mni152_gm_template(resolution=1)
    resampled = image.resample_img(template, target_affine=CAT12_AFFINE,
                                   target_shape=CAT12_SHAPE, interpolation="linear")
    data = np.clip(resampled.get_fdata(dtype=np.float32), 0.0, 1.0)
    data.setflags(write=False)
    return data
