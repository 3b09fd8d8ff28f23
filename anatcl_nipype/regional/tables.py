"""Region-wise measures as one wide table: a row per participant, a column per measure.

Columns are named ``<atlas>_<region>_<measure>`` (``lpba40_lSupFroG_Vgm``): the atlas and
measure as their source spells them, the region name reduced to letters and digits
(:func:`region_labels`). Column order is stable: atlases in the order given, then
regions in their file order, then measures in the order of ``measure_names`` when given,
else in the order of the source (``Vgm``, ``Vwm``... as CAT12 wrote them).

The TSV follows BIDS: tab-separated, ``participant_id`` first, missing values as
``n/a``, with a JSON sidecar describing every column. A table never holds ``inf``: an
infinite region value was made ``n/a`` on reading, with a warning the sidecar lists
under ``participant_id`` -> ``Warnings``; an infinite value given to the writer
directly, or found in a table read back, raises :class:`RegionalError`. Tables are read
up to :data:`~anatcl_nipype.regional.measures.MAX_FILE_BYTES`, sidecars up to
:data:`~anatcl_nipype.files.MAX_SIDECAR_BYTES` nested at most
:data:`~anatcl_nipype.files.MAX_SIDECAR_DEPTH` deep.

>>> from anatcl_nipype.regional.measures import RegionMeasures
>>> rm = RegionMeasures("lpba40", (165, 166), ("lHip", "rHip"),
...                     {"Vgm": [4.2, 4.1]}, {"Vgm": "cm3"}, "catROI_sub-01.xml")
>>> measures_to_row([rm])
{'lpba40_lHip_Vgm': 4.2, 'lpba40_rHip_Vgm': 4.1}
"""

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.files import (
    MAX_SIDECAR_BYTES,
    MAX_SIDECAR_DEPTH,
    JSONFileError,
    atomic_write,
    read_json_bounded,
    write_json_atomic,
)
from anatcl_nipype.regional.measures import (
    RegionMeasures,
    measure_description,
    read_bounded_text,
)

#: How a missing value is written (BIDS).
MISSING = "n/a"


def region_labels(names):
    """Region names reduced to ``[A-Za-z0-9]+``, kept unique and in order.

    Other characters are dropped; an empty result becomes ``region``; names that
    collide get their 1-based position appended.

    >>> region_labels(["Left Amygdala", "lG_and_S_cingul-Ant", "l???", "r???", "", "a-b", "ab"])
    ('LeftAmygdala', 'lGandScingulAnt', 'l', 'r', 'region', 'ab6', 'ab7')
    """
    base = [re.sub(r"[^A-Za-z0-9]+", "", str(name)) or "region" for name in names]
    counts = Counter(base)
    labels, taken = [], set()
    for position, label in enumerate(base, start=1):
        candidate = label if counts[label] == 1 else f"{label}{position}"
        while candidate in taken or (candidate != label and candidate in counts):
            candidate += "x"
        taken.add(candidate)
        labels.append(candidate)
    return tuple(labels)


def column_descriptions(measures, measure_names=None):
    """Describe the columns :func:`measures_to_row` makes, in the same order.

    Each description holds ``Atlas``, ``RegionID``, ``RegionName``, ``Measure``,
    ``Units``, ``Description`` and ``Source`` (the file the value came from).

    >>> from anatcl_nipype.regional.measures import RegionMeasures
    >>> rm = RegionMeasures("aparc", (1035,), ("lh_insula",), {"ThickAvg": [2.9]},
    ...                     {"ThickAvg": "mm"}, "lh.aparc.stats")
    >>> column_descriptions([rm])["aparc_lhinsula_ThickAvg"]["Units"]
    'mm'
    """
    descriptions = {}
    for rm, column, region, measure in _columns(measures, measure_names):
        descriptions[column] = {
            "Atlas": rm.atlas,
            "RegionID": rm.ids[region],
            "RegionName": rm.names[region],
            "Measure": measure,
            "Units": rm.units[measure],
            "Description": f"{measure_description(measure)} ({measure}) of region "
                           f"{rm.names[region]} (id {rm.ids[region]}) of atlas {rm.atlas}",
            "Source": rm.source,
        }
    return descriptions


