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
from anatcl_nipype.interfaces.prediction import ApplyProbe, FitProbe, JoinEmbeddings
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
                         output_dir=None, name="anatcl_group_wf", **probe_options):
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
    workflow = Workflow(name=name)
    workflow.__desc__ = _description(task, target, features, model, cv, n_repeats,
                                     group_column, n_permutations)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["embeddings", "embeddings_json", "regional_tsv", "participants_tsv"]),
        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(OUTPUTS)), name="outputnode")
    tables = _feature_tables(workflow, inputnode, features)
    collect = pe.Node(niu.Merge(len(tables)), name="collect_features")
    collect_json = pe.Node(niu.Merge(len(tables)), name="collect_sidecars")
    for position, node in enumerate(tables, start=1):
        workflow.connect([(node, collect, [("out_tsv", f"in{position}")]),
                          (node, collect_json, [("out_json", f"in{position}")])])
    if model is None:
        probe = pe.Node(FitProbe(target=target, task=task, cv=cv, n_repeats=n_repeats,
                                 seed=seed, n_permutations=n_permutations, **probe_options),
                        name="fit_probe", mem_gb=PROBE_MEM_GB)
        if group_column:
            probe.inputs.group_column = group_column
        workflow.connect([(probe, outputnode, [
            ("model", "model"), ("model_card", "model_card"), ("metrics_tsv", "metrics_tsv"),
            ("figures", "figures"), ("out_json", "summary_json")])])
    else:
        probe = pe.Node(ApplyProbe(model=str(Path(model).absolute()), target=target),
                        name="apply_probe", mem_gb=PROBE_MEM_GB)
        workflow.connect([(probe, outputnode, [("out_json", "summary_json")])])
    workflow.connect([
        (inputnode, probe, [("participants_tsv", "participants_tsv")]),
        (collect, probe, [("out", "features")]),
        (collect_json, probe, [("out", "features_json")]),
        (collect, outputnode, [("out", "features_tsv")]),
        (probe, outputnode, [("predictions_tsv", "predictions_tsv")]),
    ])
    if output_dir is not None:
        _sink_results(workflow, output_dir, target,
                      FIT_DERIVATIVES if model is None else APPLY_DERIVATIVES)
    return workflow


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


def _sink_results(workflow, output_dir, target, derivatives):
    """Sink nodes writing each result into ``<output_dir>/group/target-<target>/``."""
    names = workflow.list_node_names()
    for node_name, field, out_name, sink_name in derivatives:
        if node_name in names:
            sink = pe.Node(GroupDerivativesSink(base_directory=str(Path(output_dir).absolute()),
                                                folder=target_folder(target),
                                                out_name=out_name),
                           name=sink_name, run_without_submitting=True)
            workflow.connect(workflow.get_node(node_name), field, sink, "in_file")


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
