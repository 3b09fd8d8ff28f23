"""The HTML report of an anatcl-nipype output folder: one self-contained page.

Built only from what the output folder holds, so every level (participant, group) can
rewrite it: input QC (mid-slices of each cropped grey-matter map, flagged when odd), an
embedding overview (2-D PCA coloured by participants.tsv columns), prediction metrics and
figures, the methods boilerplate, the workflow graph and provenance. Figures are embedded
(PNG as data URIs, SVG inline), so the page opens from disk with no server.
"""

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from anatcl_nipype.files import atomic_write

REPORT_DIR = "anatcl"
#: Mean grey-matter density of a typical mwp1 map lies well inside this range.
TYPICAL_MEAN_GM = (0.05, 0.6)


def report_dir(output_dir):
    """``<output_dir>/anatcl``: the report, methods, graph and run summaries."""
    folder = Path(output_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_embeddings(output_dir):
    """``[(participant_id, npy path, sidecar dict)]`` of the embeddings in ``output_dir``."""
    found = []
    for npy in sorted(Path(output_dir).glob("sub-*/**/*_embedding.npy")):
        sidecar = json.loads(npy.with_suffix(".json").read_text())
        found.append((npy.name.split("_")[0], npy, sidecar))
    return found


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 2.2), dpi=80, layout="constrained")


def _png_data_uri(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def qc_flags(volume):
    """Reasons a cropped grey-matter map looks odd (empty list when it looks like CAT12's)."""
    flags = []
    inside = volume[volume > 0]
    mean = float(inside.mean()) if inside.size else 0.0
    if not TYPICAL_MEAN_GM[0] <= mean <= TYPICAL_MEAN_GM[1]:
        flags.append(f"mean GM density {mean:.2f} outside {TYPICAL_MEAN_GM}")
    if float(volume.max()) > 1.5:
        flags.append(f"maximum {float(volume.max()):.2f} > 1.5 (modulated GM is about 0-1)")
    return flags


def _qc_panel(participant_id, gm_path):
    from anatcl_nipype.encoder.volumes import load_cat12_volume
    from anatcl_nipype.errors import AnatCLError

    try:
        volume = load_cat12_volume(gm_path)
    except AnatCLError as error:
        return None, [str(error)]
    figure = _figure()
    axes = figure.subplots(1, 3)
    centre = [n // 2 for n in volume.shape]
    slices = (volume[centre[0]].T, volume[:, centre[1]].T, volume[:, :, centre[2]].T)
    for ax, image, title in zip(axes, slices, ("sagittal", "coronal", "axial")):
        ax.imshow(image, origin="lower", cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    figure.suptitle(participant_id, fontsize=9)
    return _png_data_uri(figure), qc_flags(volume)


def read_participants(path):
    """participants.tsv as ``{participant_id: row dict}`` (empty when absent)."""
    if not path or not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as stream:
        return {row["participant_id"]: row for row in csv.DictReader(stream, delimiter="\t")}


def _pca_panel(embeddings, participants):
    ids = [pid for pid, _, _ in embeddings]
    matrix = np.stack([np.load(npy) for _, npy, _ in embeddings]).astype(np.float64)
    matrix -= matrix.mean(0)
    _, singular, components = np.linalg.svd(matrix, full_matrices=False)
    scores = matrix @ components[:2].T
    explained = singular[:2] ** 2 / max(float((singular ** 2).sum()), 1e-12)
    columns = [c for c in ("diagnosis", "site", "sex") if any(c in r for r in participants.values())]
    figure = _figure()
    figure.set_size_inches(3.2 * max(1, len(columns)), 3)
    for ax, column in zip(np.atleast_1d(figure.subplots(1, max(1, len(columns)))),
                          columns or [None]):
        values = [participants.get(pid, {}).get(column, "n/a") if column else "all" for pid in ids]
        for value in sorted(set(values)):
            keep = [v == value for v in values]
            ax.scatter(scores[keep, 0], scores[keep, 1], s=14, label=value)
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})", fontsize=8)
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})", fontsize=8)
        ax.set_title(f"coloured by {column}" if column else "embeddings", fontsize=9)
        ax.legend(fontsize=7)
    return _png_data_uri(figure)


def _table(rows):
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _read_tsv_rows(path):
    with open(path, newline="") as stream:
        return list(csv.reader(stream, delimiter="\t"))