def measures_to_row(measures, measure_names=None):
    """One participant's measures as ``{column: value}`` in the documented column order.

    ``measures`` is an iterable (or a dict, e.g. from
    :func:`~anatcl_nipype.regional.cat12_xml.read_cat12_roi_xml`) of
    :class:`RegionMeasures`; ``measure_names`` keeps only these measures, in this order.
    """
    return {column: float(rm.measures[measure][region])
            for rm, column, region, measure in _columns(measures, measure_names)}


def write_measures_tsv(rows, path, sidecar_path=None, measures=None, extra_sidecar=None):
    """Write participants' rows as one BIDS-style TSV plus its JSON sidecar, atomically.

    Parameters
    ----------
    rows : dict of participant_id to row
        Rows from :func:`measures_to_row`, in the order to write them.
    path : str or Path
        The ``.tsv`` to write.
    sidecar_path : str, Path or None
        The JSON sidecar; ``path`` with a ``.json`` suffix when None.
    measures : dict of participant_id to iterable of RegionMeasures, or None
        What the rows were made from. The sidecar describes each column from it (atlas,
        region id and name, measure, units, description, as :func:`column_descriptions`)
        and lists each participant's source files once, under
        ``participant_id`` -> ``Sources``, rather than repeating them in every column.
        Columns it does not describe get a generic description.
    extra_sidecar : dict or None
        Entries added to the sidecar, replacing those of the same key: descriptions of
        columns that do not come from ``measures`` (``cat12_TIV``), or file-level
        provenance (``Sources``, ``GeneratedBy``).

    Columns are the union over participants: each new column is placed right after the
    column that precedes it in the participant's row, so regions of one atlas stay
    together. A value a participant lacks is written ``n/a``. Returns the two paths.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "regional.tsv"
    >>> _ = write_measures_tsv({"sub-01": {"a_r1_Vgm": 1.5}, "sub-02": {"a_r2_Vgm": 2.0}}, out)
    >>> for line in out.read_text().splitlines():
    ...     print(line.split("\\t"))
    ['participant_id', 'a_r1_Vgm', 'a_r2_Vgm']
    ['sub-01', '1.5', 'n/a']
    ['sub-02', 'n/a', '2.0']
    """
    path = Path(path)
    sidecar_path = Path(sidecar_path) if sidecar_path else path.with_suffix(".json")
    columns = _union_of_columns(rows.values())
    _write_table(rows, columns, path)
    write_json_atomic(sidecar_path, {**_sidecar(columns, measures or {}), **(extra_sidecar or {})})
    return path, sidecar_path


def merge_measures_tables(paths, path, sidecar_paths=(), sidecar_path=None):
    """Merge tables of :func:`write_measures_tsv` into one, rows joined by participant_id.

    Rows of the same participant in several tables (the CAT12 ROI and the atlas
    measures of one subject) become one row; other participants get their own row, in
    the order they first appear. Columns are the union, in a stable order (as
    :func:`write_measures_tsv`); a value a participant lacks is ``n/a``. The same
    column with two different values for one participant raises :class:`RegionalError`
    naming both tables. The sidecars (``sidecar_paths``, optional) are merged: each
    column keeps its first description, participants' sources and provenance lists
    are united. Returns the paths of the table and its sidecar.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a, _ = write_measures_tsv({"sub-01": {"x_r1_Vgm": 1.5}}, folder / "a.tsv")
    >>> b, _ = write_measures_tsv({"sub-01": {"cat12_TIV": 1400.0},
    ...                            "sub-02": {"x_r1_Vgm": 2.5}}, folder / "b.tsv")
    >>> merged, _ = merge_measures_tables([a, b], folder / "group.tsv")
    >>> for line in merged.read_text().splitlines():
    ...     print(line.split("\\t"))
    ['participant_id', 'x_r1_Vgm', 'cat12_TIV']
    ['sub-01', '1.5', '1400.0']
    ['sub-02', '2.5', 'n/a']
    """
    path = Path(path)
    sidecar_path = Path(sidecar_path) if sidecar_path else path.with_suffix(".json")
    rows, origin = {}, {}
    for table in paths:
        participant_ids, columns, values = read_measures_tsv(table)
        for participant_id, line in zip(participant_ids, values):
            row = rows.setdefault(participant_id, {})
            for column, value in zip(columns, line.tolist()):
                _merge_value(row, column, value, origin, (participant_id, column), table)
    columns = _union_of_columns(rows.values())
    _write_table(rows, columns, path)
    sidecar = {}
    for source in sidecar_paths:
        sidecar = _merged(sidecar, _read_sidecar(source))
    for column in columns:
        sidecar.setdefault(column, {"Description": f"region-wise measure {column}", "Units": ""})
    write_json_atomic(sidecar_path, sidecar)
    return path, sidecar_path


