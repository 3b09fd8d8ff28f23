"""The methods sentences of the region-wise measures, each written once.

The regional workflow's ``__desc__`` (from its arguments, before a run) and the report's
methods (from the regional tables' sidecars, after it) call the same functions, so the two
texts cannot disagree. Imports nothing heavy (only :mod:`anatcl_nipype.citations`):
workflows use it while they are built.

>>> print(regional_text(atlas_name="hammers"))  # doctest: +NORMALIZE_WHITESPACE
Region-wise measures estimated by CAT12 [@gaser2024cat] (grey-matter, white-matter and CSF
volumes per region of CAT12's volume atlases (catROI_*.xml); mean cortical thickness per
region of its surface atlases (catROIs_*.xml)) and its subject-level estimates (total
intracranial volume, image quality rating and tissue volumes from the CAT12 report,
cat_*.xml) were collected into one table per participant by anatcl-nipype.
The grey-matter volume of each region of the hammers atlas was computed as the sum of the
modulated grey-matter map (mwp1) over the region's voxels times the voxel volume.
"""

from anatcl_nipype.citations import cite

#: What each kind of CAT12 file adds to the table.
CAT12_VOLUME_TEXT = ("grey-matter, white-matter and CSF volumes per region of CAT12's volume "
                     "atlases (catROI_*.xml)")
CAT12_SURFACE_TEXT = "mean cortical thickness per region of its surface atlases (catROIs_*.xml)"
CAT12_REPORT_TEXT = ("total intracranial volume, image quality rating and tissue volumes from "
                     "the CAT12 report, cat_*.xml")
COLLECTED = "were collected into one table per participant by anatcl-nipype."


def cat12_rois_text(volume=True, surface=True, report=True):
    """What was read from CAT12's ROI files (``volume``: catROI, ``surface``: catROIs) and
    its report; a table none of them is known to have fed is said to come from CAT12's
    ROI files.

    >>> cat12_rois_text(volume=False, surface=False)[:58]
    "CAT12's subject-level estimates [@gaser2024cat] (total int"
    """
    kinds = [text for given, text in ((volume, CAT12_VOLUME_TEXT),
                                      (surface, CAT12_SURFACE_TEXT)) if given]
    if not kinds and report:
        return f"CAT12's subject-level estimates {cite('gaser2024cat')} ({CAT12_REPORT_TEXT}) " \
            + COLLECTED
    estimates = f" and its subject-level estimates ({CAT12_REPORT_TEXT})" if report else ""
    return (f"Region-wise measures estimated by CAT12 {cite('gaser2024cat')} "
            f"({'; '.join(kinds) or 'CAT12 ROI files'}){estimates} {COLLECTED}")


def atlas_volumes_text(atlas_name=None):
    """The grey-matter volume per region of a user's atlas (``AtlasGMVolumes``)."""
    return (f"The grey-matter volume of each region of the {atlas_name or 'user-supplied'} "
            "atlas was computed as the sum of the modulated grey-matter map (mwp1) over the "
            "region's voxels times the voxel volume.")


def pooled_features_text():
    """AnatCL's feature maps averaged within atlas regions (EXPLORATORY)."""
    return ("As an exploratory analysis, the intermediate feature maps of the AnatCL "
            "encoder were averaged within each atlas region (weighted by the fraction of "
            "each feature-map voxel's cell the region covers); these values show which "
            "regions the network's features respond to and are not a validated measure.")


def regional_text(*, cat12_rois=True, atlas=False, atlas_name=None, pooled_features=False,
                  volume=True, surface=True, report=True, sep="\n"):
    """The regional methods, one sentence per step that ran, joined by ``sep``.

    ``atlas`` (true, e.g. the atlas image's path) or ``atlas_name`` says a user's atlas was
    measured; ``volume``, ``surface`` and ``report`` say which CAT12 files were read.

    >>> print(regional_text(cat12_rois=False, atlas="atlas.nii.gz", pooled_features=True))
    ... # doctest: +NORMALIZE_WHITESPACE
    The grey-matter volume of each region of the user-supplied atlas was computed as the sum
    of the modulated grey-matter map (mwp1) over the region's voxels times the voxel volume.
    As an exploratory analysis, the intermediate feature maps of the AnatCL encoder were
    averaged within each atlas region (weighted by the fraction of each feature-map voxel's
    cell the region covers); these values show which regions the network's features respond
    to and are not a validated measure.
    """
    parts = [cat12_rois_text(volume, surface, report)] if cat12_rois else []
    if atlas or atlas_name is not None:
        parts.append(atlas_volumes_text(atlas_name))
    if pooled_features:
        parts.append(pooled_features_text())
    return sep.join(parts)
