"""FreeSurfer's cortical parcellation statistics (``stats/lh.aparc.stats``, ``rh.*``).

``mris_anatomical_stats`` writes a text table: header lines start with ``#`` (among
them ``# hemi lh``, ``# AnnotationFile ../label/lh.aparc.annot``, ``# TableCol`` units
and ``# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg ...``), then one
whitespace-separated row per region. Columns are found by name from ``# ColHeaders``,
never by position. Region names get the hemisphere as prefix (``lh_bankssts``) so the
two hemispheres combine into one atlas (:func:`read_aparc_pair`).

>>> DK_REGIONS[1], DK_REGIONS.index("insula")
('bankssts', 35)
"""

import os
import re
from pathlib import Path

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional.measures import KNOWN_MEASURES, RegionMeasures, read_bounded

#: The columns AnatCL's regional triplet needs: surface area, grey-matter volume, thickness.
REQUIRED_COLUMNS = ("SurfArea", "GrayVol", "ThickAvg")
#: Desikan-Killiany regions in colour-table order; FreeSurferColorLUT numbers them
#: ctx-lh-<name> = 1000 + index and ctx-rh-<name> = 2000 + index.
DK_REGIONS = (
    "unknown", "bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal",
    "corpuscallosum", "cuneus", "entorhinal", "fusiform", "inferiorparietal",
    "inferiortemporal", "isthmuscingulate", "lateraloccipital", "lateralorbitofrontal",
    "lingual", "medialorbitofrontal", "middletemporal", "parahippocampal", "paracentral",
    "parsopercularis", "parsorbitalis", "parstriangularis", "pericalcarine", "postcentral",
    "posteriorcingulate", "precentral", "precuneus", "rostralanteriorcingulate",
    "rostralmiddlefrontal", "superiorfrontal", "superiorparietal", "superiortemporal",
    "supramarginal", "frontalpole", "temporalpole", "transversetemporal", "insula",
)
_HEMI_ID_BASE = {"lh": 1000, "rh": 2000}
_NO_UNITS = {"unitless", "na", ""}


