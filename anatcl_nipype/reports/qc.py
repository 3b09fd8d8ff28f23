"""Automatic checks a person would otherwise do by eye.

- **Registration** (:func:`map_checks`): the cropped grey-matter map is compared with the
  MNI152 grey-matter prior nilearn ships (resampled onto the CAT12 grid, cropped as the
  encoder crops). For the correlation both are halved in resolution and smoothed (about
  8 mm FWHM) so the comparison tolerates anatomy that differs between people but not a
  misplaced brain: a map whose Pearson correlation with the prior is below
  :data:`MIN_PRIOR_CORRELATION`, or whose (unsmoothed) Dice overlap with it (map above
  30 % of its 99th percentile, prior above 0.3) is below :data:`MIN_PRIOR_DICE`, is
  flagged. On the synthetic cohort a correct map scores r 0.99, Dice 0.99; shifted by 5
  voxels (7.5 mm) r 0.78; by 10 voxels r 0.53; by 25 voxels (37 mm, a failed
  normalisation) r 0.0-0.12, Dice 0.38-0.45.
- **Intensities** (:func:`intensity_flags`): modulated GM density of CAT12 lies about 0-1.
- **CAT12 image quality** (:func:`iqr_flag`): CAT12's IQR mark (1 best, 6 worst), shown as
  CAT12 shows it: a percentage rating ``105 - 10 * mark`` and a letter grade; grades worse
  than C (rating below :data:`MIN_IQR_RATING` %) are flagged.
- **Embedding outliers** (:func:`embedding_outlier_scores`): a robust z-score of each
  embedding's distance to the cohort's median embedding, flagged beyond :data:`OUTLIER_Z`.

>>> import numpy as np
>>> intensity_flags(np.full((4, 4, 4), 0.3, np.float32))
[]
>>> iqr_grade(1.2), iqr_flag(1.6), iqr_flag(4.2)
('A', '', 'CAT12 image quality 63.0 % (grade D, IQR mark 4.20) is below 70 %')
"""

import functools

import numpy as np

from anatcl_nipype.files import atomic_write

#: Mean grey-matter density of a typical mwp1 map lies well inside this range.
TYPICAL_MEAN_GM = (0.05, 0.6)
#: Modulated GM density is about 0-1; a maximum above this means a wrong input image.
MAX_GM_DENSITY = 1.5
MIN_PRIOR_CORRELATION = 0.7
MIN_PRIOR_DICE = 0.6
#: CAT12 ratings below this percentage (grade D or worse) are flagged.
MIN_IQR_RATING = 70.0
#: Embeddings whose robust z-score of distance to the cohort exceeds this are flagged.
OUTLIER_Z = 3.5
#: Fewest participants for an outlier score.
MIN_OUTLIER_COHORT = 5
_SMOOTH_SIGMA_VOXELS = 1.7  # on the half-resolution (3 mm) grid: about 8 mm FWHM
_GRADES = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (50, "E"))


@functools.lru_cache(maxsize=1)
def template_prior():
    """nilearn's MNI152 GM prior on the encoder's cropped 121x128x121 grid (read-only).

    Resampling the template costs about a second (more on a busy machine), so it is done
    once per machine and nilearn version and kept in :func:`prior_cache_path`.
    """
    path = prior_cache_path()
    try:
        prior = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        prior = _resampled_prior()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp, open(tmp, "wb") as stream:
            np.save(stream, prior)
    prior.setflags(write=False)
    return prior


def prior_cache_path():
    """``<home>/reports/mni152-gm-prior_nilearn-<version>.npy``, where the prior is kept.

    >>> prior_cache_path().name.startswith("mni152-gm-prior_nilearn-")
    True
    """
    from importlib.metadata import version

    from anatcl_nipype.encoder.weights import home_dir

    return home_dir() / "reports" / f"mni152-gm-prior_nilearn-{version('nilearn')}.npy"


def _resampled_prior():
    from anatcl_nipype.encoder.templates import load_gm_template
    from anatcl_nipype.encoder.volumes import crop_to_anatcl

    return np.ascontiguousarray(crop_to_anatcl(np.asarray(load_gm_template())), np.float32)


@functools.lru_cache(maxsize=1)
def _smoothed_prior():
    return _smoothed(template_prior())


def _smoothed(volume):
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(volume[::2, ::2, ::2], np.float32),
                                   _SMOOTH_SIGMA_VOXELS)


