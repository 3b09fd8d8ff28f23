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
        One read-only float64 array per measure, one value per region (NaN allowed).
    units : dict of str to str
        Units per measure (``cm3``, ``mm``, ``mm2``, ``mm3``; "" when unitless or unknown).
    source : str
        The file(s) the measures come from; several files are joined with ``os.pathsep``.

    Instances are immutable and compare by identity (arrays have no single truth value).
    """

    atlas: str
    ids: tuple
    names: tuple
    measures: dict
    units: dict
    source: str

    def __post_init__(self):
        ids = tuple(int(region_id) for region_id in self.ids)
        names = tuple(str(name) for name in self.names)
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

    def _checked_values(self, measure, values, n_regions):
        array = np.array(values, dtype=np.float64).reshape(-1)
        if array.size != n_regions:
            raise RegionalError(f"{self.source}: atlas {self.atlas!r}, measure {measure!r}: "
                                f"{array.size} values for {n_regions} regions")
        array.flags.writeable = False
        return array

    @property
    def n_regions(self):
        """Number of regions."""
        return len(self.ids)
