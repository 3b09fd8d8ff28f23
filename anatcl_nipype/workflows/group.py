"""The group level: feature tables in, a cross-validated probe (or a saved one applied) out.

The one group-level factory: the ``anatcl-nipype ... group`` command and users' own
pipelines both call :func:`init_anatcl_group_wf`. Building it imports neither torch nor
scikit-learn.

>>> wf = init_anatcl_group_wf(target="age", output_dir="/tmp/derivatives")
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())  # doctest: +NORMALIZE_WHITESPACE
['features_tsv', 'figures', 'metrics_tsv', 'model', 'model_card', 'predictions_tsv',
 'summary_json']
>>> wf.get_node("ds_model").inputs.folder
'group/target-age'
"""

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import bids_label
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.interfaces.bids import GroupDerivativesSink
from anatcl_nipype.interfaces.prediction import (ApplyProbe, CombineFoldProbes, FitProbe,
                                                  JoinEmbeddings)
from anatcl_nipype.interfaces.regional import MergeRegionalTables
from anatcl_nipype.options import AUTO_TASK, FEATURE_KINDS, TASKS, check_choice

#: The public contract of the outputnode.
OUTPUTS = ("features_tsv", "model", "model_card", "metrics_tsv", "predictions_tsv", "figures",
           "summary_json")
#: Peak memory of a probe node: a few feature tables and a linear model (a guess with
#: room to spare for thousands of subjects x 512 features).
PROBE_MEM_GB = 1.0
#: Where each result is written in ``<output_dir>/group/target-<target>/``:
#: (node, field, file name, sink node).
FIT_DERIVATIVES = (
    ("join_embeddings", "out_tsv", "embeddings.tsv", "ds_embeddings_tsv"),
    ("join_embeddings", "out_json", "embeddings.json", "ds_embeddings_json"),
    ("merge_regional", "out_tsv", "regional.tsv", "ds_regional_tsv"),
    ("merge_regional", "out_json", "regional.json", "ds_regional_json"),
    ("fit_probe", "model", "probe.skops", "ds_model"),
    ("fit_probe", "model_card", "probe.json", "ds_model_card"),
    ("fit_probe", "metrics_tsv", "metrics.tsv", "ds_metrics"),
    ("fit_probe", "predictions_tsv", "predictions.tsv", "ds_predictions"),
    ("fit_probe", "figures", "cv", "ds_figures"),
    ("fit_probe", "out_json", "summary.json", "ds_summary"),
)
#: A fold ensemble's combined results, beside the per-fold ``fold-<k>/`` folders.
ENSEMBLE_DERIVATIVES = (
    ("combine_folds", "predictions_tsv", "desc-ensemble_predictions.tsv",
     "ds_ensemble_predictions"),
    ("combine_folds", "metrics_tsv", "desc-ensemble_metrics.tsv", "ds_ensemble_metrics"),
    ("combine_folds", "folds_tsv", "desc-folds_metrics.tsv", "ds_folds_metrics"),
    ("combine_folds", "out_json", "desc-ensemble_summary.json", "ds_ensemble_summary"),
)
#: Relevance maps of the fitted probe (group map, its sidecar, the region table).
RELEVANCE_DERIVATIVES = (
    ("relevance_maps", "group_map", "desc-relevance_statmap.nii.gz", "ds_relevance_map"),
    ("relevance_maps", "group_json", "desc-relevance_statmap.json", "ds_relevance_json"),
    ("relevance_maps", "region_tsv", "desc-relevance_regions.tsv", "ds_relevance_regions"),
    ("relevance_maps", "region_json", "desc-relevance_regions.json",
     "ds_relevance_regions_json"),
)
#: Integrated-gradients steps of the relevance maps: forward+backward passes per map.
RELEVANCE_STEPS = 20
#: Applying a saved probe writes beside the fitted results, never over them.
APPLY_DERIVATIVES = (
    ("apply_probe", "predictions_tsv", "desc-applied_predictions.tsv", "ds_predictions"),
    ("apply_probe", "out_json", "desc-applied_predictions.json", "ds_predictions_json"),
)

