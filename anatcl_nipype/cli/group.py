"""``anatcl-nipype <cat12_dir> <output_dir> group``: a probe on the participant-level outputs.

Reads what the participant level wrote into ``<output_dir>`` (embeddings, regional tables)
and runs :func:`~anatcl_nipype.workflows.init_anatcl_group_wf`, whose sinks write
``<output_dir>/group/target-<target>/``: fitting writes the group feature tables, the probe
and its card, metrics, out-of-fold predictions, figures and a summary; applying a saved
probe (``--model``) writes ``desc-applied_predictions.tsv`` and ``.json`` beside them and
changes nothing else. Target, task, feature kind and encoder weights of an applied probe
come from its card; options that contradict the card stop the command (exit code 2)
before anything is written.
"""

import csv
import json
from pathlib import Path

from anatcl_nipype.bids import bids_label, weights_desc
from anatcl_nipype.cli.parser import EXIT_OK, UsageError
from anatcl_nipype.errors import AnatCLError, PredictionError
from anatcl_nipype.inputs import find_participants_tsv, infer_task, read_column


def read_probe_card(model):
    """The JSON card saved beside a probe (no scikit-learn needed to read it)."""
    card = Path(model).with_suffix(".json")
    if not Path(model).is_file():
        raise AnatCLError(f"{model}: no such probe file; pass the .skops file a fit saved")
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise AnatCLError(f"{card}: cannot read the probe's card ({error}); keep the .json "
                          "a fit saved beside the .skops file") from None


def plan_group_level(options):
    """Check the options against the inputs (and the probe card); return what to run.

    Returns ``dict(target, task, features, desc, participants_tsv)``. Raises
    :class:`UsageError` when ``--target``/``--features``/``--task`` contradict the card.
    """
    participants_tsv = find_participants_tsv(options.cat12_dir, options.participants)
    if options.model is None:
        if not options.target:
            raise AnatCLError("the group level needs --target, a participants.tsv column "
                              "(e.g. diagnosis or age)")
        if participants_tsv is None:
            raise AnatCLError(f"no participants.tsv in or above {options.cat12_dir}; pass "
                              "--participants")
        task = options.task or infer_task(options.target,
                                          read_column(participants_tsv, options.target))
        encoder = options.encoder_options()
        return dict(target=options.target, task=task, features=options.features or "embeddings",
                    desc=weights_desc(encoder["descriptor"], encoder["fold"], options.weights),
                    participants_tsv=participants_tsv)
    from anatcl_nipype.prediction.applying import card_feature_kind, check_card_agrees

    card = read_probe_card(options.model)
    try:
        check_card_agrees(card, options.model, target=options.target,
                          features=options.features, task=options.task)
    except PredictionError as error:
        raise UsageError(str(error)) from None
    return dict(target=card["target"], task=card["task"], features=card_feature_kind(card),
                desc=_card_desc(card, options), participants_tsv=participants_tsv)


def _card_desc(card, options):
    """The ``desc`` of the embeddings to apply the probe to: the options', else the card's."""
    if options.weights is not None or options.descriptor is not None or options.fold is not None:
        encoder = options.encoder_options()
        return weights_desc(encoder["descriptor"], encoder["fold"], options.weights)
    weights = card.get("feature_source", {}).get("weights") or {}
    return weights_desc(weights.get("descriptor"), weights.get("fold"))


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


def run_group_level(options):
    """Fit (or apply) a probe on the participant-level outputs; print what was written."""
    output_dir = Path(options.output_dir).absolute()
    plan = plan_group_level(options)
    embeddings, regional = find_features(output_dir, plan["desc"], plan["features"])
    from anatcl_nipype.cli.execution import RunReport, configure_nipype, run_workflow
    from anatcl_nipype.cli.report import write_report
    from anatcl_nipype.workflows.group import init_anatcl_group_wf, target_folder

    configure_nipype(options.work_dir, options.verbose)
    workflow = init_anatcl_group_wf(
        target=plan["target"], task=plan["task"], features=plan["features"],
        model=Path(options.model).absolute() if options.model else None, cv=options.cv,
        n_repeats=options.n_repeats, group_column=options.group_column,
        output_dir=output_dir, name=f"anatcl_group_{bids_label(plan['target'])}_wf")
    workflow.inputs.inputnode.embeddings = [str(path) for path in embeddings]
    workflow.inputs.inputnode.regional_tsv = [str(path) for path in regional]
    if plan["participants_tsv"] is not None:
        workflow.inputs.inputnode.participants_tsv = str(plan["participants_tsv"])
    print(f"{'Applying' if options.model else 'Fitting'} a {plan['task']} probe for "
          f"{plan['target']!r} on {plan['features']} features of "
          f"{max(len(embeddings), len(regional))} participant(s)")
    report = run_workflow(workflow, options, RunReport())
    if report.failed:
        raise AnatCLError("; ".join(report.failed.values()))
    destination = output_dir / target_folder(plan["target"])
    if options.model:
        print(f"Applied {options.model} (predictions are in sample for participants it was "
              f"fitted on, not cross-validated): "
              f"{destination / 'desc-applied_predictions.tsv'}")
    else:
        _print_metrics(destination / "metrics.tsv")
        print(f"Group results: {destination}")
    print(f"Report: {write_report(output_dir, plan['participants_tsv'])}")
    return EXIT_OK


def _print_metrics(metrics_tsv):
    """Print the mean +- sd rows of the cross-validation's metrics table."""
    with open(metrics_tsv, newline="") as stream:
        rows = {row["fold"]: row for row in csv.DictReader(stream, delimiter="\t")}
    mean, sd = rows.get("mean"), rows.get("sd")
    if mean and sd:
        shown = [f"{name} {float(mean[name]):.3f} +- {float(sd[name]):.3f}"
                 for name in mean if name not in ("fold", "repeat") and mean[name] not in ("", "n/a")]
        print("Cross-validated " + ", ".join(shown))