def read_aparc_stats(path):
    """Read one hemisphere's ``?h.aparc*.stats`` into :class:`RegionMeasures`.

    Every numeric column becomes a measure (``SurfArea`` mm2, ``GrayVol`` mm3,
    ``ThickAvg`` mm, ``ThickStd``, ``MeanCurv``, ``GausCurv``, ``FoldInd``, ``CurvInd``,
    ``NumVert``). The atlas is named after ``# AnnotationFile`` (``lh.aparc.a2009s.annot``
    gives ``aparc_a2009s``), ``aparc`` when absent; the hemisphere comes from ``# hemi``,
    else from the file name. Region ids are FreeSurferColorLUT's ``ctx-lh-*``/``ctx-rh-*``
    numbers for Desikan-Killiany names, otherwise 1000 (lh) or 2000 (rh) plus the row
    number. Raises :class:`RegionalError` for a missing ``# ColHeaders`` line, missing
    required columns (SurfArea, GrayVol, ThickAvg) or malformed rows.

    >>> import tempfile, pathlib
    >>> stats = pathlib.Path(tempfile.mkdtemp()) / "lh.aparc.stats"
    >>> _ = stats.write_text("# hemi lh\\n# ColHeaders StructName NumVert SurfArea "
    ...                      "GrayVol ThickAvg\\nbankssts 1472 982 2377 2.440\\n")
    >>> dk = read_aparc_stats(stats)
    >>> dk.atlas, dk.names, dk.ids, dk.measures["ThickAvg"].tolist(), dk.units["GrayVol"]
    ('aparc', ('lh_bankssts',), (1001,), [2.44], 'mm3')
    """
    header, rows = _read_table(path)
    columns = header.get("ColHeaders")
    if not columns:
        raise RegionalError(f"{path}: no '# ColHeaders' line; not a FreeSurfer aparc.stats "
                            "file, or it was truncated")
    missing = [name for name in ("StructName",) + REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise RegionalError(f"{path}: missing column(s) {', '.join(missing)} in "
                            f"'# ColHeaders {' '.join(columns)}'; pass the aparc.stats "
                            "written by mris_anatomical_stats")
    if not rows:
        raise RegionalError(f"{path}: no region rows after the header")
    hemi = _hemisphere(header, path)
    names = [row[columns.index("StructName")] for row in rows.values()]
    measures = {column: [_number(row[i], path, line, column) for line, row in rows.items()]
                for i, column in enumerate(columns) if column != "StructName"}
    units = {column: KNOWN_MEASURES[column][0] if column in KNOWN_MEASURES
             else header["Units"].get(column, "") for column in measures}
    return RegionMeasures(_atlas_name(header), _region_ids(names, hemi),
                          tuple(f"{hemi}_{name}" for name in names), measures, units,
                          str(path))


def read_aparc_pair(lh_path, rh_path):
    """Read ``lh`` and ``rh`` stats of one annotation into one atlas (lh regions first).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for hemi, thick in (("lh", "2.44"), ("rh", "2.61")):
    ...     _ = (folder / f"{hemi}.aparc.stats").write_text(
    ...         "# ColHeaders StructName SurfArea GrayVol ThickAvg\\n"
    ...         f"insula 2200 6900 {thick}\\n")
    >>> both = read_aparc_pair(folder / "lh.aparc.stats", folder / "rh.aparc.stats")
    >>> both.names, both.ids, both.measures["ThickAvg"].tolist()
    (('lh_insula', 'rh_insula'), (1035, 2035), [2.44, 2.61])
    """
    left, right = read_aparc_stats(lh_path), read_aparc_stats(rh_path)
    for stats, hemi, path in ((left, "lh", lh_path), (right, "rh", rh_path)):
        if not all(name.startswith(f"{hemi}_") for name in stats.names):
            raise RegionalError(f"{path}: expected the {hemi} hemisphere; pass the lh file "
                                "first and the rh file second")
    if left.atlas != right.atlas:
        raise RegionalError(f"{lh_path} and {rh_path} come from different annotations "
                            f"({left.atlas} vs {right.atlas}); pass the two hemispheres of "
                            "the same annotation")
    if set(left.measures) != set(right.measures):
        differ = sorted(set(left.measures) ^ set(right.measures))
        raise RegionalError(f"{lh_path} and {rh_path} have different columns ({', '.join(differ)} "
                            "in only one); pass the two hemispheres of the same aparc run")
    measures = {name: list(left.measures[name]) + list(right.measures[name])
                for name in left.measures}
    return RegionMeasures(left.atlas, left.ids + right.ids, left.names + right.names,
                          measures, left.units, os.pathsep.join((str(lh_path), str(rh_path))),
                          left.warnings + right.warnings)


def _read_table(path):
    """Header fields (ColHeaders, hemi, AnnotationFile, units by column) and rows by line."""
    lines = read_bounded(path).decode("utf-8", errors="replace").splitlines()
    header, table_columns, rows = {}, {}, {}
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            _read_header_line(line.lstrip().lstrip("#").split(), header, table_columns)
        elif line.strip():
            rows[number] = line.split()
    n_columns = len(header.get("ColHeaders", ()))
    for number, fields in rows.items():
        if n_columns and len(fields) != n_columns:
            raise RegionalError(f"{path}, line {number}: {len(fields)} fields for "
                                f"{n_columns} columns")
    header["Units"] = {column["ColHeader"]: _unit(column.get("Units", ""))
                       for column in table_columns.values() if "ColHeader" in column}
    return header, rows


def _read_header_line(fields, header, table_columns):
    if len(fields) < 2:
        return
    key, values = fields[0], fields[1:]
    if key == "ColHeaders":
        header["ColHeaders"] = values
    elif key in ("hemi", "AnnotationFile"):
        header[key] = values[0]
    elif key == "TableCol" and len(values) >= 3:
        # '# TableCol  3 ColHeader SurfArea' and '# TableCol  3 Units mm^2'
        table_columns.setdefault(values[0], {})[values[1]] = values[2]


def _unit(text):
    return "" if text.lower() in _NO_UNITS else text.replace("^", "")


def _hemisphere(header, path):
    hemi = header.get("hemi") or Path(path).name.split(".", 1)[0]
    if hemi not in _HEMI_ID_BASE:
        raise RegionalError(f"{path}: cannot tell the hemisphere: no '# hemi lh|rh' line and "
                            "the file name does not start with lh. or rh.")
    return hemi


def _atlas_name(header):
    annotation = header.get("AnnotationFile")
    if not annotation:
        return "aparc"
    name = re.sub(r"^[lr]h\.", "", Path(annotation).name)
    return re.sub(r"\.annot$", "", name).replace(".", "_")


def _region_ids(names, hemi):
    base = _HEMI_ID_BASE[hemi]
    if all(name in DK_REGIONS for name in names):
        return tuple(base + DK_REGIONS.index(name) for name in names)
    return tuple(base + row for row in range(1, len(names) + 1))


def _number(text, path, line, column):
    try:
        return float(text)
    except ValueError:
        raise RegionalError(f"{path}, line {line}: {column} value {text!r} is not a "
                            "number") from None