def report_to_row(report):
    """Subject-level columns from :func:`~anatcl_nipype.regional.read_cat12_report`.

    ``cat12_TIV`` (cm3), ``cat12_IQR`` (when the report rates it) and the absolute tissue
    volumes ``cat12_vol_abs_<CSF|GM|WM|WMH|SL>`` (cm3). Returns ``(row, descriptions)``,
    the descriptions keyed by column as a sidecar holds them.

    >>> row, descriptions = report_to_row({"tiv_cm3": 1450.0, "abs_volumes_cm3": {"GM": 640.0},
    ...                                    "quality_ratings": {"IQR": 2.1}})
    >>> row, descriptions["cat12_TIV"]["Units"]
    ({'cat12_TIV': 1450.0, 'cat12_IQR': 2.1, 'cat12_vol_abs_GM': 640.0}, 'cm3')
    """
    row = {"cat12_TIV": report["tiv_cm3"]}
    descriptions = {"cat12_TIV": {
        "Description": "total intracranial volume (CAT12 report subjectmeasures/vol_TIV)",
        "Units": "cm3"}}
    if "IQR" in report["quality_ratings"]:
        row["cat12_IQR"] = report["quality_ratings"]["IQR"]
        descriptions["cat12_IQR"] = {
            "Description": "CAT12 image quality rating (qualityratings/IQR: weighted "
                           "average of noise and resolution ratings; 1 is best)",
            "Units": ""}
    for component, volume in report["abs_volumes_cm3"].items():
        row[f"cat12_vol_abs_{component}"] = volume
        descriptions[f"cat12_vol_abs_{component}"] = {
            "Description": f"absolute {component} volume (CAT12 report "
                           "subjectmeasures/vol_abs_CGW)",
            "Units": "cm3"}
    return row, descriptions


def read_measures_tsv(path):
    """Read a TSV from :func:`write_measures_tsv`: ``(participant_ids, columns, values)``.

    ``values`` is a float64 array (participants x columns) with NaN for ``n/a``.

    >>> import tempfile, pathlib
    >>> tsv = pathlib.Path(tempfile.mkdtemp()) / "regional.tsv"
    >>> _ = tsv.write_text("participant_id\\ta_r1_Vgm\\nsub-01\\tn/a\\nsub-02\\t2.5\\n")
    >>> read_measures_tsv(tsv)
    (['sub-01', 'sub-02'], ['a_r1_Vgm'], array([[nan],
           [2.5]]))
    """
    lines = read_bounded_text(path, "table").splitlines()
    try:
        table = list(csv.reader(lines, delimiter="\t"))
    except csv.Error as err:
        raise RegionalError(f"{path}: not a tab-separated table ({err})") from None
    if not table or not table[0] or table[0][0] != "participant_id":
        raise RegionalError(f"{path}: the first column must be participant_id; "
                            "not a regional measures table")
    columns = table[0][1:]
    participant_ids, values = [], []
    for line_number, fields in enumerate(table[1:], start=2):
        if len(fields) != len(columns) + 1:
            raise RegionalError(f"{path}, line {line_number}: {len(fields)} fields for "
                                f"{len(columns) + 1} columns")
        participant_ids.append(fields[0])
        values.append([_parse_value(text, path, line_number) for text in fields[1:]])
    matrix = np.array(values, dtype=np.float64).reshape(len(participant_ids), len(columns))
    return participant_ids, columns, matrix