def prior_agreement(volume):
    """``(correlation, dice)`` of a cropped GM map with the template prior."""
    prior, smooth_prior = template_prior(), _smoothed_prior()
    smooth = _smoothed(volume)
    inside = (smooth_prior > 0.05) | (smooth > 0.05 * max(float(smooth.max()), 1e-12))
    if smooth[inside].std() == 0:
        return 0.0, 0.0
    correlation = float(np.corrcoef(smooth[inside], smooth_prior[inside])[0, 1])
    positive = volume[volume > 0]
    scale = float(np.percentile(positive, 99)) if positive.size else 1.0
    in_map, in_prior = volume > 0.3 * scale, prior > 0.3
    total = int(in_map.sum()) + int(in_prior.sum())
    dice = 2.0 * int((in_map & in_prior).sum()) / total if total else 0.0
    return correlation, dice


def intensity_flags(volume):
    """Reasons a cropped grey-matter map's intensities look odd (empty when they do not)."""
    flags = []
    inside = volume[volume > 0]
    mean = float(inside.mean()) if inside.size else 0.0
    if not TYPICAL_MEAN_GM[0] <= mean <= TYPICAL_MEAN_GM[1]:
        flags.append(f"mean GM density {mean:.2f} outside {TYPICAL_MEAN_GM[0]}-"
                     f"{TYPICAL_MEAN_GM[1]}")
    if float(volume.max()) > MAX_GM_DENSITY:
        flags.append(f"maximum {float(volume.max()):.2f} > {MAX_GM_DENSITY} "
                     "(modulated GM is about 0-1)")
    return flags


def map_checks(volume):
    """``{"correlation", "dice", "flags"}`` of a cropped GM map (see the module docstring)."""
    correlation, dice = prior_agreement(volume)
    flags = intensity_flags(volume)
    if correlation < MIN_PRIOR_CORRELATION:
        flags.append(f"correlation with the MNI GM prior {correlation:.2f} < "
                     f"{MIN_PRIOR_CORRELATION} (misregistered or not a GM map?)")
    if dice < MIN_PRIOR_DICE:
        flags.append(f"overlap (Dice) with the MNI GM prior {dice:.2f} < {MIN_PRIOR_DICE}")
    return {"correlation": correlation, "dice": dice, "flags": flags}


def iqr_rating(mark):
    """CAT12's percentage rating of a quality mark (1 best): ``105 - 10 * mark``, 0-100."""
    return float(min(100.0, max(0.0, 105.0 - 10.0 * float(mark))))


def iqr_grade(mark):
    """CAT12's letter grade (A best .. F) of a quality mark."""
    rating = iqr_rating(mark)
    return next((letter for bound, letter in _GRADES if rating >= bound), "F")


def iqr_flag(mark):
    """A flag when CAT12's IQR grade is worse than C; empty otherwise."""
    rating = iqr_rating(mark)
    if rating >= MIN_IQR_RATING:
        return ""
    return (f"CAT12 image quality {rating:.1f} % (grade {iqr_grade(mark)}, IQR mark "
            f"{float(mark):.2f}) is below {MIN_IQR_RATING:.0f} %")


def embedding_outlier_scores(matrix):
    """Robust outlier score of each row of ``matrix`` (one embedding per participant).

    The Euclidean distance of each embedding to the cohort's median embedding, as a
    robust z-score against the other distances (median and MAD scaled by 1.4826); flagged
    beyond :data:`OUTLIER_Z` (Iglewicz and Hoaglin's cut-off for modified z-scores).
    Median and MAD rather than a covariance: a cohort has far fewer participants than the
    512 dimensions, and one outlier must not drag the reference towards itself. Returns
    NaN scores with fewer than :data:`MIN_OUTLIER_COHORT` rows.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 64)); X[7] += 3
    >>> [int(i) for i in np.flatnonzero(embedding_outlier_scores(X) > OUTLIER_Z)]
    [7]
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape[0] < MIN_OUTLIER_COHORT:
        return np.full(matrix.shape[0], np.nan)
    distances = np.linalg.norm(matrix - np.median(matrix, axis=0), axis=1)
    centre = np.median(distances)
    spread = 1.4826 * np.median(np.abs(distances - centre))
    return (distances - centre) / max(spread, 1e-12 * max(centre, 1e-12))