_MODELS = {
    "classification": "L2-regularised logistic regression with balanced class weights, its "
                      "inverse penalty C chosen among 7 values from 1e-4 to 1e2 by an inner "
                      "stratified 5-fold cross-validation on the log-loss",
    "regression": "ridge regression, its penalty chosen among 15 values from 1e-2 to 1e5 by "
                  "efficient leave-one-out cross-validation",
    "brain_age": "ridge regression, its penalty chosen among 15 values from 1e-2 to 1e5 by "
                 "efficient leave-one-out cross-validation, followed by the linear age-bias "
                 "correction of the brain-age gap fitted on the training data only "
                 "(Beheshti et al., 2019)",
    AUTO_TASK: "logistic regression (a categorical target) or ridge regression (a numeric "
               "one), its penalty chosen by an inner cross-validation",
}
_METRICS = {
    "classification": "balanced accuracy and the area under the ROC curve",
    "regression": "mean absolute error (MAE), root mean squared error, R2 and Pearson's r",
    "brain_age": "mean absolute error (MAE), root mean squared error, R2 and Pearson's r "
                 "of the uncorrected predicted age",
    AUTO_TASK: "balanced accuracy and ROC AUC (categories) or the mean absolute error, "
               "root mean squared error, R2 and Pearson's r (numbers)",
}
_FEATURES_TEXT = {
    "embeddings": "the AnatCL embeddings",
    "regional": "the region-wise measures",
    "both": "the AnatCL embeddings, joined with the region-wise measures,",
}


def target_folder(target):
    """Where a target's group results go, relative to the derivatives folder.

    >>> target_folder("MMSE score")
    'group/target-MMSEscore'
    """
    return f"group/target-{bids_label(target)}"


