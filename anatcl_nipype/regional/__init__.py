"""Region-wise anatomical measures: CAT12 ROI XML, FreeSurfer stats, atlas GM volumes.

Plain Python + numpy/nibabel (no Nipype). Every reader returns
:class:`RegionMeasures`; :mod:`~anatcl_nipype.regional.tables` turns them into one wide
BIDS-style TSV with a JSON sidecar.

>>> from anatcl_nipype.regional import RegionMeasures, measures_to_row
>>> rm = RegionMeasures("cobra", (1,), ("lHip",), {"Vgm": [3.1]}, {}, "catROI_sub-01.xml")
>>> measures_to_row([rm]), rm.units
({'cobra_lHip_Vgm': 3.1}, {'Vgm': 'cm3'})
"""

from anatcl_nipype.regional.atlas import atlas_gm_volumes, read_label_table
from anatcl_nipype.regional.cat12_xml import (
    parse_matlab_array,
    read_cat12_report,
    read_cat12_roi_xml,
)
from anatcl_nipype.regional.freesurfer import read_aparc_pair, read_aparc_stats
from anatcl_nipype.regional.measures import RegionMeasures, measure_units
from anatcl_nipype.regional.tables import (
    column_descriptions,
    measures_to_row,
    read_measures_tsv,
    region_labels,
    write_measures_tsv,
)

__all__ = [
    "RegionMeasures",
    "atlas_gm_volumes",
    "column_descriptions",
    "measure_units",
    "measures_to_row",
    "parse_matlab_array",
    "read_aparc_pair",
    "read_aparc_stats",
    "read_cat12_report",
    "read_cat12_roi_xml",
    "read_label_table",
    "read_measures_tsv",
    "region_labels",
    "write_measures_tsv",
]
