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
from pathlib import Path

from anatcl_nipype.bids import bids_label, bounded_label, weights_desc
from anatcl_nipype.cli.execution import start_workers_early
from anatcl_nipype.cli.parser import EXIT_OK, UsageError
from anatcl_nipype.cli.progress import Phases, finish_level, run_timed
from anatcl_nipype.errors import AnatCLError, PredictionError
from anatcl_nipype.files import JSONFileError, read_json_bounded
from anatcl_nipype.inputs import find_participants_tsv, infer_task, target_values
from anatcl_nipype.outputs import (
    GROUP_FILES,
    fold_folder,
    participant_file,
    participant_files,
    target_folder,
)


def read_probe_card(model):
    """The JSON card saved beside a probe, read within the limits of
    :func:`~anatcl_nipype.prediction.persistence.load_probe` (no scikit-learn needed).

    >>> read_probe_card("/nonexistent/age.skops")
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.AnatCLError: /nonexistent/age.skops: no such probe file; ...
    """
    from anatcl_nipype.prediction.persistence import MAX_CARD_BYTES, MAX_JSON_DEPTH, card_path

    card = card_path(model)
    if not Path(model).is_file():
        raise AnatCLError(f"{model}: no such probe file; pass the .skops file a fit saved")
    try:
        content = read_json_bounded(card, max_bytes=MAX_CARD_BYTES, max_depth=MAX_JSON_DEPTH,
                                    what="probe's card")
    except JSONFileError as error:
        raise AnatCLError(f"{error}; restore the .json a fit saved beside the .skops file") \
            from None
    if not (isinstance(content, dict) and {"target", "task"} <= content.keys()
            and isinstance(content.get("feature_source"), dict)):
        raise AnatCLError(f"{card}: not a probe card (it needs target, task and feature_source); "
                          "restore the .json a fit saved beside the .skops file")
    return content


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
                                          target_values(participants_tsv, options.target))
        features = options.features or "embeddings"
        return dict(target=options.target, task=task, features=features,
                    desc=_embeddings_desc(options, features), participants_tsv=participants_tsv)
    from anatcl_nipype.prediction.applying import card_feature_kind, check_card_agrees

    card = read_probe_card(options.model)
    try:
        check_card_agrees(card, options.model, target=options.target,
                          features=options.features, task=options.task)
    except PredictionError as error:
        raise UsageError(str(error)) from None
    return dict(target=card["target"], task=card["task"], features=card_feature_kind(card),
                desc=_card_desc(card, options), participants_tsv=participants_tsv)


def _weights_given(options):
    return options.weights is not None or options.descriptor is not None or \
        options.fold is not None


def _embeddings_desc(options, features):
    """The ``desc`` of the embeddings to fit on: the weights options' when given, else the one
    kind the participant level wrote (said, with its weights); several kinds: ask which."""
    chosen = _options_desc(options)
    if _weights_given(options) or features == "regional":
        return chosen
    found = find_embedding_kinds(options.output_dir)
    if len(found) > 1:
        kinds = "; ".join(f"desc-{desc} ({weights})" for desc, weights in found.items())
        raise UsageError(f"{options.output_dir} holds embeddings from several weights: {kinds}. "
                         "Choose with --descriptor/--fold (released weights; --fold all for "
                         "their ensemble) or --weights FILE (your checkpoint)")
    if not found:
        return chosen
    (desc, weights), = found.items()
    print(f"Using the participant-level embeddings desc-{desc}, made with {weights}")
    return desc


def find_embedding_kinds(output_dir):
    """``{desc: the weights they came from}`` for every kind of embeddings the participant
    level wrote into ``output_dir`` (the weights read from one sidecar of each kind).

    >>> find_embedding_kinds("/nonexistent")
    {}
    """
    kinds = {}
    for path in sorted(Path(output_dir).glob("sub-*/**/*_desc-anatcl*_embedding.npy")):
        desc = path.name.split("_desc-", 1)[1].split("_", 1)[0]
        if desc not in kinds:
            kinds[desc] = _weights_of(path.with_suffix(".json"))
    return kinds


