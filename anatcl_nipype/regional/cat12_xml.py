"""CAT12's XML outputs: ROI measures (``label/catROI*_<name>.xml``) and the report.

CAT12 writes MATLAB structs as XML (``cat_io_xml`` with ``xml_io_tools``): a root
``<S>``, one child per struct field, numbers as MATLAB ``mat2str`` text (``[4;11;23]``,
``[4 11 23]``, ``1523.4``, ``NaN``, ``[int32([1;2])]``) and cell arrays of strings as
repeated ``<item>`` elements. An ROI file holds one element per atlas with ``ids``,
``names`` and ``data`` (one element per measure), plus ``version``, ``comments``...
in any order. Files are parsed with :mod:`defusedxml`: entity and DTD declarations,
which CAT12 never writes, are refused rather than expanded.

Limits (CAT12's files are far inside them): at most
:data:`~anatcl_nipype.regional.measures.MAX_FILE_BYTES` per file, elements nested at
most :data:`MAX_XML_DEPTH` deep, at most :data:`MAX_XML_ELEMENTS` elements, number
text of at most :data:`MAX_NUMBER_TEXT` characters per element. A file beyond a limit
raises :class:`RegionalError` naming it. NaN, which CAT12 writes for undefined regions,
is kept (``n/a`` in tables). An infinite region value (``Inf``, or ``1e400``, which
overflows a double) becomes NaN with a warning that the table's sidecar records
(:class:`~anatcl_nipype.regional.measures.RegionMeasures`); an infinite subject-level
value of the report (TIV, tissue volume, quality rating) is refused.

>>> parse_matlab_array("[4;11;23]").ravel().tolist()
[4.0, 11.0, 23.0]
"""

import io
import re

import defusedxml
import numpy as np
from defusedxml import ElementTree

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional.measures import RegionMeasures, measure_units, read_bounded

#: Deepest element nesting read (CAT12 nests 4 levels: S/atlas/data/measure).
MAX_XML_DEPTH = 32
#: Most elements a file may hold (a CAT12 ROI file with all atlases has a few thousand).
MAX_XML_ELEMENTS = 200_000
#: Longest number text of one element (CAT12's longest vectors take a few kilobytes).
MAX_NUMBER_TEXT = 1024 ** 2

#: Names of the components of CAT12's ``vol_abs_CGW`` / ``vol_rel_CGW`` vectors, in order:
#: CSF, grey matter, white matter, white-matter hyperintensities, stroke lesions.
CGW_COMPONENTS = ("CSF", "GM", "WM", "WMH", "SL")

_TYPE_WRAPPER = re.compile(
    r"^\[?\s*(?:u?int(?:8|16|32|64)|single|double|logical)\((?P<inner>.*)\)\s*\]?$", re.DOTALL)
_WORDS = {"true": 1.0, "false": 0.0}


def parse_matlab_array(text):
    """Parse MATLAB ``mat2str`` text into a 2-D float64 array (rows x columns).

    Accepts column and row vectors, matrices, bare scalars, ``NaN``/``Inf``/``-Inf``,
    exponents, ``true``/``false``, integer-type wrappers and any whitespace. Empty text
    gives a 0 x 0 array. Raises :class:`RegionalError` for anything else and for text
    longer than :data:`MAX_NUMBER_TEXT`.

    >>> parse_matlab_array("[int32([1 2;3 4])]").tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> parse_matlab_array(" [NaN; -Inf;1.5e-05] ").ravel().tolist()
    [nan, -inf, 1.5e-05]
    """
    if text is not None and len(text) > MAX_NUMBER_TEXT:
        raise RegionalError(f"number text of {len(text)} characters (at most "
                            f"{MAX_NUMBER_TEXT} are read): not CAT12's output")
    body = (text or "").strip()
    wrapped = _TYPE_WRAPPER.match(body)
    if wrapped:
        body = wrapped.group("inner").strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    if not body:
        return np.zeros((0, 0))
    rows = [[_parse_number(token, text) for token in re.split(r"[\s,]+", row.strip())]
            for row in body.split(";")]
    if len({len(row) for row in rows}) != 1:
        raise RegionalError(f"matrix text {_excerpt(text)!r} has rows of different lengths")
    return np.array(rows, dtype=np.float64)


