"""Grey-matter volume per label of any atlas image on the grid of a CAT12 GM map.

On CAT12's modulated map (``mwp1``) the sum of the voxel values in a region times the
voxel volume is the region's grey-matter volume, the ``Vgm`` CAT12 writes to
``catROI_*.xml`` for its own atlases. :func:`atlas_gm_volumes` computes it for any
integer label image with one :func:`numpy.bincount` pass over the voxels.

>>> import numpy as np, nibabel as nib
>>> affine = np.diag([1.5, 1.5, 1.5, 1.0])
>>> gm = nib.Nifti1Image(np.full((4, 4, 4), 0.5, dtype=np.float32), affine)
>>> labels = np.zeros((4, 4, 4), dtype=np.int16); labels[:2] = 7
>>> rm = atlas_gm_volumes(gm, nib.Nifti1Image(labels, affine), atlas_name="demo")
>>> rm.ids, rm.measures["Vgm"].tolist(), rm.measures["mean_gm"].tolist()
((7,), [0.054], [0.5])
"""

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np

from anatcl_nipype.encoder.volumes import read_nifti
from anatcl_nipype.errors import RegionalError, VolumeError
from anatcl_nipype.regional.measures import RegionMeasures, read_bounded

#: Largest difference (mm) between two affines that still counts as the same grid.
GRID_TOLERANCE_MM = 1e-3
#: Above this label value, labels are renumbered before counting (keeps memory small).
_DIRECT_LABEL_LIMIT = 1 << 20
_TABLE_ID_COLUMNS = ("index", "ROIid")
_TABLE_NAME_COLUMNS = ("name", "ROIabbr")