def init_anatcl_group_wf(*, target, task=AUTO_TASK, features="embeddings", model=None, cv=5,
                         group_column=None, n_repeats=1, seed=0, n_permutations=0,
                         output_dir=None, name="anatcl_group_wf", folds=None,
                         relevance_maps=False, relevance_options=None, omp_nthreads=1,
                         **probe_options):
    """Join the participants' features, then fit and cross-validate a probe (or apply one).

    Inputs (``inputnode``)
    ----------------------
    embeddings
        Per-participant embeddings (``.npy``, JSON sidecars beside them) or one group
        table (``.tsv``); used for ``features`` ``embeddings`` and ``both``.
    embeddings_json
        Optional: their JSON sidecars, in the same order (connect ``AnatCLEncode``'s
        ``out_json`` in a parent workflow: Nipype removes outputs no node uses).
    regional_tsv
        Per-participant region-wise tables or one group table (JSON sidecars beside);
        used for ``features`` ``regional`` and ``both``.
    participants_tsv
        BIDS ``participants.tsv`` with the ``target`` column (and ``group_column``).

    Outputs (``outputnode``)
    ------------------------
    features_tsv
        The group feature tables the probe used (embeddings and/or regional).
    model, model_card, metrics_tsv, figures, summary_json
        The probe fitted on everyone with a known target, its card, the metrics per fold,
        the CV figure (SVG, PNG) and a summary (fitting only; ``summary_json`` is the
        applied predictions' sidecar when applying).
    predictions_tsv
        Out-of-fold predictions when fitting; the saved probe's predictions (in sample for
        participants it was fitted on, never called cross-validated) when applying.

    ``task="auto"`` picks brain_age for an ``age`` column, regression for numbers and
    classification otherwise, when the node runs. With ``model`` (a ``.skops`` probe a fit
    saved, its ``.json`` card beside it) the probe is applied instead: its card must name
    this ``target`` and these ``features``. ``probe_options`` are passed to
    :class:`~anatcl_nipype.interfaces.prediction.FitProbe` as they are. With
    ``output_dir``, sinks inside the graph write the results into
    ``<output_dir>/group/target-<target>/`` (``embeddings.tsv``, ``regional.tsv``,
    ``probe.skops``/``.json``, ``metrics.tsv``, ``predictions.tsv``, ``cv.svg``/``.png``,
    ``summary.json``; applying writes only ``desc-applied_predictions.tsv``/``.json``).

    ``folds`` (e.g. ``[0, 1, 2, 3, 4]``, fitting only): a fold ensemble. The inputnode
    then has ``embeddings_fold<k>`` (and ``embeddings_json_fold<k>``) per encoder fold;
    each fold's embeddings get their own probe, cross-validated with the same splits and
    written into ``fold-<k>/``; ``combine_folds``
    (:class:`~anatcl_nipype.interfaces.prediction.CombineFoldProbes`) writes the ensemble
    (mean of the per-fold out-of-fold predictions) as ``desc-ensemble_predictions.tsv``,
    its metrics ``desc-ensemble_metrics.tsv``, each fold's metrics with their mean and sd
    ``desc-folds_metrics.tsv`` and ``desc-ensemble_summary.json``. The outputnode's
    ``predictions_tsv`` and ``metrics_tsv`` are then the ensemble's, ``model`` and
    ``model_card`` the first fold's.

    ``probe_options`` include ComBat site harmonisation: ``harmonize="combat"``,
    ``site_column`` (default ``site``), ``covariate_columns`` and ``unseen_sites``.

    ``relevance_maps=True`` (fitting on embeddings alone, one encoder fold, no
    harmonisation): a :class:`~anatcl_nipype.interfaces.relevance.ProbeRelevanceMaps`
    node explains the fitted probe on the inputnode's ``gm_maps`` (with
    ``participant_ids`` and, for a custom checkpoint, ``weights``); it writes
    ``desc-relevance_statmap.nii.gz``/``.json`` and, with an ``atlas`` in
    ``relevance_options``, ``desc-relevance_regions.tsv``/``.json``; each participant's
    map goes to ``sub-<l>[/ses-<s>]/anat/..._desc-relevance<Target>_statmap.nii.gz``/``.json``
    (:func:`relevance_desc`). ``relevance_options``
    go to that node (``steps``, ``method``, ``baseline``, ``descriptor``, ``fold``,
    ``atlas``, ``label_table``). Cost: integrated gradients with ``steps`` = 20 runs 21
    forward and 20 backward passes per map (about 3.5 min and 1.1 GiB per map on a CPU).

    Fanning out: none here; the participants' files arrive as lists, joined by one node
    per kind (the participant level, or a JoinNode in a parent workflow, makes them).

    >>> import pathlib, tempfile
    >>> probe = pathlib.Path(tempfile.mkdtemp()) / "probe.skops"
    >>> probe.touch()
    >>> wf = init_anatcl_group_wf(target="age", model=probe, features="both")
    >>> pathlib.Path(wf.get_node("apply_probe").inputs.model).name
    'probe.skops'
    """
    check_choice("task", task, (*TASKS, AUTO_TASK))
    check_choice("features", features, FEATURE_KINDS)
    if model is not None and not Path(model).is_file():
        raise AnatCLError(f"{model}: no such probe file; pass the .skops file a fit saved")
    folds = list(folds) if folds is not None and len(folds) > 1 else None
    _check_ensemble(folds, model, features)
    _check_relevance(relevance_maps, model, features, folds, probe_options)
    if folds is not None:
        return _init_fold_ensemble_wf(
            target=target, task=task, features=features, cv=cv, group_column=group_column,
            n_repeats=n_repeats, seed=seed, n_permutations=n_permutations,
            output_dir=output_dir, name=name, folds=folds, **probe_options)
    workflow = Workflow(name=name)
    workflow.__desc__ = _description(task, target, features, model, cv, n_repeats,
                                     group_column, n_permutations)
    if model is None and probe_options.get("harmonize", "none") != "none":
        workflow.__desc__ += _harmonization_text(probe_options)
    relevance_fields = list(RELEVANCE_INPUTS) if relevance_maps else []
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["embeddings", "embeddings_json", "regional_tsv", "participants_tsv",
                *relevance_fields]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(OUTPUTS)), name="outputnode")
    tables = _feature_tables(workflow, inputnode, features)
    probe, collect = _add_probe(
        workflow, inputnode, tables, model=model, target=target, task=task, cv=cv,
        n_repeats=n_repeats, seed=seed, n_permutations=n_permutations,
        group_column=group_column, **probe_options)
    if model is None:
        workflow.connect([(probe, outputnode, [
            ("model", "model"), ("model_card", "model_card"), ("metrics_tsv", "metrics_tsv"),
            ("figures", "figures"), ("out_json", "summary_json")])])
    else:
        workflow.connect([(probe, outputnode, [("out_json", "summary_json")])])
    workflow.connect([
        (collect, outputnode, [("out", "features_tsv")]),
        (probe, outputnode, [("predictions_tsv", "predictions_tsv")]),
    ])
    if relevance_maps:
        _add_relevance(workflow, inputnode, probe, relevance_options or {}, omp_nthreads)
    if output_dir is not None:
        _sink_results(workflow, output_dir, target,
                      FIT_DERIVATIVES if model is None else APPLY_DERIVATIVES)
        if relevance_maps:
            _sink_results(workflow, output_dir, target, [
                d for d in RELEVANCE_DERIVATIVES
                if "regions" not in d[2] or (relevance_options or {}).get("atlas")])
            _sink_participant_relevance(workflow, output_dir, target)
    return workflow


