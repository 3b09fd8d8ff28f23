"""SYNTHETIC CAT12-like data for tests and the demo (no real MRI, no real atlas).

:func:`make_cat12_cohort` writes a cohort in CAT12's output layout (``mwp1``
maps, ``catROI``/``catROIs``/``cat`` XML files, ``participants.tsv``) built from
nilearn's MNI152 grey-matter template with known age, diagnosis, site and noise
effects planted, and the ground truth beside it. It only mimics CAT12's output.

>>> from anatcl_nipype.data import region_table
>>> region_table()[2]
(3, 'lMedialTemporal')
"""

from anatcl_nipype.data.cat12_xml_writer import mat2str, struct_to_xml, write_cat12_xml
from anatcl_nipype.data.cohort import (
    DIAGNOSIS_ATROPHY,
    Cohort,
    load_gm_template,
    load_synthetic_atlas,
    make_cat12_cohort,
    synthesize_gm_map,
)
from anatcl_nipype.data.synthetic_atlas import make_synthetic_atlas, region_table

__all__ = [
    "DIAGNOSIS_ATROPHY",
    "Cohort",
    "load_gm_template",
    "load_synthetic_atlas",
    "make_cat12_cohort",
    "make_synthetic_atlas",
    "mat2str",
    "region_table",
    "struct_to_xml",
    "synthesize_gm_map",
    "write_cat12_xml",
]