def _group_section(output_dir):
    group = Path(output_dir) / "group"
    parts = []
    for metrics in sorted(group.glob("*/metrics.tsv")):
        parts.append(f"<h3>{html.escape(metrics.parent.name)}</h3>"
                     f"{_table(_read_tsv_rows(metrics))}")
    for svg in sorted(group.glob("**/*.svg")):
        parts.append(f"<figure class='prediction'>{_inline_svg(svg)}"
                     f"<figcaption>{html.escape(svg.parent.name)}</figcaption></figure>")
    return "".join(parts) or "<p>No group-level results yet (run the group level).</p>"


def _inline_svg(path):
    text = Path(path).read_text()
    return text[text.find("<svg"):] if "<svg" in text else ""


def _random_weights_banner(embeddings):
    if not any(s.get("weights", {}).get("random") for _, _, s in embeddings):
        return ""
    return ("<div class='warning'><b>RANDOM WEIGHTS.</b> These embeddings come from seeded "
            "random weights, not the pretrained AnatCL model: they carry no learned anatomy. "
            "Fetch the released weights (<code>anatcl-nipype weights fetch</code>) or pass "
            "<code>--weights</code> for real results.</div>")


def write_report(output_dir, participants_tsv=None):
    """Write ``<output_dir>/anatcl/report.html`` from the folder's contents; return its path."""
    folder = report_dir(output_dir)
    embeddings = find_embeddings(output_dir)
    participants = read_participants(participants_tsv)
    failures = _read_tsv_rows(folder / "failed.tsv") if (folder / "failed.tsv").is_file() else []
    qc_items = []
    for participant_id, _, sidecar in embeddings:
        uri, flags = _qc_panel(participant_id, sidecar["input"]["path"])
        flag_html = "".join(f"<li>{html.escape(f)}</li>" for f in flags)
        image = f"<img alt='{participant_id} mid-slices' src='{uri}'>" if uri else ""
        qc_items.append(f"<div class='qc{' flagged' if flags else ''}'>{image}"
                        f"<ul>{flag_html}</ul></div>")
    methods = folder / "methods.md"
    graph = folder / "graph.svg"
    provenance = embeddings[0][2] if embeddings else {}
    sections = [
        ("Summary", f"<p>{len(embeddings)} participant(s) encoded; "
                    f"{max(0, len(failures) - 1)} failed.</p>" + (_table(failures) if len(failures) > 1 else "")),
        ("Input QC", "<p>Mid-slices of each cropped 121x128x121 grey-matter map; odd maps are "
                     "outlined in red.</p>" + "".join(qc_items)),
        ("Embeddings", f"<img alt='embedding PCA' src='{_pca_panel(embeddings, participants)}'>"
                       if len(embeddings) > 2 else "<p>Too few participants for a PCA.</p>"),
        ("Prediction", _group_section(output_dir)),
        ("Methods", f"<pre>{html.escape(methods.read_text())}</pre>" if methods.is_file()
                    else "<p>not written</p>"),
        ("Workflow graph", _inline_svg(graph) if graph.is_file() else "<p>not drawn "
                           "(run with --write-graph)</p>"),
        ("Provenance", "<pre>" + html.escape(json.dumps(
            {k: provenance.get(k) for k in ("software", "weights", "precision", "device",
                                            "preprocessing")}, indent=2)) + "</pre>"),
    ]
    body = "".join(f"<section id='{title.lower().replace(' ', '-')}'><h2>{title}</h2>{content}"
                   "</section>" for title, content in sections)
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>anatcl-nipype report</title><style>{_CSS}</style></head><body>"
            f"<h1>anatcl-nipype report</h1>{_random_weights_banner(embeddings)}{body}"
            "</body></html>")
    path = folder / "report.html"
    with atomic_write(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
.warning { background: #fff3cd; border: 2px solid #d9a400; padding: 0.8em; margin: 1em 0; }
.qc { display: inline-block; margin: 4px; border: 2px solid #ddd; vertical-align: top; }
.qc.flagged { border-color: #c00; }
.qc ul { color: #c00; font-size: 0.8em; max-width: 460px; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; }
figure.prediction { display: inline-block; max-width: 520px; }
figure.prediction svg { max-width: 500px; height: auto; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.6em; }
"""
