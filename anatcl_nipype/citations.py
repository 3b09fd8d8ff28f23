"""What the methods texts cite, by BibTeX key: one place for each reference.

A methods text cites with :func:`cite` (``[@key]``, the citation syntax of pandoc and of
fMRIPrep's boilerplate); the key is an entry of ``reports/data/references.bib``, and
:data:`REFERENCES` holds the same reference as one line of text for a reference list.
Imports nothing heavy: workflows use it while they are built.

>>> cite("barbano2026anatcl")
'[@barbano2026anatcl]'
>>> cited_keys("embedded with AnatCL [@barbano2026anatcl] in Nipype [@gorgolewski2011nipype]")
['barbano2026anatcl', 'gorgolewski2011nipype']
"""

import re
from pathlib import Path

#: The BibTeX file of every key cited.
BIBTEX = Path(__file__).parent / "reports" / "data" / "references.bib"

#: Each citable reference, as one line of a reference list, by its BibTeX key.
REFERENCES = {
    "barbano2026anatcl": (
        "Barbano CA, Brunello M, Dufumier B, Grangetto M. Anatomical foundation models for "
        "brain MRIs. Pattern Recognition Letters 199:178-184, 2026. "
        "doi:10.1016/j.patrec.2025.11.028"),
    "gorgolewski2011nipype": (
        "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible neuroimaging data "
        "processing framework in Python. Frontiers in Neuroinformatics 5:13, 2011. "
        "doi:10.3389/fninf.2011.00013"),
    "esteban2019fmriprep": (
        "Esteban O, et al. fMRIPrep: a robust preprocessing pipeline for functional MRI. Nature "
        "Methods 16:111-116, 2019. doi:10.1038/s41592-018-0235-4 (the NiPreps framework of "
        "niworkflows and nireports, which assemble this report)."),
    "pedregosa2011sklearn": (
        "Pedregosa F, et al. Scikit-learn: machine learning in Python. Journal of Machine "
        "Learning Research 12:2825-2830, 2011."),
    "gaser2024cat": (
        "Gaser C, Dahnke R, Thompson PM, Kurth F, Luders E, the Alzheimer's Disease "
        "Neuroimaging Initiative. CAT: a computational anatomy toolbox for the analysis of "
        "structural MRI data. GigaScience 13:giae049, 2024. doi:10.1093/gigascience/giae049"),
    "skops": "skops: secure persistence of scikit-learn models. https://skops.readthedocs.io",
    "abraham2014nilearn": (
        "Abraham A, et al. Machine learning for neuroimaging with scikit-learn. Frontiers in "
        "Neuroinformatics 8:14, 2014. doi:10.3389/fninf.2014.00014 (nilearn, which ships the "
        "MNI152 grey-matter prior the report checks maps against and draws relevance maps)."),
    "fortin2018combat": (
        "Fortin JP, et al. Harmonization of cortical thickness measurements across scanners "
        "and sites. NeuroImage 167:104-120, 2018. doi:10.1016/j.neuroimage.2017.11.024 "
        "(ComBat, as implemented in neuroCombat)."),
    "beheshti2019bias": (
        "Beheshti I, Nugent S, Potvin O, Duchesne S. Bias-adjustment in neuroimaging-based "
        "brain age frameworks: a robust scheme. NeuroImage: Clinical 24:102063, 2019. "
        "doi:10.1016/j.nicl.2019.102063"),
}

_CITATION = re.compile(r"\[@([^\]\s]+)\]")


def cite(key):
    """The citation of ``key`` in a methods text; an unknown key is a programming error."""
    if key not in REFERENCES:
        raise KeyError(f"{key}: no such reference; add it to REFERENCES and {BIBTEX.name}")
    return f"[@{key}]"


def cited_keys(text):
    """The keys ``text`` cites, in the order of their first citation."""
    return list(dict.fromkeys(_CITATION.findall(text)))


def bibtex_entries():
    """``{BibTeX key: entry}`` of :data:`BIBTEX`.

    >>> bibtex_entries()["barbano2026anatcl"].splitlines()[-2].strip()
    'doi     = {10.1016/j.patrec.2025.11.028}'
    """
    text = BIBTEX.read_text(encoding="utf-8")
    return {match.group(1): match.group(0)
            for match in re.finditer(r"^@\w+\{([^,]+),.*?^\}", text, re.S | re.M)}