def read_cat12_roi_xml(path):
    """Read every atlas of a CAT12 ROI file into :class:`RegionMeasures`, keyed by atlas.

    Works for volume ROIs (``catROI_*.xml``: ``Vgm``, ``Vwm``, ``Vcsf`` in cm3, ...) and
    surface ROIs (``catROIs_*.xml``: ``thickness`` in mm, ``gyrification``, ...). Regions
    keep the file's order. A measure whose number of values differs from the number of
    ids (CAT12's ``csvtab2xmlroi`` fallback writes r+1 values with a leading 0) raises
    :class:`RegionalError`; regions are never shifted to make it fit.

    >>> import tempfile, pathlib
    >>> xml = pathlib.Path(tempfile.mkdtemp()) / "catROI_sub-01_T1w.xml"
    >>> _ = xml.write_text("<S><lpba40><data><Vgm>[30.2;30.4]</Vgm></data><ids>[21;22]"
    ...                    "</ids><names><item>lSupFroG</item><item>rSupFroG</item>"
    ...                    "</names></lpba40></S>")
    >>> lpba = read_cat12_roi_xml(xml)["lpba40"]
    >>> lpba.names, lpba.measures["Vgm"].tolist(), lpba.units["Vgm"]
    (('lSupFroG', 'rSupFroG'), [30.2, 30.4], 'cm3')
    """
    root = _parse_xml(path)
    atlas_elements = _atlas_elements(root)
    if not atlas_elements:
        raise RegionalError(f"{path}: not a CAT12 ROI file: no atlas element with ids, names "
                            f"and data under <{root.tag}>; pass CAT12's label/catROI_*.xml "
                            "or label/catROIs_*.xml")
    atlases = {}
    for element in atlas_elements:
        if element.tag in atlases:
            raise RegionalError(f"{path}: atlas {element.tag!r} appears twice; "
                                "the file was edited or concatenated, rerun CAT12's ROI export")
        atlases[element.tag] = _read_atlas(element, path)
    return atlases


def read_cat12_report(path):
    """Read TIV, tissue volumes and quality ratings from CAT12's ``report/cat_<name>.xml``.

    Returns a dict with ``tiv_cm3`` (``subjectmeasures/vol_TIV``), ``abs_volumes_cm3`` and
    ``rel_volumes`` (``vol_abs_CGW`` / ``vol_rel_CGW`` by component: CSF, GM, WM, WMH, SL,
    as many as the file has; empty when absent), ``quality_ratings`` and
    ``quality_measures`` (the scalar entries of ``qualityratings`` / ``qualitymeasures``,
    e.g. ``IQR``, ``NCR``, ``ICR``, ``res_RMS``; grades where 1 is best),
    ``cat_version`` (``software/version_cat`` or None) and ``source``.
    Raises :class:`RegionalError` when TIV is missing.

    >>> import tempfile, pathlib
    >>> xml = pathlib.Path(tempfile.mkdtemp()) / "cat_sub-01_T1w.xml"
    >>> _ = xml.write_text("<S><subjectmeasures><vol_TIV>1439.2</vol_TIV>"
    ...                    "<vol_abs_CGW>[233.4 677.4 528.3 0]</vol_abs_CGW>"
    ...                    "</subjectmeasures></S>")
    >>> report = read_cat12_report(xml)
    >>> report["tiv_cm3"], report["abs_volumes_cm3"]["GM"]
    (1439.2, 677.4)
    """
    root = _parse_xml(path)
    tiv = root.find("subjectmeasures/vol_TIV")
    if tiv is None:
        raise RegionalError(f"{path}: no subjectmeasures/vol_TIV; not a CAT12 report "
                            "(report/cat_*.xml) or CAT12 stopped before estimating volumes")
    tiv_values = _values(tiv, path, "subjectmeasures/vol_TIV")
    if tiv_values.size != 1 or not np.isfinite(tiv_values[0]):
        raise RegionalError(f"{path}: subjectmeasures/vol_TIV is {_excerpt(tiv.text)!r}, "
                            "not one finite number")
    version = root.find("software/version_cat")
    return {
        "source": str(path),
        "tiv_cm3": float(tiv_values[0]),
        "abs_volumes_cm3": _tissue_volumes(root, "vol_abs_CGW", path),
        "rel_volumes": _tissue_volumes(root, "vol_rel_CGW", path),
        "quality_ratings": _scalar_entries(root.find("qualityratings"), path),
        "quality_measures": _scalar_entries(root.find("qualitymeasures"), path),
        "cat_version": None if version is None else (version.text or "").strip(),
    }


def _parse_xml(path):
    """The root element of ``path``, parsed within the module's limits."""
    content = read_bounded(path)
    try:
        return _bounded_tree(content, path)
    except defusedxml.DefusedXmlException as err:
        raise RegionalError(f"{path}: refused to parse: the XML declares a DTD or entities "
                            f"({type(err).__name__}), which CAT12 never writes; "
                            "use the file CAT12 wrote") from err
    except ElementTree.ParseError as err:
        raise RegionalError(f"{path}: malformed XML ({err}); the file is damaged or "
                            "incomplete, rerun CAT12 for this subject") from err
    except (LookupError, ValueError) as err:  # unknown or undecodable declared encoding
        raise RegionalError(f"{path}: cannot decode the XML ({type(err).__name__}: {err}); "
                            "CAT12 writes UTF-8, use the file CAT12 wrote") from None


