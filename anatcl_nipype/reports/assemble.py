"""Write the reportlets of an output folder and assemble them with nireports.

The reportlets are HTML fragments named with BIDS entities in a reportlets folder:
``figures/desc-<desc>_T1w.html`` for each group section of the registry
(:data:`~anatcl_nipype.reports.sections.SECTIONS`), ``sub-<l>/figures/sub-<l>[_ses-<s>]
_desc-participant_T1w.html`` for each participant's panel.
:class:`nireports.assembler.report.Report` finds them through a spec (:func:`report_spec`)
generated from the same registry, its "Participants" section one reportlet per
participant, and renders ``data/report.tpl``. The fragments carry their figures inline, so
the page is one self-contained file. A cohort of more than :data:`PAGE_SIZE` participants
has the participants' panels on pages of that many beside it (``participants-<k>.html``,
same template), so that the report of 10,000 participants still opens; the report page
keeps every participant in its quality-control table (sortable, linked to the panels).

nireports (and with it pybids) is imported here only, when a report is written, never on
the command line's start-up path.
"""

import json
import tempfile
from collections import Counter
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np

from anatcl_nipype.files import atomic_write
from anatcl_nipype.reports import REPORT_DIR, qc
from anatcl_nipype.reports.collect import collect_output_folder
from anatcl_nipype.reports.fragments import esc, figure_img, flags_list, key_values, sig3, table
from anatcl_nipype.reports.sections import PARTICIPANTS, SECTIONS, ReportContext

#: Bumped when a participant's cached figure or checks would come out differently.
CACHE_VERSION = "2"
#: The report's page; participants beyond PAGE_SIZE have their panels on pages beside it.
REPORT_PAGE = "report.html"
PAGE_SIZE = 100
#: The title of the report and of its pages of participants.
TITLE = "anatcl-nipype report"
#: The ``desc`` of the reportlet that lists the pages of participants.
PAGES_DESC = "participantpages"


def build_report(output_dir, participants_tsv=None, work_dir=None):
    """Write ``<output_dir>/<REPORT_DIR>/report.html`` and ``methods.md``; return the page.

    ``work_dir``: where reportlets (and the cache of participant figures, reused when the
    map is unchanged) are kept; a temporary folder, removed afterwards, when None.
    """
    from anatcl_nipype.reports.methods import methods_markdown

    folder = collect_output_folder(output_dir, participants_tsv)
    report_folder = Path(output_dir) / REPORT_DIR
    report_folder.mkdir(parents=True, exist_ok=True)
    methods = methods_markdown(folder)
    with atomic_write(report_folder / "methods.md") as tmp:
        tmp.write_text(methods, encoding="utf-8")
    with _reportlets_dir(work_dir) as reportlets:
        checks = participant_checks(folder, reportlets / ".cache")
        vectors = read_embeddings(folder)
        outliers = outlier_scores(vectors)
        flagged = {label for label, c in checks.items() if c["flags"]}
        flagged |= {label for label, z in outliers.items() if z > qc.OUTLIER_Z}
        titles = {p.label: p.label + (" \u2691" if p.label in flagged or p.failure else "")
                  for p in folder.participants}
        pages = participant_pages(list(titles))
        context = ReportContext(folder, checks, outliers, vectors, methods, frozenset(flagged),
                                pages)
        for section in SECTIONS:
            fragment = section.fragment(context)
            if fragment:
                _write(_group_reportlet(reportlets, section.desc), fragment)
        fragments = (participant_fragment(p, checks.get(p.label), outliers.get(p.label))
                     for p in folder.participants)
        _remove_stale_pages(report_folder, set(pages.values()))
        if not pages:
            for label, fragment in zip(titles, fragments):
                _write(_participant_reportlet(reportlets, label), fragment)
            return _assemble(reportlets, report_folder, titles)
        _write(_group_reportlet(reportlets, PAGES_DESC), pages_fragment(pages, titles))
        _write_participant_pages(report_folder, pages, titles, fragments)
        return _assemble(reportlets, report_folder, {})