#: inputnode fields the relevance maps need.
RELEVANCE_INPUTS = ("gm_maps", "participant_ids", "weights")


def _add_probe(workflow, inputnode, tables, suffix="", model=None, group_column=None,
               **settings):
    """The probe node, fed the participants table and the feature ``tables`` (nodes with
    ``out_tsv`` and ``out_json``) merged in order by ``collect_features<suffix>`` and
    ``collect_sidecars<suffix>``; return it and ``collect_features<suffix>``.

    The probe is ``fit_probe<suffix>`` (a FitProbe with ``settings``, grouped by
    ``group_column`` when given), or ``apply_probe`` applying ``model`` for
    ``settings["target"]``.
    """
    light = {"run_without_submitting": True}  # list merges: no worker round trip
    collect = pe.Node(niu.Merge(len(tables)), name=f"collect_features{suffix}", **light)
    collect_json = pe.Node(niu.Merge(len(tables)), name=f"collect_sidecars{suffix}", **light)
    for position, node in enumerate(tables, start=1):
        workflow.connect([(node, collect, [("out_tsv", f"in{position}")]),
                          (node, collect_json, [("out_json", f"in{position}")])])
    if model is None:
        probe = pe.Node(FitProbe(**settings), name=f"fit_probe{suffix}", mem_gb=PROBE_MEM_GB)
        if group_column:
            probe.inputs.group_column = group_column
    else:
        probe = pe.Node(ApplyProbe(model=str(Path(model).absolute()),
                                   target=settings["target"]),
                        name="apply_probe", mem_gb=PROBE_MEM_GB)
    workflow.connect([(inputnode, probe, [("participants_tsv", "participants_tsv")]),
                      (collect, probe, [("out", "features")]),
                      (collect_json, probe, [("out", "features_json")])])
    return probe, collect


def _check_ensemble(folds, model, features):
    if folds is None:
        return
    if model is not None:
        raise AnatCLError("folds= fits one probe per encoder fold; a saved probe is applied "
                          "with the embeddings of the fold on its card: drop folds")
    if features == "regional":
        raise AnatCLError("folds= needs AnatCL embeddings (features 'embeddings' or "
                          "'both'); regional measures do not depend on the encoder fold")