def _bounded_tree(content, path):
    """Parse ``content`` event by event, stopping as soon as it nests or grows too much."""
    root, depth, elements = None, 0, 0
    events = ElementTree.iterparse(io.BytesIO(content), events=("start", "end"),
                                   forbid_dtd=True)
    for event, element in events:
        if event == "end":
            depth -= 1
            continue
        root = element if root is None else root
        depth, elements = depth + 1, elements + 1
        if depth > MAX_XML_DEPTH or elements > MAX_XML_ELEMENTS:
            raise RegionalError(
                f"{path}: XML nested more than {MAX_XML_DEPTH} deep or with more than "
                f"{MAX_XML_ELEMENTS} elements; CAT12 writes neither, use the file it wrote")
    return root


def _atlas_elements(root):
    atlases = [child for child in root if child.find("data") is not None]
    legacy_root = root.find("ROI")  # older CAT12 releases nest the atlases in <ROI>
    if not atlases and legacy_root is not None:
        return _atlas_elements(legacy_root)
    return atlases


def _read_atlas(element, path):
    atlas = element.tag
    for required in ("ids", "names"):
        if element.find(required) is None:
            raise RegionalError(f"{path}: atlas {atlas!r} has data but no <{required}>; "
                                "not a complete CAT12 ROI entry")
    ids = _values(element.find("ids"), path, f"atlas {atlas!r} ids")
    if not np.all(np.isfinite(ids) & (ids == np.round(ids))):
        raise RegionalError(f"{path}: atlas {atlas!r}: region ids are not all integers")
    names = _names(element.find("names"))
    if len(names) != ids.size:
        raise RegionalError(f"{path}: atlas {atlas!r} has {ids.size} ids but {len(names)} "
                            "names")
    measures = {measure.tag: _measure_values(measure, path, atlas, ids.size)
                for measure in element.find("data")}
    units = {name: measure_units(name) for name in measures}
    return RegionMeasures(atlas, tuple(int(i) for i in ids), names, measures, units,
                          str(path))


def _measure_values(element, path, atlas, n_regions):
    values = _values(element, path, f"atlas {atlas!r}, measure {element.tag!r}")
    if values.size == n_regions:
        return values
    quirk = ""
    if values.size == n_regions + 1 and values[0] == 0:
        quirk = (" with a leading 0: the r+1 layout of CAT12's csvtab2xmlroi fallback, "
                 "so the values cannot be matched to regions safely")
    raise RegionalError(f"{path}: atlas {atlas!r}, measure {element.tag!r}: {values.size} "
                        f"values for {n_regions} regions{quirk}; re-extract the ROI values "
                        "with CAT12 or drop this measure from the file")


def _values(element, path, what):
    """Numbers of one element as a 1-D array: mat2str text, or one number per <item>."""
    items = element.findall("item")
    if len(element) and not items:
        raise RegionalError(f"{path}: {what}: nested elements where numbers were expected")
    try:
        arrays = ([parse_matlab_array(item.text) for item in items] if items
                  else [parse_matlab_array(element.text)])
    except RegionalError as err:
        raise RegionalError(f"{path}: {what}: {err}") from err
    if any(min(array.shape) > 1 for array in arrays):
        raise RegionalError(f"{path}: {what}: a matrix where a vector was expected")
    return np.concatenate([array.ravel() for array in arrays])


def _refuse_infinite(values, path, what):
    """Subject-level values (tissue volumes, quality ratings) are finite or NaN."""
    if np.isinf(values).any():
        raise RegionalError(f"{path}: {what}: infinite (Inf, or a number too large for a "
                            "double such as 1e400); CAT12 writes finite numbers or NaN. "
                            "The report is damaged: rerun CAT12 for this subject")


def _names(element):
    items = element.findall("item")
    text = (element.text or "").strip()
    if not items:  # a single region may be written without <item>
        return (text,) if text else ()
    return tuple((item.text or "").strip() for item in items)


def _tissue_volumes(root, field, path):
    element = root.find(f"subjectmeasures/{field}")
    if element is None:
        return {}
    values = _values(element, path, f"subjectmeasures/{field}")
    _refuse_infinite(values, path, f"subjectmeasures/{field}")
    names = CGW_COMPONENTS + tuple(f"class{i + 1}" for i in range(len(CGW_COMPONENTS),
                                                                   values.size))
    return {name: float(value) for name, value in zip(names, values)}


def _scalar_entries(element, path):
    """The entries of a struct element that hold exactly one number, as floats."""
    entries = {}
    for child in [] if element is None else element:
        try:
            values = parse_matlab_array(child.text)
        except RegionalError:
            continue
        if values.size == 1:
            _refuse_infinite(values, path, f"{element.tag}/{child.tag}")
            entries[child.tag] = float(values[0, 0])
    return entries


def _parse_number(token, text):
    word = _WORDS.get(token.lower())
    if word is not None:
        return word
    try:
        return float(token)
    except ValueError:
        raise RegionalError(f"{token!r} in {_excerpt(text)!r} is not a number") from None


def _excerpt(text, length=60):
    text = (text or "").strip()
    return text if len(text) <= length else text[:length] + "..."