@contextmanager
def _reportlets_dir(work_dir):
    if work_dir is not None:
        folder = Path(work_dir) / "reportlets"
        for old in folder.glob("**/*.html"):
            old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="anatcl-reportlets-") as tmp:
        yield Path(tmp)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _subject(label):
    """The subject label of ``sub-<l>[_ses-<s>]``; a label that is not ``sub-`` (a placeholder
    in failed.tsv) made into one, so that it still gets its reportlet."""
    first = label.split("_")[0]
    if first.startswith("sub-") and len(first) > 4:
        return first[4:]
    return "".join(c for c in label if c.isalnum()) or "unknown"


def _participant_reportlet(reportlets, label):
    name = label if label.startswith("sub-") else f"sub-{_subject(label)}"
    return (reportlets / f"sub-{_subject(label)}" / "figures"
            / f"{name}_desc-{PARTICIPANTS.desc}_T1w.html")


def _group_reportlet(reportlets, desc):
    return reportlets / "figures" / f"desc-{desc}_T1w.html"


def _assemble(reportlets, report_folder, titles):
    """The report page; ``titles``: the participants whose panels it shows (none: their
    section lists the pages that show them)."""
    import yaml
    from nireports.assembler.report import Report

    spec_path = reportlets / "report.yml"
    spec_path.write_text(yaml.safe_dump(report_spec(SECTIONS, titles), sort_keys=False),
                         encoding="utf-8")
    page = report_folder / REPORT_PAGE
    with atomic_write(page) as tmp:  # the template includes report.css: one self-contained page
        report = Report(report_folder, None, bootstrap_file=spec_path,
                        reportlets_dir=reportlets, out_filename=str(tmp))
        report.generate_report()
    return page


def report_spec(sections, titles):
    """The nireports spec (bootstrap file) of the page: one section per row of ``sections``
    (the registry), in order; the Participants section has one reportlet per participant
    of ``titles`` (``{label: title}``), or, with none, the reportlet listing the pages.

    >>> spec = report_spec(SECTIONS, {"sub-01": "sub-01 \u2691"})
    >>> [section["name"] for section in spec["sections"]][:4]
    ['Summary', 'Quality control', 'Participants', 'Embeddings']
    >>> spec["sections"][1]["reportlets"]  # doctest: +NORMALIZE_WHITESPACE
    [{'bids': {'datatype': 'figures', 'desc': 'qctable', 'subject': None},
      'title': 'Every participant at a glance'}]
    >>> spec["sections"][2]["reportlets"][0]["bids"]
    {'datatype': 'figures', 'desc': 'participant', 'subject': '01', 'session': None}
    >>> report_spec(SECTIONS, {})["sections"][2]["reportlets"]
    [{'bids': {'datatype': 'figures', 'desc': 'participantpages', 'subject': None}}]
    """
    template = resources.files("anatcl_nipype.reports") / "data" / "report.tpl"
    return {"title": TITLE, "template_path": str(template),
            "sections": [_section_spec(section, titles) for section in sections]}


def _section_spec(section, titles):
    if section == PARTICIPANTS and titles:
        return {"name": section.heading, "nested": True,
                "reportlets": [_participant_spec(label, title)
                               for label, title in titles.items()]}
    if section == PARTICIPANTS:
        return {"name": section.heading, "nested": False,
                "reportlets": [_group_query(PAGES_DESC)]}
    title = {"title": section.title} if section.title else {}
    return {"name": section.heading, "reportlets": [{**_group_query(section.desc), **title}]}


def _group_query(desc):
    return {"bids": {"datatype": "figures", "desc": desc, "subject": None}}


def _participant_spec(label, title):
    query = {"datatype": "figures", "desc": PARTICIPANTS.desc, "subject": _subject(label)}
    session = next((part[4:] for part in label.split("_")[1:] if part.startswith("ses-")), None)
    query["session"] = session  # None: only the reportlet without a session (pybids)
    return {"bids": query, "name": label, "title": title}


# --- pages of participants --------------------------------------------------------------------

