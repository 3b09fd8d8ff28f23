"""Anatomical descriptors for the AnatCL loss: regional measures as an (N, R, M) array.

AnatCL's kernel compares subjects by region-wise measures of one atlas (Desikan-Killiany:
cortical thickness, grey-matter volume, surface area). They come from the regional
measures table (:func:`~anatcl_nipype.regional.write_measures_tsv`), whose columns are
named ``<atlas>_<region>_<measure>``; this module picks one atlas and some measures and
returns the raw values, subjects x regions x measures. Normalising them is the training
loop's job (:func:`~anatcl_nipype.training.loss.normalise_descriptors`).

Missing values (``n/a``): a region with no value for any selected subject (e.g. the
medial-wall entries CAT12 writes as NaN in ``aparc_DK40``) is dropped and listed in
``dropped_regions``; any other missing value raises :class:`RegionalError` naming the
participants and columns, since imputing anatomy would invent similarities.

>>> import tempfile, pathlib
>>> tsv = pathlib.Path(tempfile.mkdtemp()) / "regional.tsv"
>>> _ = tsv.write_text("participant_id\\tdk_lA_CT\\tdk_lA_SA\\tdk_wall_CT\\tdk_wall_SA\\n"
...                    "sub-01\\t2.5\\t900\\tn/a\\tn/a\\nsub-02\\t2.7\\t950\\tn/a\\tn/a\\n")
>>> d = descriptors_from_table(tsv, "dk", ["CT", "SA"], ["sub-02", "sub-01"])
>>> d.values.shape, d.regions, d.dropped_regions
((2, 1, 2), ('lA',), ('wall',))
>>> d.values[0].tolist()
[[2.7, 950.0]]
"""

import re
from dataclasses import dataclass

import numpy as np

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional.tables import read_measures_tsv

#: How many offending participants/columns an error message lists.
LISTED = 6


@dataclass(frozen=True)
class RegionalDescriptors:
    """Raw regional measures of some participants: ``values[i, r, m]``, float64."""

    participant_ids: tuple
    atlas: str
    regions: tuple
    measures: tuple
    values: np.ndarray
    dropped_regions: tuple = ()


def descriptors_from_table(path, atlas, measures, participant_ids=None):
    """Read the ``atlas`` regions' ``measures`` of ``participant_ids`` from a measures TSV.

    Parameters
    ----------
    path : str or Path
        A regional measures table (``participant_id`` then ``<atlas>_<region>_<measure>``).
    atlas : str
        The atlas as spelled in the columns (``aparc_DK40``, ``aparc``, ``neuromorphometrics``).
    measures : list of str
        Measures as spelled in the columns (``thickness``; ``ThickAvg``, ``GrayVol``,
        ``SurfArea``; ``Vgm``), in the order wanted along the last axis.
    participant_ids : list of str, optional
        Rows to return, in this order (matched with or without the ``sub-`` prefix);
        default: every row of the table.

    Regions are in table order. Raises :class:`RegionalError` for absent participants,
    an atlas/measure with no column, a region lacking one of the measures, and missing
    values (see the module docstring).
    """
    measures = [measures] if isinstance(measures, str) else list(measures)
    if not measures:
        raise RegionalError("no measures asked for; name at least one (e.g. thickness)")
    table_ids, columns, table = read_measures_tsv(path)
    rows = _row_indices(table_ids, participant_ids, path)
    regions = _regions(columns, atlas, measures, path)
    position = {column: index for index, column in enumerate(columns)}
    picked = [[position[f"{atlas}_{region}_{measure}"] for measure in measures]
              for region in regions]
    values = table[rows][:, picked]
    empty = np.isnan(values).all(axis=0).any(axis=1)
    if empty.all():
        raise RegionalError(f"{path}: every {atlas} region has no value for some measure in "
                            f"{', '.join(measures)}; check the atlas and measures")
    _refuse_missing(values[:, ~empty], [table_ids[row] for row in rows],
                    [region for region, dropped in zip(regions, empty) if not dropped],
                    atlas, measures, path)
    return RegionalDescriptors(
        participant_ids=tuple(table_ids[row] for row in rows),
        atlas=atlas,
        regions=tuple(region for region, dropped in zip(regions, empty) if not dropped),
        measures=tuple(measures),
        values=values[:, ~empty],
        dropped_regions=tuple(region for region, dropped in zip(regions, empty) if dropped),
    )


def _subject(participant_id):
    return participant_id.removeprefix("sub-")


def _row_indices(table_ids, participant_ids, path):
    if participant_ids is None:
        return list(range(len(table_ids)))
    by_subject = {_subject(pid): row for row, pid in enumerate(table_ids)}
    missing = [pid for pid in participant_ids if _subject(pid) not in by_subject]
    if missing:
        raise RegionalError(f"{path}: no row for {len(missing)} participant(s): "
                            f"{', '.join(missing[:LISTED])}; extract their regional measures "
                            "or leave their maps out")
    return [by_subject[_subject(pid)] for pid in participant_ids]


def _regions(columns, atlas, measures, path):
    """Regions of ``atlas`` in table order; every one must have every measure."""
    found = {}
    for measure in measures:
        pattern = re.compile(rf"{re.escape(atlas)}_([A-Za-z0-9]+)_{re.escape(measure)}")
        found[measure] = [m.group(1) for m in map(pattern.fullmatch, columns) if m]
        if not found[measure]:
            raise RegionalError(f"{path}: no column {atlas}_<region>_{measure}; the columns "
                                f"look like {', '.join(columns[:3])}")
    regions = list(dict.fromkeys(region for measure in measures for region in found[measure]))
    for measure in measures:
        lacking = [region for region in regions if region not in found[measure]]
        if lacking:
            raise RegionalError(f"{path}: {atlas} region(s) {', '.join(lacking[:LISTED])} "
                                f"have no {measure} column; choose measures every region has")
    return regions


def _refuse_missing(values, participant_ids, regions, atlas, measures, path):
    subjects, regions_at, measures_at = np.nonzero(np.isnan(values))
    if len(subjects):
        cells = [f"{participant_ids[s]} {atlas}_{regions[r]}_{measures[m]}"
                 for s, r, m in zip(subjects[:LISTED], regions_at, measures_at)]
        raise RegionalError(f"{path}: {len(subjects)} missing value(s) (n/a) in the "
                            f"descriptors: {'; '.join(cells)}; re-extract those measures or "
                            "leave those participants out")
