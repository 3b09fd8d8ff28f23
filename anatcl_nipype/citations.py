"""What the methods texts cite, by BibTeX key: one place for each reference, the BibTeX.

A methods text cites with :func:`cite` (``[@key]``, the citation syntax of pandoc and of
fMRIPrep's boilerplate); the key is an entry of :data:`BIBTEX`, :func:`reference` writes
that entry as one line of a reference list and :func:`short_reference` as the short
citation a sentence names it by (``dataset_description.json``). Adding a reference is adding
its entry there. Imports nothing heavy: workflows use it while they are built.

>>> cite("barbano2026anatcl")
'[@barbano2026anatcl]'
>>> cited_keys("embedded with AnatCL [@barbano2026anatcl] in Nipype [@gorgolewski2011nipype]")
['barbano2026anatcl', 'gorgolewski2011nipype']
>>> reference("barbano2026anatcl")  # doctest: +NORMALIZE_WHITESPACE
'Barbano CA, Brunello M, Dufumier B, Grangetto M. Anatomical foundation models for brain
 MRIs. Pattern Recognition Letters 199:178-184, 2026. doi:10.1016/j.patrec.2025.11.028'
>>> short_reference("barbano2026anatcl")
'Barbano et al., Pattern Recognition Letters 2026'
"""

import functools
import re
from pathlib import Path

#: The BibTeX file of every key cited.
BIBTEX = Path(__file__).parent / "reports" / "data" / "references.bib"
#: Authors listed before "et al." in a reference.
MAX_AUTHORS = 4

_CITATION = re.compile(r"\[@([^\]\s]+)\]")


def cite(key):
    """The citation of ``key`` in a methods text; an unknown key is a programming error."""
    if key not in bibtex_entries():
        raise KeyError(f"{key}: no such reference; add its entry to {BIBTEX}")
    return f"[@{key}]"


def reference(key):
    """The BibTeX entry ``key`` as one line of a reference list (its ``addendum``, what it
    is cited for, in parentheses)."""
    fields = _fields(bibtex_entries()[key])
    names = [_initials(name) for name in fields.get("author", "").split(" and ") if name]
    authors = ", ".join(names[:MAX_AUTHORS] if len(names) <= MAX_AUTHORS else
                        [names[0], "et al"])
    where = fields.get("journal", "")
    if "volume" in fields:
        where += f" {fields['volume']}:{fields.get('pages', '').replace('--', '-')}"
    parts = [authors, fields.get("title", key), ", ".join(filter(None, [where,
                                                                        fields.get("year")]))]
    text = ". ".join(part for part in parts if part) + "."
    if fields.get("doi"):
        text += f" doi:{fields['doi']}"
    if fields.get("howpublished"):
        text += " " + re.sub(r"\\url\{(.*)\}", r"\1", fields["howpublished"])
    if fields.get("addendum"):
        text += f" ({fields['addendum']})."
    return text


def short_reference(key):
    """The BibTeX entry ``key`` as a short citation: the first author's family name (and
    the second's, or ``et al.``), then the journal and year; an entry without authors is
    named by its title.

    >>> short_reference("gaser2024cat")
    'Gaser et al., GigaScience 2024'
    >>> short_reference("skops")
    'skops: secure persistence of scikit-learn models'
    """
    fields = _fields(bibtex_entries()[key])
    families = [_family(name) for name in fields.get("author", "").split(" and ") if name]
    if len(families) > 2:
        who = f"{families[0]} et al."
    else:
        who = " and ".join(families) or fields.get("title", key)
    where = " ".join(filter(None, [fields.get("journal"), fields.get("year")]))
    return ", ".join(filter(None, [who, where]))


def _fields(entry):
    """``{field: value}`` of a BibTeX entry, braces and TeX accents removed."""
    fields, position = {}, 0
    for match in re.finditer(r"(\w+)\s*=\s*\{", entry):
        if match.start() < position:
            continue
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(entry[end], 0)
            end += 1
        value = entry[match.end():end - 1]
        if match.group(1) != "howpublished":
            value = re.sub(r"[{}]", "", re.sub(r"\\[\"'`^~]", "", value))
        fields[match.group(1).lower()] = " ".join(value.split())
        position = end
    return fields


def _initials(name):
    """``Barbano, C. A.`` -> ``Barbano CA``; a name without a comma stays as it is."""
    family, _, given = name.partition(",")
    letters = "".join(part[0] for part in re.split(r"[\s.\-]+", given) if part)
    return f"{family.strip()} {letters}".strip()


def _family(name):
    """``Barbano, C. A.`` or ``C. A. Barbano`` -> ``Barbano``."""
    family, comma, _ = name.partition(",")
    return family.strip() if comma else name.split()[-1]


def cited_keys(text):
    """The keys ``text`` cites, in the order of their first citation."""
    return list(dict.fromkeys(_CITATION.findall(text)))


@functools.cache
def bibtex_entries():
    """``{BibTeX key: entry}`` of :data:`BIBTEX`.

    >>> bibtex_entries()["barbano2026anatcl"].splitlines()[-2].strip()
    'doi     = {10.1016/j.patrec.2025.11.028}'
    """
    text = BIBTEX.read_text(encoding="utf-8")
    return {match.group(1): match.group(0)
            for match in re.finditer(r"^@\w+\{([^,]+),.*?^\}", text, re.S | re.M)}