def participant_pages(labels, page_size=None):
    """``{label: page}``: where each participant's panel is, or ``{}`` when all fit on the
    report's own page (at most ``page_size``, default :data:`PAGE_SIZE`, participants).

    >>> participant_pages(["sub-1", "sub-2", "sub-3"], page_size=2)
    {'sub-1': 'participants-1.html', 'sub-2': 'participants-1.html', 'sub-3': 'participants-2.html'}
    >>> participant_pages(["sub-1", "sub-2"], page_size=2)
    {}
    """
    page_size = page_size or PAGE_SIZE
    if len(labels) <= page_size:
        return {}
    return {label: f"participants-{index // page_size + 1}.html"
            for index, label in enumerate(labels)}


def _by_page(pages):
    """``{page: [labels]}``, pages in order."""
    grouped = {}
    for label, page in pages.items():
        grouped.setdefault(page, []).append(label)
    return grouped


def pages_fragment(pages, titles):
    """The index's Participants section when the panels are on pages: one row per page."""
    rows = []
    for page, labels in _by_page(pages).items():
        flagged = sum(titles[label] != label for label in labels)
        rows.append([f'<a href="{esc(page)}">{esc(page)}</a>',
                     f"{esc(labels[0])} to {esc(labels[-1])}", len(labels), flagged])
    return (f"<p>{len(pages):,} participants: each one's panel is on a page of {PAGE_SIZE} "
            "(the table under Quality control links every participant to its panel).</p>"
            + table(["page", "participants", "count", "flagged"], rows, raw_columns=(0,)))


def _remove_stale_pages(report_folder, keep):
    """Remove the participant pages of an earlier run that are not in ``keep``."""
    for old in report_folder.glob("participants-*.html"):
        if old.name not in keep:
            old.unlink()


def _write_participant_pages(report_folder, pages, titles, fragments):
    """Write each page of participant panels beside the report (same template and style),
    one page at a time (``fragments``: the panels, in the order of ``pages``)."""
    from jinja2 import Environment, FileSystemLoader

    data = resources.files("anatcl_nipype.reports") / "data"
    template = Environment(loader=FileSystemLoader(str(data))).get_template("report.tpl")
    grouped = _by_page(pages)
    names = list(grouped)
    fragments = iter(fragments)
    for number, (page, labels) in enumerate(grouped.items()):
        links = [f'<a href="{REPORT_PAGE}">the report</a>'] + [
            f'<a href="{names[other]}">{word} page</a>'
            for other, word in ((number - 1, "previous"), (number + 1, "next"))
            if 0 <= other < len(names)]
        name = f"Participants {labels[0]} to {labels[-1]}"
        sections = [{"name": "Pages", "reportlets": [
                        {"name": "pages", "components": [(" | ".join(links), None)]}]},
                    {"name": name, "isnested": True, "reportlets": [
                        {"name": label, "title": titles[label],
                         "components": [(next(fragments), None)]} for label in labels]}]
        html = template.render(title=f"{TITLE}: page {number + 1} of {len(names)}",
                               sections=sections)
        with atomic_write(report_folder / page) as tmp:
            tmp.write_text(html, encoding="utf-8")


# --- per participant -------------------------------------------------------------------------

def participant_checks(folder, cache_dir):
    """``{label: {"correlation", "dice", "flags", "figure"}}`` for every readable map."""
    results, pending = {}, []
    for participant in folder.participants:
        flags = _cat12_flags(participant)
        if participant.gm_map is None or not participant.gm_map.is_file():
            results[participant.label] = {"flags": flags, "figure": None}
            continue
        key = _cache_key(participant)
        cached = _read_cache(cache_dir, participant.label, key)
        if cached is None:
            pending.append((participant, key, flags))
        else:
            results[participant.label] = {**cached, "flags": [*cached["flags"], *flags]}
    for (participant, key, flags), (checks, error) in zip(pending, _checked_and_drawn(pending)):
        if error:
            results[participant.label] = {"flags": [*flags, error], "figure": None}
            continue
        _write_cache(cache_dir, participant.label, key, checks)
        results[participant.label] = {**checks, "flags": [*checks["flags"], *flags]}
    return {p.label: results[p.label] for p in folder.participants}


