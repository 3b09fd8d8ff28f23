"""The report's sections, one registry for all of them, and the group sections' fragments.

:data:`SECTIONS` lists the page's sections in their order, one :class:`ReportSection`
each: its heading, the ``desc`` of its reportlet, an optional title and the function that
builds its HTML fragment. :mod:`~anatcl_nipype.reports.assemble` writes each fragment as
the reportlet ``desc-<desc>_T1w.html`` and generates the nireports spec from the same rows,
so a new section is one row and its builder. Every builder takes one
:class:`ReportContext` (the folder and what was computed from it once) and returns a
fragment, or "" when it has nothing to show: then no reportlet is written and nireports
leaves the section off the page. :data:`PARTICIPANTS` is the one row without a builder:
its reportlets are the participants' panels, or the list of the pages that hold them,
which ``assemble`` writes.

>>> [section.heading for section in SECTIONS][:4]
['Summary', 'Quality control', 'Participants', 'Embeddings']
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.summary_text import mean_sd_text
from anatcl_nipype.reports import qc
from anatcl_nipype.reports.collect import scans_of
from anatcl_nipype.reports.fragments import (
    esc,
    figure_svg,
    key_values,
    metrics_table,
    records_table,
    sig3,
    table,
)
from anatcl_nipype.reports.studies import (
    ensemble_fragment,
    harmonization_fragment,
    relevance_fragment,
)

PCA_COLUMNS = ("diagnosis", "site", "sex")


@dataclass(frozen=True)
class ReportContext:
    """What every builder may read: the output folder and what the report computed from it
    once (each participant's checks, embeddings and outlier score, the methods text)."""

    folder: object            # collect.OutputFolder
    checks: dict              # {label: {"flags", "correlation", "dice", "figure"}}
    outliers: dict            # {label: robust z-score of the embedding}
    vectors: dict             # {label: embedding}
    methods: str              # the methods text (methods.md)
    flagged: frozenset        # labels flagged by a check or as an outlier
    pages: dict               # {label: page of its panel}; {} when all are on the report


@dataclass(frozen=True)
class ReportSection:
    """One section of the page: ``heading`` (its name in the spec and the navigation),
    the ``desc`` entity of its reportlet, the ``title`` above the fragment (none: no
    title), and ``build(context)``, its fragment.

    >>> notes = ReportSection("notes", "Notes", lambda context: "<p>A note.</p>", "Notes")
    >>> notes.fragment(None), PARTICIPANTS.fragment(None)
    ('<p>A note.</p>', '')
    """

    desc: str
    heading: str
    build: Callable[[ReportContext], str] | None = None
    title: str | None = None

    def fragment(self, context):
        """The section's HTML ("" for nothing to show, and for :data:`PARTICIPANTS`)."""
        return self.build(context) if self.build else ""


def summary_fragment(context):
    """The summary box: participants done, failed, flagged; each target's headline metric."""
    folder, flagged = context.folder, context.flagged
    tiles = [("encoded", scans_of(p.label for p in folder.encoded), False),
             ("failed", scans_of(p.label for p in folder.failed), bool(folder.failed)),
             ("flagged by QC", scans_of(flagged), bool(flagged))]
    for target in folder.targets:
        metrics = (target.summary or target.card).get("cv_metrics", {})
        task = PROBE_TASKS.get(target.task)
        key, name = (task.headline_metric, task.headline_label) if task else ("", "")
        if key in metrics:
            tiles.append((f"{target.name}: {name}",
                          mean_sd_text(metrics[key]["mean"], metrics[key]["sd"]),
                          False))
        for applied in target.applied:
            tiles.append((f"{target.name}: applied probe", f"{len(applied.rows)} predicted",
                          False))
    html_tiles = "".join(f'<div class="tile{" bad" if bad else ""}"><b>{esc(value)}</b>'
                         f"{esc(name)}</div>" for name, value, bad in tiles)
    return _random_banner(folder) + f'<div class="summary-box">{html_tiles}</div>'


def _random_banner(folder):
    if not any(p.sidecar.get("weights", {}).get("random") for p in folder.encoded):
        return ""
    return ('<div class="warning"><b>RANDOM WEIGHTS.</b> These embeddings come from seeded '
            "random weights, not the pretrained AnatCL model: they carry no learned anatomy, "
            "and nothing computed from them says anything about the brain. Fetch the released "
            "weights (<code>anatcl-nipype weights fetch</code>) or pass <code>--weights</code> "
            "for real results.</div>")


def qc_table_fragment(context):
    """Every participant: status, flags, agreement with the prior, IQR, TIV, outlier score;
    sortable by any column, each participant linked to its panel."""
    folder, checks, outliers, pages = (context.folder, context.checks, context.outliers,
                                       context.pages)
    rows, classes = [], {}
    for index, participant in enumerate(folder.participants):
        c = checks.get(participant.label, {"flags": []})
        z = outliers.get(participant.label)
        flags = list(c["flags"]) + (["embedding outlier"] if z is not None and z > qc.OUTLIER_Z
                                    else [])
        mark = (participant.cat12 or {}).get("quality_ratings", {}).get("IQR")
        if flags or participant.failure:
            classes[index] = "flagged"
        link = f"{pages.get(participant.label, '')}#{participant.label}"
        rows.append([f'<a href="{esc(link)}">{esc(participant.label)}</a>',
                     "failed" if participant.failure else
                     ("done" if participant.embedding else "not encoded"),
                     esc("; ".join(flags)) if flags else "",
                     sig3(c.get("correlation", "")), sig3(c.get("dice", "")),
                     f"{qc.iqr_rating(mark):.1f} % ({qc.iqr_grade(mark)})" if mark is not None
                     else "", sig3(participant.cat12["tiv_cm3"]) if participant.cat12 else "",
                     sig3(z) if z is not None and np.isfinite(z) else ""])
    header = ["participant", "status", "flags", "r prior", "Dice prior", "CAT12 IQR",
              "TIV (cm\u00b3)", "outlier z"]
    legend = (f"<p>r prior / Dice prior: agreement of the cropped grey-matter map with the "
              f"MNI152 GM prior (flagged below {qc.MIN_PRIOR_CORRELATION} / "
              f"{qc.MIN_PRIOR_DICE}); CAT12 IQR: CAT12's image quality rating (flagged below "
              f"{qc.MIN_IQR_RATING:.0f} %, grade D or worse); outlier z: robust z-score of the "
              f"embedding's distance to the cohort's median embedding (flagged above "
              f"{qc.OUTLIER_Z}; needs {qc.MIN_OUTLIER_COHORT} participants).</p>")
    if not rows:
        return "<p>No participant outputs in this folder yet.</p>"
    return legend + table(header, rows, classes, raw_columns=(0, 2), css_class="sortable")


def pca_fragment(context):
    """The embeddings' first two principal components, coloured by participants.tsv."""
    from anatcl_nipype.reports.figures import pca_overview

    folder, vectors = context.folder, context.vectors
    encoded = [p for p in folder.encoded if p.label in vectors]
    if len(encoded) < 3:
        return "<p>Too few encoded participants for an overview (3 needed).</p>"
    vectors = [vectors[p.label] for p in encoded]
    if len({v.shape for v in vectors}) > 1:
        return "<p>The embeddings differ in size; no overview.</p>"
    groupings = {column: [p.info.get(column, "n/a") for p in encoded] for column in PCA_COLUMNS
                 if any(column in p.info for p in encoded)}
    caption = (f"Each point is one participant's embedding ({len(encoded)} in all), projected "
               "on the first two principal components of the cohort's embeddings"
               + (", coloured by " + ", ".join(groupings) if groupings else "") + ".")
    return figure_svg(pca_overview(np.stack(vectors), groupings), caption)


def prediction_fragment(context):
    """Each fitted probe: per-fold metrics (3 significant digits) and its figures."""
    parts = []
    for target in context.folder.targets:
        if not (target.metrics or target.predictions or target.summary):
            continue
        parts.append(f'<h3 id="target-{esc(target.name)}">{esc(target.name)} '
                     f"({esc(target.task or 'unknown task')})</h3>")
        parts += _target_figures(target)
        if target.metrics:
            parts.append("<p>Cross-validated metrics per fold, then their mean and sd.</p>"
                         + metrics_table(target.metrics))
    return "".join(parts) or "<p>No probe fitted yet (run the group level with --target).</p>"


def _target_figures(target):
    from anatcl_nipype.reports.figures import brain_age_gap

    figures = []
    task = PROBE_TASKS.get(target.task)
    for svg in target.figures:
        figures.append(figure_svg(svg.read_text(encoding="utf-8"),
                                  task.figure_caption if task else esc(svg.name)))
    rows = [r for r in target.predictions if r.get("repeat", "0") in ("0", "")]
    if task and task.corrects_age_bias and rows and "brain_age_gap" in rows[0]:
        age = _floats(rows, "true")
        figures.append(figure_svg(
            brain_age_gap(age, _floats(rows, "predicted") - age, _floats(rows, "brain_age_gap")),
            "Brain-age gap against age, out of fold. Left: raw (predicted minus true age), "
            "which the regression to the mean tilts; right: after the linear bias correction "
            "fitted on the training folds only. A flat line means no residual age bias."))
    return [f'<div class="row">{"".join(figures)}</div>'] if figures else []


def _floats(rows, column):
    values = []
    for row in rows:
        try:
            values.append(float(row.get(column, "nan")))
        except ValueError:
            values.append(float("nan"))
    return np.array(values)


def applied_fragment(context):
    """Predictions of saved probes applied to this folder, naming each model and its sha256."""
    parts = []
    for target in context.folder.targets:
        for applied in target.applied:
            model, sha = applied.model, applied.model_sha256
            parts.append(
                f"<h3>{esc(target.name)}: applied probe</h3>"
                + key_values([("model", model or "not recorded"),
                              ("model sha256", sha or "not recorded"),
                              ("predictions", applied.table.name),
                              ("participants", len(applied.rows))])
                + "<p>Predictions of a saved probe, applied unchanged: not cross-validated "
                  "here.</p>" + records_table(applied.rows))
    return "".join(parts) or ""


def methods_fragment(context):
    """The methods text (the same as methods.md): paragraphs, references, BibTeX."""
    body, _, bibtex = context.methods.partition("## BibTeX")
    text, _, references = body.partition("## References")
    paragraphs = [p.strip() for p in text.replace("# Methods", "", 1).split("\n\n") if p.strip()]
    items = [line[2:] for line in references.splitlines() if line.startswith("- ")]
    bib = bibtex.replace("```bibtex", "").replace("```", "").strip()
    return ("".join(f'<p class="methods">{esc(p)}</p>' for p in paragraphs)
            + "<h3>References</h3><ol>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ol>"
            + f"<details><summary>BibTeX</summary><pre>{esc(bib)}</pre></details>"
            + "<p>The same text is in <code>methods.md</code> beside this report.</p>")


def run_fragment(context):
    """Each recorded run: command, times, phases, host, versions, Nipype plugin."""
    folder = context.folder
    if not folder.runs:
        return ("<p>No run record (run-&lt;level&gt;.json) in this folder: the command that "
                "made it did not record one.</p>")
    parts = []
    for run in folder.runs:
        phases = ", ".join(f"{p.get('name')} {sig3(p.get('seconds'))} s"
                           for p in run.get("phases", []))
        software = ", ".join(f"{k} {v}" for k, v in run.get("software", {}).items() if v)
        plugin_args = ", ".join(f"{k}={v}" for k, v in run.get("nipype_plugin_args", {}).items())
        parts.append(f"<h3>{esc(run.get('level', 'run'))} level</h3>" + key_values([
            ("command", " ".join(run.get("command", []))),
            ("started", run.get("started", "")), ("finished", run.get("finished", "")),
            ("duration", f"{sig3(run.get('duration_s', ''))} s"), ("phases", phases),
            ("host", f"{run.get('host', '')} ({run.get('platform', '')})"),
            ("software", software),
            ("Nipype plugin", f"{run.get('nipype_plugin', '')} {plugin_args}".strip())]))
    return "".join(parts)


def graph_fragment(context):
    """The workflow graph Nipype drew (report/graph.svg), scaled to the page's width."""
    folder = context.folder
    if folder.graph is None:
        return "<p>Not drawn (run with <code>--write-graph</code>).</p>"
    svg = folder.graph.read_text(encoding="utf-8")
    if "<svg" not in svg:
        return "<p>graph.svg holds no SVG.</p>"
    return ('<div class="graph">' + figure_svg(svg[svg.find("<svg"):],
                                                "The Nipype workflow that made this folder.")
            + "</div>")


#: The participants' panels: filled by :mod:`~anatcl_nipype.reports.assemble`, no builder.
PARTICIPANTS = ReportSection("participant", "Participants")

#: The report's sections, in the page's order.
SECTIONS = (
    ReportSection("summary", "Summary", summary_fragment),
    ReportSection("qctable", "Quality control", qc_table_fragment,
                  "Every participant at a glance"),
    PARTICIPANTS,
    ReportSection("pca", "Embeddings", pca_fragment, "Embedding overview"),
    ReportSection("prediction", "Prediction", prediction_fragment),
    ReportSection("ensemble", "Fold ensembles", ensemble_fragment),
    ReportSection("harmonization", "Site harmonisation", harmonization_fragment),
    ReportSection("relevance", "Relevance maps", relevance_fragment),
    ReportSection("applied", "Applied probes", applied_fragment),
    ReportSection("methods", "Methods", methods_fragment),
    ReportSection("run", "Run", run_fragment, "How this output folder was made"),
    ReportSection("graph", "Workflow graph", graph_fragment),
)