def _weights_of(sidecar):
    """A few words on the weights a sidecar names."""
    from anatcl_nipype.prediction.feature_source import read_sidecar

    try:
        provenance = read_sidecar(sidecar)
    except PredictionError:
        return f"weights unknown: {sidecar} is unreadable"
    if "fold_weights" in provenance:
        return f"a fold ensemble of {len(provenance['fold_weights'])} checkpoints"
    weights = provenance.get("weights") or {}
    name = (f"released {weights['descriptor']} fold {weights['fold']} weights"
            if weights.get("descriptor") else f"the checkpoint {weights.get('path', '?')}")
    return name + (" (SEEDED RANDOM weights)" if weights.get("random") else "")


def _options_desc(options):
    """The ``desc`` the weights options name (``--weights FILE``: see
    :func:`_checkpoint_desc`)."""
    if options.weights is not None:
        return _checkpoint_desc(options.output_dir, path=options.weights)
    encoder = options.encoder_options()
    return weights_desc(encoder.descriptor, encoder.fold)


def _checkpoint_desc(output_dir, path=None, sha256=None):
    """``anatclRandom`` when the participant level wrote the embeddings of the checkpoint
    (its ``path`` or ``sha256``) as seeded random weights (one sidecar of that kind names
    it), else ``anatclCustom``: the sinks chose it from the sidecars, no checkpoint is read.

    >>> _checkpoint_desc("/nonexistent", path="/w/mine.pth")
    'anatclCustom'
    """
    from anatcl_nipype.prediction.feature_source import read_sidecar

    sidecar = next(Path(output_dir).glob("sub-*/**/*_desc-anatclRandom_embedding.json"), None)
    try:
        recorded = {} if sidecar is None else read_sidecar(sidecar).get("weights") or {}
    except PredictionError:
        recorded = {}
    same = ((path is not None and recorded.get("path") == str(Path(path).resolve()))
            or (sha256 is not None and recorded.get("sha256") == sha256))
    return weights_desc(weights=path or sha256, random=same)


def _card_desc(card, options):
    """The ``desc`` of the embeddings to apply the probe to: the options', else the card's
    (a checkpoint's: found by its sha256)."""
    if _weights_given(options):
        return _options_desc(options)
    from anatcl_nipype.prediction.applying import card_weights

    weights = card_weights(card) or {}
    if weights.get("descriptor") is None and weights.get("sha256"):
        return _checkpoint_desc(options.output_dir, sha256=weights["sha256"])
    return weights_desc(weights.get("descriptor"), weights.get("fold"))


def find_features(output_dir, desc, features):
    """The per-subject embeddings and regional tables the participant level wrote."""
    embeddings = regional = []
    if features in ("embeddings", "both"):
        named = participant_file("embedding", ".npy", desc)
        embeddings = participant_files(output_dir, "embedding", ".npy", desc)
        if not embeddings:
            raise AnatCLError(f"{output_dir}: no embeddings named *{named}; "
                              "run the participant level first, with the same weights options")
    if features in ("regional", "both"):
        regional = participant_files(output_dir, "regional", ".tsv")
        if not regional:
            raise AnatCLError(f"{output_dir}: no regional tables "
                              f"(*{participant_file('regional', '.tsv')}); "
                              "the participant level writes them when CAT12's label/ and "
                              "report/ files are present")
    return embeddings, regional


def of_sessions(paths, session_labels):
    """The participant-level files of these sessions (all files when none are named).

    >>> [p.name for p in of_sessions([Path("sub-1_ses-a_x.npy"), Path("sub-1_ses-b_x.npy")],
    ...                              ["b"])]
    ['sub-1_ses-b_x.npy']
    """
    if not session_labels:
        return paths
    wanted = {f"_ses-{label.removeprefix('ses-')}_" for label in session_labels}
    return [path for path in paths if any(tag in path.name for tag in wanted)]


def _sessions_group(paths):
    """``participant_id`` when the files are sessions (folds then keep each participant's
    sessions together, and the methods say so), else None."""
    return "participant_id" if any("_ses-" in Path(path).name for path in paths) else None