def _cat12_flags(participant):
    mark = (participant.cat12 or {}).get("quality_ratings", {}).get("IQR")
    return [qc.iqr_flag(mark)] if mark is not None and qc.iqr_flag(mark) else []


#: Maps read ahead of the one being drawn (each is about 8 MB in memory).
READ_AHEAD = 2


def _checked_and_drawn(pending):
    """``(checks with "figure", None)`` or ``(None, error)`` of each pending map, in order.

    A second thread reads and checks the next maps while this one draws: gzip decoding and
    the checks run in zlib, numpy and scipy, mostly outside the GIL, so on two cores they
    overlap with the drawing.
    """
    from concurrent.futures import ThreadPoolExecutor

    from anatcl_nipype.reports.figures import GreyMatterPanels

    panels = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-reader") as reader:
        ahead = [reader.submit(_read_and_check, p.gm_map) for p, _, _ in pending[:READ_AHEAD]]
        for index in range(len(pending)):
            volume, checks, error = ahead.pop(0).result()
            if index + READ_AHEAD < len(pending):
                ahead.append(reader.submit(_read_and_check, pending[index + READ_AHEAD][0].gm_map))
            if error:
                yield None, error
                continue
            panels = panels or GreyMatterPanels(qc.template_prior())
            yield {**checks, "figure": panels.draw(volume)}, None


def _read_and_check(path):
    """``(volume, checks, None)`` of a GM map, or ``(None, None, error)``."""
    from anatcl_nipype.encoder.volumes import load_cat12_volume
    from anatcl_nipype.errors import AnatCLError

    try:
        volume = load_cat12_volume(path)
    except (AnatCLError, OSError) as error:
        return None, None, str(error)
    return volume, qc.map_checks(volume), None


def _cache_key(participant):
    stat = participant.gm_map.stat()
    sha = participant.sidecar.get("input", {}).get("sha256") or ""
    return f"{CACHE_VERSION}:{participant.gm_map}:{stat.st_size}:{stat.st_mtime_ns}:{sha}"


def _read_cache(cache_dir, label, key):
    try:
        cached = json.loads((cache_dir / f"{label}.json").read_text())
    except (OSError, ValueError):
        return None
    return cached["value"] if cached.get("key") == key else None


def _write_cache(cache_dir, label, key, value):
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / f"{label}.json").write_text(json.dumps({"key": key, "value": value}))


def read_embeddings(folder):
    """``{label: embedding}`` of the encoded participants, read once; unreadable files left
    out (the report never fails on one damaged file)."""
    vectors = {}
    for participant in folder.encoded:
        try:
            vectors[participant.label] = np.load(participant.embedding).ravel()
        except (OSError, ValueError):
            continue
    return vectors


def outlier_scores(vectors):
    """``{label: robust z-score}`` of the embeddings (the most common embedding size only)."""
    sizes = Counter(vector.size for vector in vectors.values())
    if not sizes:
        return {}
    size = sizes.most_common(1)[0][0]
    labels = [label for label, vector in vectors.items() if vector.size == size]
    scores = qc.embedding_outlier_scores(np.stack([vectors[label] for label in labels]))
    return dict(zip(labels, map(float, scores)))