def atlas_gm_volumes(gm_map, atlas, label_table=None, atlas_name=None, resample=False):
    """Grey-matter volume (``Vgm``, cm3) and mean density (``mean_gm``) per atlas label.

    Parameters
    ----------
    gm_map : str, Path or nibabel image
        A CAT12 modulated grey-matter map (``mwp1``); NaN voxels are refused.
    atlas : str, Path or nibabel image
        An integer label image; 0 is background and is left out.
    label_table : str, Path, (ids, names) or None
        Regions to report, in this order (see :func:`read_label_table`). Labels of the
        image that the table does not list are ignored, as CAT12 does; labels the table
        lists but the image lacks get ``Vgm`` 0.0 and ``mean_gm`` NaN. Without a table
        every label present is reported, in increasing order, named ``ROI<id>``.
    atlas_name : str or None
        Name of the atlas in the result; the atlas file's name when None.
    resample : bool
        An atlas on another grid (shape or affine) than the GM map is refused unless
        True, then it is resampled nearest-neighbour onto the GM map's grid
        (:func:`nibabel.processing.resample_from_to`, order 0; voxels beyond the atlas'
        field of view get label 0).

    ``Vgm`` is the sum of GM values in the region times the voxel volume in mm3 / 1000.
    """
    gm_image, gm_name = _load(gm_map, "grey-matter map")
    atlas_image, atlas_label = _load(atlas, "atlas")
    atlas_name = atlas_name or _stem(atlas_image.get_filename())
    gm = _volume_data(gm_image, gm_name)
    if np.issubdtype(gm.dtype, np.floating) and np.isnan(gm).any():
        raise RegionalError(f"{gm_name}: the grey-matter map has NaN voxels; CAT12 maps "
                            "have none, so check how this map was made")
    if not _same_grid(gm.shape, gm_image.affine, atlas_image):
        if not resample:
            raise RegionalError(_grid_message(gm_name, gm.shape, gm_image.affine,
                                              atlas_label, atlas_image))
        atlas_image = _resample_nearest(atlas_image, gm.shape, gm_image.affine)
    labels = _label_data(atlas_image, atlas_label)
    index, sums, counts = _sums_and_counts(labels.ravel(), gm.ravel())
    ids, names = _regions(index, counts, label_table)
    region_sums, region_counts = _per_region(ids, index, sums, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gm = region_sums / region_counts  # NaN where a label has no voxel
    voxel_mm3 = abs(np.linalg.det(gm_image.affine[:3, :3]))
    return RegionMeasures(
        atlas_name, tuple(int(i) for i in ids), names,
        {"Vgm": region_sums * voxel_mm3 / 1000.0, "mean_gm": mean_gm},
        {"Vgm": "cm3", "mean_gm": ""}, gm_name)


def read_label_table(path):
    """Read region ids and names from a label table; returns ``(ids, names)`` tuples.

    Understood formats: a TSV with ``index`` and ``name`` columns (BIDS ``dseg.tsv``),
    CAT12's atlas CSV (``ROIid;ROIabbr;ROIname;...``, names from ``ROIabbr``), and text
    look-up tables with ``#`` comments: ``index name`` lines, FreeSurfer's
    ``index name R G B A`` and FSLeyes' ``index R G B name``.

    >>> import tempfile, pathlib
    >>> lut = pathlib.Path(tempfile.mkdtemp()) / "FreeSurferColorLUT.txt"
    >>> _ = lut.write_text("#No. Label Name: R G B A\\n17 Left-Hippocampus 220 216 20 0\\n")
    >>> read_label_table(lut)
    ((17,), ('Left-Hippocampus',))
    """
    lines = read_bounded(path, "label table").decode("utf-8", errors="replace").splitlines()
    content = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    header = re.split(r"[\t;]", content[0]) if content else []
    if any(column.strip() in _TABLE_ID_COLUMNS for column in header):
        entries = _table_entries(content, path)
    else:
        entries = [_lut_entry(line, path) for line in content]
    if not entries:
        raise RegionalError(f"{path}: no regions in the label table")
    ids = [region_id for region_id, _ in entries]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise RegionalError(f"{path}: label id(s) {duplicates} listed more than once")
    return tuple(ids), tuple(name for _, name in entries)


def _load(image, what):
    """A nibabel image and its name; a path is read with its header checked first."""
    if isinstance(image, (str, Path)):
        try:
            return read_nifti(image), str(image)
        except VolumeError as err:
            reason = str(err).removeprefix(f"{Path(image)}: ")
            raise RegionalError(f"{image}: cannot read the {what}: {reason}") from None
    return image, image.get_filename() or f"<in-memory {what}>"


def _volume_data(image, name):
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RegionalError(f"{name}: a {data.ndim}D image of shape {data.shape}; "
                            "pass one 3D image")
    return data


def _label_data(image, name):
    labels = _volume_data(image, name)
    whole = np.issubdtype(labels.dtype, np.integer) or np.all(
        np.isfinite(labels) & (labels == np.round(labels)))
    if not whole:
        raise RegionalError(f"{name}: the atlas has non-integer values; pass an integer "
                            "label image (a probabilistic atlas needs thresholding first)")
    if labels.size and labels.min() < 0:
        raise RegionalError(f"{name}: the atlas has negative labels; labels must be >= 0")
    return labels.astype(np.intp, copy=False)


def _sums_and_counts(labels, gm):
    """Sorted label values present or not, with their GM sums and voxel counts."""
    max_label = int(labels.max(initial=0))
    if max_label <= _DIRECT_LABEL_LIMIT:
        index, codes = np.arange(max_label + 1), labels
    else:
        index, codes = np.unique(labels, return_inverse=True)
    sums = np.bincount(codes, weights=gm, minlength=len(index))
    counts = np.bincount(codes, minlength=len(index))
    return index, sums, counts


def _per_region(ids, index, sums, counts):
    """GM sums and voxel counts of ``ids``; 0 for ids absent from ``index``."""
    position = np.minimum(np.searchsorted(index, ids), len(index) - 1)
    present = index[position] == ids
    return np.where(present, sums[position], 0.0), np.where(present, counts[position], 0)


def _regions(index, counts, label_table):
    if label_table is None:
        ids = index[(counts > 0) & (index != 0)]
        return ids, tuple(f"ROI{region_id:03d}" for region_id in ids)
    if isinstance(label_table, (str, Path)):
        label_table = read_label_table(label_table)
    ids, names = label_table
    keep = [i for i, region_id in enumerate(ids) if region_id != 0]
    return (np.array([ids[i] for i in keep], dtype=np.intp),
            tuple(str(names[i]) for i in keep))


def _same_grid(shape, affine, other):
    return (tuple(other.shape[:3]) == tuple(shape)
            and np.allclose(other.affine, affine, rtol=0, atol=GRID_TOLERANCE_MM))


def _grid_message(gm_name, shape, affine, atlas_name, atlas_image):
    atlas_grid = _describe_grid(atlas_image.shape[:3], atlas_image.affine)
    return (f"{atlas_name}: the atlas is on another grid ({atlas_grid}) than the "
            f"grey-matter map {gm_name} ({_describe_grid(shape, affine)}); pass "
            "resample=True to resample the atlas nearest-neighbour onto the map's grid")


def _describe_grid(shape, affine):
    rows = "; ".join(" ".join(f"{value:g}" for value in row) for row in np.round(affine[:3], 4))
    return f"shape {tuple(int(n) for n in shape)}, affine [{rows}]"


def _resample_nearest(atlas_image, shape, affine):
    """Nearest-neighbour labels on the target grid; 0 beyond the atlas' outer voxel edges."""
    from nibabel.processing import resample_from_to  # imports scipy.ndimage: only when needed

    return resample_from_to(atlas_image, (shape, affine), order=0, mode="grid-constant",
                            cval=0)


def _table_entries(content, path):
    try:
        return _dict_entries(content, path)
    except csv.Error as err:  # e.g. a field beyond csv's size limit
        raise RegionalError(f"{path}: not a readable label table ({err})") from None


def _dict_entries(content, path):
    delimiter = "\t" if "\t" in content[0] else ";"
    reader = csv.DictReader(content, delimiter=delimiter)
    id_column = next(c for c in _TABLE_ID_COLUMNS if c in reader.fieldnames)
    name_column = next((c for c in _TABLE_NAME_COLUMNS if c in reader.fieldnames), None)
    if name_column is None:
        raise RegionalError(f"{path}: the label table has no 'name' (or CAT12 'ROIabbr') "
                            "column")
    return [(_label_id(row[id_column], path), (row[name_column] or "").strip())
            for row in reader]


def _lut_entry(line, path):
    tokens = line.split()
    region_id = _label_id(tokens[0], path)
    rest = tokens[1:]
    if len(rest) == 5 and all(_is_number(token) for token in rest[1:]):
        return region_id, rest[0]  # FreeSurfer: index name R G B A
    if len(rest) >= 4 and all(_is_number(token) for token in rest[:3]):
        return region_id, " ".join(rest[3:])  # FSLeyes: index R G B name
    if not rest:
        raise RegionalError(f"{path}: line {line.strip()!r} has an id but no name")
    return region_id, " ".join(rest)


def _label_id(text, path):
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise RegionalError(f"{path}: label id {text!r} is not a non-negative integer")
    return int(value)


def _is_number(token):
    try:
        float(token)
    except ValueError:
        return False
    return True


def _stem(filename):
    if not filename:
        return "atlas"
    return re.sub(r"\.nii(\.gz)?$", "", Path(filename).name)
