"""The common in-memory type of the regional layer: one atlas, its regions, their measures.

Every reader (CAT12 ROI XML, FreeSurfer ``aparc.stats``, grey-matter volume per atlas
label) returns :class:`RegionMeasures`, so tables and interfaces handle them alike.

>>> rm = RegionMeasures("lpba40", (21, 22), ("lSupFroG", "rSupFroG"),
...                     {"Vgm": [30.3, 30.4]}, {"Vgm": "cm3"}, "catROI_sub-01.xml")
>>> rm.n_regions, rm.measures["Vgm"].dtype.name, measure_units("Vwm")
(2, 'float64', 'cm3')
"""

from dataclasses import dataclass

import numpy as np

from anatcl_nipype.errors import RegionalError

#: Largest file a regional reader reads (CAT12 ROI XML, aparc.stats, label tables and
#: sidecars are kilobytes to a few megabytes); larger files are refused unread.
MAX_FILE_BYTES = 64 * 1024 ** 2

#: Units and a short description of the measures the readers know by name.
KNOWN_MEASURES = {
    # CAT12 volume ROIs (catROI_*.xml) and atlas_gm_volumes
    "Vgm": ("cm3", "grey-matter volume"),
    "Vwm": ("cm3", "white-matter volume"),
    "Vcsf": ("cm3", "CSF volume"),
    "Vwmh": ("cm3", "white-matter hyperintensity volume"),
    "mean_gm": ("", "mean grey-matter density"),
    # CAT12 surface ROIs (catROIs_*.xml)
    "thickness": ("mm", "mean cortical thickness"),
    "area": ("mm2", "cortical surface area"),
    "gyrification": ("", "mean gyrification index"),
    "fractaldimension": ("", "mean fractal dimension"),
    "depth": ("mm", "mean sulcal depth"),
    "sqrtsulc": ("", "mean square-root sulcal depth"),
    # FreeSurfer aparc.stats
    "NumVert": ("", "number of vertices"),
    "SurfArea": ("mm2", "surface area"),
    "GrayVol": ("mm3", "grey-matter volume"),
    "ThickAvg": ("mm", "average cortical thickness"),
    "ThickStd": ("mm", "standard deviation of cortical thickness"),
    "MeanCurv": ("mm-1", "integrated rectified mean curvature"),
    "GausCurv": ("mm-2", "integrated rectified Gaussian curvature"),
    "FoldInd": ("", "folding index"),
    "CurvInd": ("", "intrinsic curvature index"),
}


def measure_units(name):
    """Units of a measure from its name: ``V*`` is cm3 (CAT12 volumes), unknown is "".

    A CAT12 ``SUBMEASURE_MEASURE`` name takes the units of its last part.

    >>> measure_units("Vcsf"), measure_units("Vlesion"), measure_units("mean_thickness")
    ('cm3', 'cm3', 'mm')
    >>> measure_units("Tgm"), measure_units("gyrification")
    ('', '')
    """
    if name in KNOWN_MEASURES:
        return KNOWN_MEASURES[name][0]
    if name.startswith("V"):
        return "cm3"
    last_part = name.rsplit("_", 1)[-1]
    if last_part != name:
        return measure_units(last_part)
    return ""


def read_bounded(path, what="file", limit=MAX_FILE_BYTES):
    """The bytes of ``path``, refusing a file larger than ``limit`` before reading it.

    Raises :class:`RegionalError` naming the file for missing, unreadable or too large files.

    >>> import tempfile, pathlib
    >>> small = pathlib.Path(tempfile.mkdtemp()) / "lh.aparc.stats"
    >>> _ = small.write_text("# hemi lh\\n")
    >>> read_bounded(small, "stats file", limit=4)
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.RegionalError: ...lh.aparc.stats: the stats file is larger than 4 bytes...
    """
    try:
        with open(path, "rb") as stream:
            content = stream.read(limit + 1)
    except OSError as err:
        raise RegionalError(f"{path}: cannot read the {what} ({err.strerror or err})") from err
    if len(content) > limit:
        raise RegionalError(f"{path}: the {what} is larger than {limit} bytes, far beyond "
                            "what CAT12 or FreeSurfer write; refused unread. Pass the "
                            "original file")
    return content


def read_bounded_text(path, what="file", limit=MAX_FILE_BYTES):
    """:func:`read_bounded` decoded as UTF-8; :class:`RegionalError` for other bytes."""
    try:
        return read_bounded(path, what, limit).decode("utf-8")
    except UnicodeDecodeError as err:
        raise RegionalError(f"{path}: the {what} is not UTF-8 text (byte {err.start}); "
                            "pass the text file the tool wrote") from None


def measure_description(name):
    """A short description of a measure for sidecars; the name itself when unknown.

    >>> measure_description("ThickAvg")
    'average cortical thickness'
    """
    return KNOWN_MEASURES.get(name, ("", name))[1]


@dataclass(frozen=True, eq=False)
class RegionMeasures:
    """Measures of the regions of one atlas, regions in the order of their source.

    Attributes
    ----------
    atlas : str
        Atlas name as its source spells it (``neuromorphometrics``, ``aparc``).
    ids : tuple of int
        Region label values (not necessarily unique: CAT12 surface atlases repeat the
        annotation id for the left and right region).
    names : tuple of str
        Region names, one per id.
    measures : dict of str to numpy.ndarray
        One read-only float64 array per measure, one value per region: finite, or NaN
        where the source leaves a region undefined (written ``n/a``). An infinite value
        (``Inf``, ``1e400``) also becomes NaN, with a warning.
    units : dict of str to str
        Units per measure (``cm3``, ``mm``, ``mm2``, ``mm3``; "" when unitless or unknown).
    source : str
        The file(s) the measures come from; several files are joined with ``os.pathsep``.
    warnings : tuple of str
        What was changed on reading (infinite values made NaN), for the table's sidecar.

    Instances are immutable and compare by identity (arrays have no single truth value).
    """

    atlas: str
    ids: tuple
    names: tuple
    measures: dict
    units: dict
    source: str
    warnings: tuple = ()

    def __post_init__(self):
        ids = tuple(int(region_id) for region_id in self.ids)
        names = tuple(str(name) for name in self.names)
        object.__setattr__(self, "warnings", list(self.warnings))
        if len(ids) != len(names):
            raise RegionalError(f"{self.source}: atlas {self.atlas!r} has {len(ids)} region "
                                f"ids but {len(names)} names")
        measures = {name: self._checked_values(name, values, len(ids))
                    for name, values in self.measures.items()}
        units = {name: str(self.units.get(name, measure_units(name))) for name in measures}
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "measures", measures)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def _checked_values(self, measure, values, n_regions):
        """A read-only float64 copy of ``values``; infinite values made NaN, with a warning."""
        array = np.array(values, dtype=np.float64).reshape(-1)
        if array.size != n_regions:
            raise RegionalError(f"{self.source}: atlas {self.atlas!r}, measure {measure!r}: "
                                f"{array.size} values for {n_regions} regions")
        infinite = np.flatnonzero(np.isinf(array))
        if infinite.size:
            regions = ", ".join(str(self.names[k]) if k < len(self.names) else str(k)
                                for k in infinite[:5])
            self.warnings.append(
                f"{self.source}: atlas {self.atlas}, measure {measure}: {infinite.size} "
                f"infinite value(s) (regions {regions}{', ...' if infinite.size > 5 else ''})"
                " written as n/a")
            array[infinite] = np.nan
        array.flags.writeable = False
        return array

    @property
    def n_regions(self):
        """Number of regions."""
        return len(self.ids)