def _write_table(rows, columns, path):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["participant_id", *columns])
    for participant_id, row in rows.items():
        writer.writerow([participant_id, *(_format(row.get(column), path, participant_id, column)
                                           for column in columns)])
    with atomic_write(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _merge_value(row, column, value, origin, key, table):
    """Put ``value`` in ``row``; NaN never replaces a value, two values must agree."""
    known = row.get(column, math.nan)
    if math.isnan(value):
        row.setdefault(column, value)
    elif math.isnan(known):
        row[column] = value
        origin[key] = table
    elif known != value:
        raise RegionalError(f"{table}: {column} of {key[0]} is {value!r}, but "
                            f"{origin[key]} gives {known!r}; measures of one participant "
                            "must agree (name atlases apart, or pass distinct participant "
                            "ids, e.g. sub-01_ses-1)")


def _read_sidecar(path):
    try:
        return read_json_bounded(path, max_bytes=MAX_SIDECAR_BYTES, max_depth=MAX_SIDECAR_DEPTH,
                                 what="JSON sidecar")
    except JSONFileError as error:
        raise RegionalError(f"{error}; pass the sidecar this package wrote beside the "
                            "table") from None


def _merged(first, second):
    """Dicts merged recursively; lists united in order; otherwise ``first`` wins."""
    if isinstance(first, dict) and isinstance(second, dict):
        merged = dict(first)
        for key, value in second.items():
            merged[key] = _merged(first[key], value) if key in first else value
        return merged
    if isinstance(first, list) and isinstance(second, list):
        return first + [item for item in second if item not in first]
    return first


def _columns(measures, measure_names):
    """(RegionMeasures, column, region index, measure) in the documented order."""
    if isinstance(measures, Mapping):
        measures = measures.values()
    seen_atlases = set()
    for rm in measures:
        if not isinstance(rm, RegionMeasures):
            raise TypeError(f"expected RegionMeasures, got {type(rm).__name__}")
        if rm.atlas in seen_atlases:
            raise RegionalError(f"{rm.source}: atlas {rm.atlas!r} given twice for one "
                                "participant; combine hemispheres with read_aparc_pair")
        seen_atlases.add(rm.atlas)
        names = [m for m in (measure_names or rm.measures) if m in rm.measures]
        for region, label in enumerate(region_labels(rm.names)):
            for measure in names:
                yield rm, f"{rm.atlas}_{label}_{measure}", region, measure


def _union_of_columns(rows):
    """Columns of all rows; a new column goes right after its predecessor in its row."""
    columns, known = [], set()
    for row in rows:
        row = list(row)
        for k, column in enumerate(row):
            if column in known:
                continue
            if k == 0:  # before the row's first known column, else at the end
                following = next((c for c in row[1:] if c in known), None)
                at = len(columns) if following is None else columns.index(following)
            else:
                at = len(columns) if columns[-1] == row[k - 1] else columns.index(row[k - 1]) + 1
            columns.insert(at, column)
            known.add(column)
    return columns


def _sidecar(columns, measures):
    measures = {participant_id: list(participant_measures.values())
                if isinstance(participant_measures, Mapping) else list(participant_measures)
                for participant_id, participant_measures in measures.items()}
    described = {}
    for participant_measures in measures.values():
        for column, description in column_descriptions(participant_measures).items():
            described.setdefault(column, {key: value for key, value in description.items()
                                          if key != "Source"})
    sources = {participant_id: sorted({path for rm in participant_measures
                                       for path in rm.source.split(os.pathsep)})
               for participant_id, participant_measures in measures.items()}
    sidecar = {"participant_id": {"Description": "participant label (BIDS)",
                                  "Sources": sources}}
    warnings = {participant_id: [warning for rm in participant_measures
                                 for warning in rm.warnings]
                for participant_id, participant_measures in measures.items()}
    warnings = {key: value for key, value in warnings.items() if value}
    if warnings:
        sidecar["participant_id"]["Warnings"] = warnings
    for column in columns:
        sidecar[column] = described.get(
            column, {"Description": f"region-wise measure {column}", "Units": ""})
    return sidecar


def _format(value, path, participant_id, column):
    if value is None or math.isnan(float(value)):
        return MISSING
    if math.isinf(float(value)):
        raise RegionalError(f"{path}: {column} of {participant_id} is {value}; a table holds "
                            "finite numbers or n/a. Check where the value came from")
    return repr(float(value))


def _parse_value(text, path, line_number):
    if text == MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise RegionalError(f"{path}, line {line_number}: {text[:60]!r} is not a number or "
                            f"{MISSING}") from None
    if math.isinf(value):
        raise RegionalError(f"{path}, line {line_number}: {text[:60]!r} is infinite; a "
                            f"table holds finite numbers or {MISSING}")
    return value