def _check_relevance(relevance_maps, model, features, folds, probe_options):
    if not relevance_maps:
        return
    why = ("a saved probe is applied, not fitted" if model is not None else
           f"the probe is fitted on {features} features" if features != "embeddings" else
           "a fold ensemble has one probe per fold" if folds is not None else
           "the probe has a ComBat step" if probe_options.get("harmonize", "none") != "none"
           else None)
    if why:
        raise AnatCLError(f"relevance maps explain a probe fitted on the AnatCL embeddings "
                          f"alone, from one encoder fold, without harmonisation; here {why}. "
                          "Fit such a probe (features 'embeddings') to map it")


def _add_relevance(workflow, inputnode, probe, options, omp_nthreads):
    """The ProbeRelevanceMaps node explaining the fitted probe on the inputnode's maps."""
    from anatcl_nipype.interfaces.relevance import ProbeRelevanceMaps

    given = {name: value for name, value in options.items() if value is not None}
    relevance = pe.Node(ProbeRelevanceMaps(**{"steps": RELEVANCE_STEPS, **given}),
                        name="relevance_maps", mem_gb=1.5, n_procs=omp_nthreads)
    relevance.inputs.num_threads = omp_nthreads
    workflow.connect([(probe, relevance, [("model", "model")]),
                      (inputnode, relevance, [("gm_maps", "in_files"),
                                              ("participant_ids", "participant_ids"),
                                              ("weights", "weights")])])


def relevance_desc(target):
    """The ``desc`` of a participant's relevance map: one per target, so maps explaining
    different targets never overwrite each other.

    >>> relevance_desc("age"), relevance_desc("MMSE score")
    ('relevanceAge', 'relevanceMMSEscore')
    """
    label = bids_label(target)
    return f"relevance{label[0].upper()}{label[1:]}"


def _sink_participant_relevance(workflow, output_dir, target):
    """Each participant's relevance map and sidecar as a BIDS derivative:
    ``sub-<l>[/ses-<s>]/anat/sub-<l>[_ses-<s>]_desc-relevance<Target>_statmap.nii.gz``."""
    relevance = workflow.get_node("relevance_maps")
    # One node looping over the maps in the main process: each map is a small copy.
    sink = pe.Node(niu.Function(function=_sink_participant_maps, output_names=["out_files"]),
                   name="ds_participant_relevance", run_without_submitting=True)
    sink.inputs.base_directory = str(Path(output_dir).absolute())
    sink.inputs.desc = relevance_desc(target)
    workflow.connect([(relevance, sink, [("out_files", "maps"), ("out_jsons", "sidecars"),
                                         ("participant_ids", "participant_ids")]),
                      (workflow.get_node("inputnode"), sink, [("gm_maps", "gm_maps")])])


def _sink_participant_maps(maps, sidecars, participant_ids, gm_maps, base_directory, desc):
    """Write each map and sidecar with the BIDS sink, named after its scan's T1w."""
    from anatcl_nipype.bids import bids_source_for, split_scan_id
    from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink

    gm_maps = [gm_maps] if isinstance(gm_maps, str) else list(gm_maps)
    written = []
    for image, sidecar, scan, path in zip(maps, sidecars, participant_ids, gm_maps):
        sink = AnatCLDerivativesDataSink(
            base_directory=base_directory, in_file=[image, sidecar], desc=desc,
            suffix="statmap", source_file=bids_source_for(*split_scan_id(scan), path))
        written.extend(sink.run().outputs.out_file)
    return written