def participant_fragment(participant, checks, outlier_z):
    """One participant: GM map and prior, checks, CAT12 measures, provenance, errors."""
    checks = checks or {"flags": [], "figure": None}
    flags = list(checks["flags"])
    if outlier_z is not None and outlier_z > qc.OUTLIER_Z:
        flags.append(f"embedding outlier: robust z {outlier_z:.1f} > {qc.OUTLIER_Z}")
    parts = [f'<div class="participant{" flagged" if flags or participant.failure else ""}" '
             f'id="{esc(participant.label)}"><h3>{esc(participant.label)}</h3>']
    if participant.failure:
        parts.append(_failure_html(participant.failure))
    figure = ""
    if checks.get("figure"):
        from anatcl_nipype.reports.figures import CUT_COORDS, PRIOR_CONTOUR_LEVEL

        figure = figure_img(
            checks["figure"], f"{participant.label}: grey-matter map with the MNI GM prior",
            f"Cropped grey-matter map (121x128x121 as the encoder sees it, drawn at 3 mm) at "
            f"x={CUT_COORDS[0]}, y={CUT_COORDS[1]}, z={CUT_COORDS[2]} mm; red: contour of the "
            "MNI152 GM prior at "
            f"{PRIOR_CONTOUR_LEVEL}. A misregistered map does not follow the contour.",
            width=576)
    facts = [flags_list(flags), key_values(_qc_pairs(checks, outlier_z) +
                                           _cat12_pairs(participant))]
    if participant.cat12_note and not participant.cat12:
        facts.append(f"<p>{esc(participant.cat12_note)}</p>")
    parts.append(f'<div class="row">{figure}<div class="facts">{"".join(facts)}</div></div>')
    if participant.sidecar:
        parts.append("<details><summary>Embedding provenance</summary>"
                     f"{key_values(_provenance_pairs(participant))}</details>")
    parts.append("</div>")
    return "".join(parts)


def _failure_html(failure):
    text = f'<p class="flag">Failed: {esc(failure["reason"] or "no reason recorded")}</p>'
    if failure.get("path"):
        text += f"<p>Input: <code>{esc(failure['path'])}</code></p>"
    if failure.get("traceback"):
        text += (f"<details open><summary>Traceback (last lines)</summary>"
                 f"<pre>{esc(failure['traceback'])}</pre></details>")
    return text


def _qc_pairs(checks, outlier_z):
    pairs = []
    if "correlation" in checks:
        pairs += [("correlation with MNI GM prior", sig3(checks["correlation"])),
                  ("Dice overlap with MNI GM prior", sig3(checks["dice"]))]
    if outlier_z is not None and np.isfinite(outlier_z):
        pairs.append(("embedding outlier score (robust z)", sig3(outlier_z)))
    return pairs


def _cat12_pairs(participant):
    cat12 = participant.cat12
    if not cat12:
        return []
    pairs = []
    mark = cat12.get("quality_ratings", {}).get("IQR")
    if mark is not None:
        pairs.append(("CAT12 IQR", f"{qc.iqr_rating(mark):.1f} % (grade {qc.iqr_grade(mark)}, "
                                   f"mark {float(mark):.2f})"))
    pairs.append(("TIV (cm\u00b3)", sig3(cat12["tiv_cm3"])))
    for tissue, volume in cat12.get("abs_volumes_cm3", {}).items():
        if tissue in ("CSF", "GM", "WM", "WMH"):
            pairs.append((f"{tissue} volume (cm\u00b3)", sig3(volume)))
    if cat12.get("cat_version"):
        pairs.append(("CAT12 version", cat12["cat_version"]))
    return pairs


def _provenance_pairs(participant):
    sidecar = participant.sidecar
    weights = sidecar.get("weights", {})
    if weights.get("random"):
        weights_text = f"RANDOM (seeded, {weights.get('run_id', '')}): no learned anatomy"
    elif weights.get("descriptor") is not None:
        weights_text = (f"released AnatCL, {weights['descriptor']} descriptor, "
                        f"fold {weights.get('fold')}")
    else:
        weights_text = f"user checkpoint {weights.get('path', '')}"
    software = sidecar.get("software", {})
    return [("embedding", str(participant.embedding.name if participant.embedding else "")),
            ("weights", weights_text), ("weights sha256", weights.get("sha256", "")),
            ("input", sidecar.get("input", {}).get("path", "")),
            ("input sha256", sidecar.get("input", {}).get("sha256", "")),
            ("precision / device", f"{sidecar.get('precision', '')} / {sidecar.get('device', '')}"),
            ("software", ", ".join(f"{k} {v}" for k, v in software.items()))]
