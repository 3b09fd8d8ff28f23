"""``anatcl-nipype <cat12_dir> <output_dir> group``: group tables, a probe, its evaluation.

Reads what the participant level wrote into ``<output_dir>`` (embeddings, regional tables),
fits and cross-validates a probe for ``--target`` (or applies ``--model``), and writes
``<output_dir>/group/target-<target>/``: the group feature tables, the probe and its card,
metrics, out-of-fold predictions, figures and a summary.
"""

import csv
import shutil
from pathlib import Path

from anatcl_nipype.cli.parser import EXIT_OK
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write
from anatcl_nipype.inputs import infer_task, read_column

#: Where each node output goes in ``group/target-<target>/`` (figures keep their suffix).
DESTINATIONS = {
    ("join_embeddings", "out_tsv"): "embeddings.tsv",
    ("join_embeddings", "out_json"): "embeddings.json",
    ("merge_regional", "out_tsv"): "regional.tsv",
    ("merge_regional", "out_json"): "regional.json",
    ("fit_probe", "model"): "probe.skops",
    ("fit_probe", "model_card"): "probe.json",
    ("fit_probe", "metrics_tsv"): "metrics.tsv",
    ("fit_probe", "predictions_tsv"): "predictions.tsv",
    ("fit_probe", "figures"): "cv",
    ("fit_probe", "out_json"): "summary.json",
    ("apply_probe", "predictions_tsv"): "predictions.tsv",
    ("apply_probe", "out_json"): "predictions.json",
}


def find_features(output_dir, desc, features):
    """The per-subject embeddings and regional tables the participant level wrote."""
    embeddings = regional = []
    if features in ("embeddings", "both"):
        embeddings = sorted(output_dir.glob(f"sub-*/**/*_desc-{desc}_embedding.npy"))
        if not embeddings:
            raise AnatCLError(f"{output_dir}: no embeddings named *_desc-{desc}_embedding.npy; "
                              "run the participant level first, with the same weights options")
    if features in ("regional", "both"):
        regional = sorted(output_dir.glob("sub-*/**/*_desc-cat12_regions.tsv"))
        if not regional:
            raise AnatCLError(f"{output_dir}: no regional tables (*_desc-cat12_regions.tsv); "
                              "the participant level writes them when CAT12's label/ and "
                              "report/ files are present")
    return embeddings, regional


def run_group_level(args):
    """Fit (or apply) a probe on the participant-level outputs; print the metrics."""
    from anatcl_nipype.cli.execution import RunReport, configure_nipype, run_workflow
    from anatcl_nipype.cli.main import find_participants_tsv
    from anatcl_nipype.cli.report import write_report
    from anatcl_nipype.workflows.derivatives import weights_desc
    from anatcl_nipype.workflows.group import init_anatcl_group_wf

    output_dir = Path(args.output_dir).absolute()
    if not args.target:
        raise AnatCLError("the group level needs --target, a participants.tsv column "
                          "(e.g. diagnosis or age)")
    participants_tsv = find_participants_tsv(args)
    if participants_tsv is None:
        raise AnatCLError(f"no participants.tsv in or above {args.cat12_dir}; pass --participants")
    task = args.task or infer_task(args.target, read_column(participants_tsv, args.target))
    embeddings, regional = find_features(
        output_dir, weights_desc(args.descriptor, args.fold, args.weights), args.features)
    configure_nipype(args.work_dir, args.verbose)
    workflow = init_anatcl_group_wf(
        participants_tsv=participants_tsv, target=args.target, task=task,
        embeddings=embeddings, regional=regional, cv=args.cv,
        model=args.model.absolute() if args.model else None,
        n_repeats=args.n_repeats, group_column=args.group_column,
        name=f"anatcl_group_{_safe(args.target)}_wf")
    print(f"{'Applying' if args.model else 'Fitting'} a {task} probe for {args.target!r} on "
          f"{args.features} features of {max(len(embeddings), len(regional))} participant(s)")
    report = run_workflow(workflow, args, RunReport())
    if report.failed:
        raise AnatCLError("; ".join(report.failed.values()))
    destination = output_dir / "group" / f"target-{_safe(args.target)}"
    written = _copy_outputs(report.graph, destination)
    _print_metrics(destination / "metrics.tsv")
    print(f"Group results: {destination} ({len(written)} files)")
    print(f"Report: {write_report(output_dir, participants_tsv)}")
    return EXIT_OK


def _safe(text):
    return "".join(c for c in text if c.isalnum()) or "target"


def _copy_outputs(graph, destination):
    """Copy the named outputs of the executed group workflow into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for node in graph.nodes():
        for (name, field), target in DESTINATIONS.items():
            if node.name != name:
                continue
            value = getattr(node.result.outputs, field)
            for source in map(Path, value if isinstance(value, list) else [value]):
                path = destination / (target + source.suffix if target == "cv" else target)
                with atomic_write(path) as tmp:
                    shutil.copyfile(source, tmp)
                written.append(path)
    return written


def _print_metrics(metrics_tsv):
    """Print the mean +- sd rows of a metrics table (absent when a probe was applied)."""
    if not metrics_tsv.is_file():
        return
    with open(metrics_tsv, newline="") as stream:
        rows = {row["fold"]: row for row in csv.DictReader(stream, delimiter="\t")}
    mean, sd = rows.get("mean"), rows.get("sd")
    if mean and sd:
        shown = [f"{name} {float(mean[name]):.3f} +- {float(sd[name]):.3f}"
                 for name in mean if name not in ("fold", "repeat") and mean[name] not in ("", "n/a")]
        print("Cross-validated " + ", ".join(shown))