def run_group_level(options):
    """Fit (or apply) a probe on the participant-level outputs; print what was written."""
    if options.reports_only:
        from anatcl_nipype.cli.participant import rebuild_report

        return rebuild_report(options)
    output_dir = Path(options.output_dir).absolute()
    phases = Phases()
    with phases("discovery"):
        plan = plan_group_level(options)
        folds = _ensemble_folds(options)
        embeddings, regional = (of_sessions(paths, options.session_label) for paths in
                                find_features(output_dir, plan["desc"], plan["features"]))
    with phases("start-up"):
        start_workers_early(options)
        workflow = _build(options, plan, folds, output_dir, embeddings, regional)
    phases.say(f"{'Applying' if options.model else 'Fitting'} a {plan['task']} probe for "
               f"{plan['target']!r} on {plan['features']} features of "
               f"{max(len(embeddings), len(regional))} participant(s)")
    report = run_timed(workflow, options, phases, "probe")
    if report.failed:
        raise AnatCLError(_failure_message(report.failed, output_dir, plan["target"]))
    _print_results(options, output_dir, plan, folds)
    finish_level(options, "group", phases, plan["participants_tsv"])
    return EXIT_OK


def _failure_message(failed, output_dir, target):
    """What failed; where the probe itself failed, that nothing of it was written.

    >>> _failure_message({"wf.fit_probe": "too few participants"}, Path("/o"), "age")
    ... # doctest: +NORMALIZE_WHITESPACE
    'too few participants. The probe was not fitted, so no feature table, probe or metrics
     of this run were written to /o/group/target-age'
    """
    text = "; ".join(failed.values())
    probes = ("fit_probe", "combine_folds")
    if any(node.rsplit(".", 1)[-1].startswith(probes) for node in failed):
        text += (". The probe was not fitted, so no feature table, probe or metrics of this "
                 f"run were written to {output_dir / target_folder(target)}")
    return text


def _build(options, plan, folds, output_dir, embeddings, regional):
    """The group workflow with its inputs set."""
    from anatcl_nipype.cli.execution import configure_nipype
    from anatcl_nipype.workflows.group import init_anatcl_group_wf

    configure_nipype(options.work_dir, options.verbose)
    workflow = init_anatcl_group_wf(
        target=plan["target"], task=plan["task"], features=plan["features"],
        model=Path(options.model).absolute() if options.model else None, cv=options.cv,
        n_repeats=options.n_repeats,
        group_column=options.group_column or _sessions_group(embeddings or regional),
        output_dir=output_dir,
        name=f"anatcl_group_{bounded_label(bids_label(plan['target']))}_wf",
        folds=folds, omp_nthreads=options.omp_nthreads or options.nprocs,
        **_study_options(options))
    inputs = workflow.inputs.inputnode
    if folds:
        inputs.embeddings, inputs.embeddings_json = _fold_embeddings(options, output_dir, folds)
    else:
        inputs.embeddings = [str(path) for path in embeddings]
        if any("_ses-" in path.name for path in embeddings):  # one row per session
            inputs.embedding_ids = [path.name.split("_desc-")[0] for path in embeddings]
    if options.relevance_maps:
        _set_relevance_inputs(inputs, options)
    inputs.regional_tsv = [str(path) for path in regional]
    if plan["participants_tsv"] is not None:
        inputs.participants_tsv = str(plan["participants_tsv"])
    return workflow


def _print_results(options, output_dir, plan, folds):
    """Where the group results are, with the cross-validated metrics."""
    destination = output_dir / target_folder(plan["target"])
    if options.model:
        print(f"Applied {Path(options.model).absolute()} (predictions are in sample for "
              "participants it was fitted on, not cross-validated): "
              f"{destination / GROUP_FILES['applied_predictions']}")
    elif folds:
        for fold in folds:
            print(f"Encoder fold {fold}:", end=" ")
            _print_metrics(destination / fold_folder(fold) / GROUP_FILES["metrics"])
        print("Ensemble (mean of the folds' out-of-fold predictions):", end=" ")
        _print_metrics(destination / GROUP_FILES["ensemble_metrics"])
        print(f"Group results: {destination} (fold-<k>/ per encoder fold)")
    else:
        _print_metrics(destination / GROUP_FILES["metrics"])
        print(f"Group results: {destination}")