def _init_fold_ensemble_wf(*, target, task, features, cv, group_column, n_repeats, seed,
                           n_permutations, output_dir, name, folds, **probe_options):
    """One probe per encoder fold (same splits), then their ensemble."""
    workflow = Workflow(name=name)
    workflow.__desc__ = _description(task, target, features, None, cv, n_repeats,
                                     group_column, n_permutations) + _ENSEMBLE_TEXT.format(
        n=len(folds), folds=", ".join(map(str, folds)))
    if probe_options.get("harmonize", "none") != "none":
        workflow.__desc__ += _harmonization_text(probe_options)
    per_fold = [f"{kind}_fold{fold}" for fold in folds for kind in ("embeddings",
                                                                      "embeddings_json")]
    inputnode = pe.Node(niu.IdentityInterface(
        fields=[*per_fold, "regional_tsv", "participants_tsv"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(OUTPUTS)), name="outputnode")
    regional = _feature_tables(workflow, inputnode, "regional") if features == "both" else []
    predictions = pe.Node(niu.Merge(len(folds)), name="collect_fold_predictions",
                          run_without_submitting=True)
    cards = pe.Node(niu.Merge(len(folds)), name="collect_fold_cards",
                    run_without_submitting=True)
    combine = pe.Node(CombineFoldProbes(fold_labels=folds), name="combine_folds",
                      mem_gb=PROBE_MEM_GB)
    for position, fold in enumerate(folds, start=1):
        join = pe.Node(JoinEmbeddings(), name=f"join_embeddings_fold{fold}")
        workflow.connect([(inputnode, join, [(f"embeddings_fold{fold}", "in_files"),
                                             (f"embeddings_json_fold{fold}", "in_jsons")])])
        probe, collect = _add_probe(
            workflow, inputnode, [join, *regional], suffix=f"_fold{fold}", target=target,
            task=task, cv=cv, n_repeats=n_repeats, seed=seed, n_permutations=n_permutations,
            group_column=group_column, **probe_options)
        workflow.connect([
            (probe, predictions, [("predictions_tsv", f"in{position}")]),
            (probe, cards, [("model_card", f"in{position}")]),
        ])
        if position == 1:
            workflow.connect([(collect, outputnode, [("out", "features_tsv")]),
                              (probe, outputnode, [("model", "model"),
                                                   ("model_card", "model_card"),
                                                   ("figures", "figures")])])
        if output_dir is not None:
            _sink_results(workflow, output_dir, target, [
                (node.replace("join_embeddings", f"join_embeddings_fold{fold}")
                 .replace("fit_probe", f"fit_probe_fold{fold}"), field, out_name,
                 f"{sink}_fold{fold}") for node, field, out_name, sink in FIT_DERIVATIVES
                if node in ("join_embeddings", "fit_probe")], subfolder=f"fold-{fold}")
    workflow.connect([
        (predictions, combine, [("out", "predictions_tsv")]),
        (cards, combine, [("out", "model_card")]),
        (combine, outputnode, [("predictions_tsv", "predictions_tsv"),
                               ("metrics_tsv", "metrics_tsv"), ("out_json", "summary_json")]),
    ])
    if output_dir is not None:
        _sink_results(workflow, output_dir, target, ENSEMBLE_DERIVATIVES + tuple(
            d for d in FIT_DERIVATIVES if d[0] == "merge_regional"))
    return workflow


def _harmonization_text(options):
    """The methods sentence on ComBat site harmonisation."""
    covariates = options.get("covariate_columns") or []
    protected = f", protecting the effects of {', '.join(covariates)}," if covariates else ""
    return (f"Site effects (participants.tsv column '{options.get('site_column', 'site')}') "
            f"were removed with ComBat (neuroCombat; Fortin et al., 2018){protected} fitted "
            "on the training folds only and applied to the test fold, before the probe.\n")


_ENSEMBLE_TEXT = """\
This was done separately for the embeddings of each of the {n} AnatCL encoder folds
({folds}), with the same cross-validation splits; results are reported for each fold and
as their mean and standard deviation, and for the ensemble whose prediction is the mean
of the per-fold probes' out-of-fold predictions (class probabilities for a categorical
target).
"""


def _feature_tables(workflow, inputnode, features):
    """The nodes making the group feature tables (``out_tsv``, ``out_json``), in order."""
    tables = []
    if features in ("embeddings", "both"):
        join = pe.Node(JoinEmbeddings(), name="join_embeddings")
        workflow.connect([(inputnode, join, [("embeddings", "in_files"),
                                             ("embeddings_json", "in_jsons")])])
        tables.append(join)
    if features in ("regional", "both"):
        merge = pe.Node(MergeRegionalTables(out_name="regional"), name="merge_regional")
        sidecars = pe.Node(niu.Function(function=_sidecars, output_names=["sidecars"]),
                           name="regional_sidecars", run_without_submitting=True)
        workflow.connect([(inputnode, merge, [("regional_tsv", "in_files")]),
                          (inputnode, sidecars, [("regional_tsv", "paths")]),
                          (sidecars, merge, [("sidecars", "in_jsons")])])
        tables.append(merge)
    return tables


def _sidecars(paths):
    """The JSON sidecar beside each table (``x.tsv`` -> ``x.json``), where there is one."""
    from pathlib import Path

    paths = [paths] if isinstance(paths, str) else paths
    found = [str(Path(p).with_suffix(".json")) for p in paths]
    return found if all(Path(p).is_file() for p in found) else []


def _sink_results(workflow, output_dir, target, derivatives, subfolder=None):
    """Sink nodes writing each result into ``<output_dir>/group/target-<target>/``
    (or its ``subfolder``)."""
    names = workflow.list_node_names()
    folder = target_folder(target) + (f"/{subfolder}" if subfolder else "")
    for node_name, field, out_name, sink_name in derivatives:
        if node_name in names:
            sink = pe.Node(GroupDerivativesSink(base_directory=str(Path(output_dir).absolute()),
                                                folder=folder, out_name=out_name),
                           name=sink_name, run_without_submitting=True)
            source, field = _with_session_column(workflow, workflow.get_node(node_name), field,
                                                 out_name, sink_name)
            workflow.connect(source, field, sink, "in_file")


def _with_session_column(workflow, node, field, out_name, sink_name):
    """Per-scan tables (``embeddings.tsv``, ``regional.tsv``, predictions) are written with
    ``participant_id`` and ``session_id`` columns when the rows are sessions."""
    if out_name not in ("embeddings.tsv", "regional.tsv", "predictions.tsv",
                        "desc-applied_predictions.tsv"):
        return node, field
    split = pe.Node(niu.Function(function=_session_table, output_names=["out_tsv"]),
                    name=f"sessions_{sink_name}", run_without_submitting=True)
    split.inputs.out_name = out_name
    workflow.connect(node, field, split, "in_tsv")
    return split, "out_tsv"


def _session_table(in_tsv, out_name):
    from pathlib import Path

    from anatcl_nipype.prediction.features import with_session_column

    return with_session_column(in_tsv, Path.cwd() / out_name)


def _description(task, target, features, model, cv, n_repeats, group_column, n_permutations):
    """The methods paragraph: what was fitted, and how it was validated."""
    used = _FEATURES_TEXT[features]
    if model is not None:
        return (f"\nThe target '{target}' was predicted from {used} with a previously fitted "
                f"linear probe ({Path(model).name}), after checking that the features were "
                "made with the encoder weights and columns the probe was trained on. These "
                "predictions are not cross-validated: participants the probe was fitted on "
                "are predicted in sample.\n")
    repeats = f", repeated {n_repeats} times with different splits" if n_repeats > 1 else ""
    grouping = (f" Folds were grouped by {group_column}, so that no {group_column} was in "
                "both the training and the test data." if group_column else "")
    permutations = (f" Significance was assessed with a permutation test ({n_permutations} "
                    "label permutations)." if n_permutations else "")
    task = "brain_age" if task == AUTO_TASK and target.lower() == "age" else task
    return f"""
The target '{target}' was predicted from {used} with a linear probe (scikit-learn):
missing values were imputed with the training median, each feature was standardised, then
{_MODELS[task]}. Performance was estimated with {cv}-fold cross-validation{repeats}, fitting
the whole probe on the training folds only, and reported as the {_METRICS[task]} (mean
and standard deviation over folds).{grouping}{permutations} The final probe was fitted on
all participants with a known {target}.
"""