def _ensemble_folds(options):
    """The encoder folds of ``--fold all`` when fitting (None otherwise)."""
    encoder = options.encoder_options()
    if encoder.folds and options.model:
        raise UsageError("--fold all fits one probe per encoder fold; to apply a saved probe "
                         "leave --fold out (its card names the fold)")
    return list(encoder.folds) if encoder.folds and not options.model else None


def _study_options(options):
    """FitProbe's brain-age bias folds, harmonisation options and the relevance maps'
    (fitting only)."""
    if options.model:
        return {}
    study = {"bias_cv": options.bias_cv}
    if options.harmonize != "none":
        study.update(harmonize=options.harmonize, site_column=options.site_column,
                     covariate_columns=list(options.covariates),
                     unseen_sites=options.unseen_sites)
    if options.relevance_maps:
        relevance = dict(steps=options.relevance_steps, method=options.relevance_method,
                         baseline=options.relevance_baseline)
        if options.relevance_atlas:
            relevance["atlas"] = str(Path(options.relevance_atlas).absolute())
        if options.relevance_labels:
            relevance["label_table"] = str(Path(options.relevance_labels).absolute())
        if options.weights is None:
            encoder = options.encoder_options()
            relevance.update(descriptor=encoder.descriptor, fold=encoder.fold)
        study.update(relevance_maps=True, relevance_options=relevance)
    return study


def _fold_embeddings(options, output_dir, folds):
    """Each encoder fold's embeddings and their sidecars: one list per fold, in order."""
    descriptor = options.encoder_options().descriptor
    paths = [of_sessions(find_features(output_dir, weights_desc(descriptor, fold),
                                       "embeddings")[0], options.session_label)
             for fold in folds]
    return ([[str(p) for p in fold] for fold in paths],
            [[str(p.with_suffix(".json")) for p in fold] for fold in paths])


def _set_relevance_inputs(inputs, options):
    """The CAT12 grey-matter maps (and checkpoint) the relevance maps explain, on the
    inputnode's ``inputs``."""
    from anatcl_nipype.inputs import find_cat12_subjects

    subjects = find_cat12_subjects(options.cat12_dir, options.participant_label,
                                   options.session_label)
    inputs.gm_maps = [str(s.gm_modulated) for s in subjects]
    inputs.participant_ids = [s.scan_id for s in subjects]
    if options.weights is not None:
        inputs.weights = str(Path(options.weights).absolute())
    print(f"Relevance maps: {len(subjects)} map(s), {options.relevance_method}"
          + (f", {options.relevance_steps} steps = {options.relevance_steps} forward and "
             "backward passes per map (minutes per map on a CPU)"
             if options.relevance_method == "integrated_gradients" else ""))


def read_metrics(metrics_tsv):
    """The rows of a cross-validation's ``metrics.tsv`` by their ``fold`` (``0``.., ``mean``,
    ``sd``)."""
    with open(metrics_tsv, newline="") as stream:
        return {row["fold"]: row for row in csv.DictReader(stream, delimiter="\t")}


def _print_metrics(metrics_tsv):
    """Print the mean ± sd rows of the cross-validation's metrics table (the report's rule:
    :func:`~anatcl_nipype.prediction.summary_text.mean_sd_text`)."""
    from anatcl_nipype.prediction.summary_text import mean_sd_text

    rows = read_metrics(metrics_tsv)
    mean, sd = rows.get("mean"), rows.get("sd")
    if mean and sd:
        shown = [f"{name} {mean_sd_text(mean[name], sd[name])}" for name in mean
                 if name not in ("fold", "repeat") and mean[name] not in ("", "n/a")]
        print("Cross-validated " + ", ".join(shown))
