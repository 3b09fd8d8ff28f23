"""A prediction study as a workflow: embed each subject, join, then fit or apply a probe.

Building the workflow imports neither torch nor scikit-learn.

>>> wf = init_anatcl_prediction_wf(task="classification", target="diagnosis")
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())
['features_tsv', 'figures', 'metrics_tsv', 'model', 'model_card', 'predictions_tsv']
"""

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.interfaces.encoder import AnatCLEncode
from anatcl_nipype.interfaces.prediction import TASKS, ApplyProbe, FitProbe, JoinEmbeddings
from anatcl_nipype.workflows.encoding import (
    ENCODE_MEM_GB,
    encode_node_options,
    encoding_description,
)

MODES = ("fit", "apply")
#: Peak memory of a probe node: a few feature tables and a linear model (a guess with
#: room to spare for thousands of subjects x 512 features).
PROBE_MEM_GB = 1.0

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
}
_METRICS = {
    "classification": "balanced accuracy and the area under the ROC curve",
    "regression": "mean absolute error (MAE), root mean squared error, R2 and Pearson's r",
    "brain_age": "mean absolute error (MAE), root mean squared error, R2 and Pearson's r "
                 "of the uncorrected predicted age",
}


def _probe_description(task, target, use_regional, mode, model, cv, n_repeats,
                       group_column, n_permutations):
    features = ("the embeddings, joined with the region-wise grey-matter measures,"
                if use_regional else "the embeddings")
    if mode == "apply":
        return (f"\nThe target '{target}' was predicted from {features} with a previously "
                f"fitted linear probe ({Path(model).name}), after checking that the features "
                "were made with the encoder weights and columns the probe was trained on.\n")
    repeats = f", repeated {n_repeats} times with different splits" if n_repeats > 1 else ""
    grouping = (f" Folds were grouped by {group_column}, so that no {group_column} was in "
                "both the training and the test data." if group_column else "")
    permutations = (f" Significance was assessed with a permutation test ({n_permutations} "
                    "label permutations)." if n_permutations else "")
    return f"""
The target '{target}' was predicted from {features} with a linear probe (scikit-learn):
missing values were imputed with the training median, each feature was standardised, then
{_MODELS[task]}. Performance was estimated with {cv}-fold cross-validation{repeats}, fitting
the whole probe on the training folds only, and reported as the {_METRICS[task]} (mean
and standard deviation over folds).{grouping}{permutations} The final probe was fitted on
all participants with a known {target}.
"""


def init_anatcl_prediction_wf(*, task, target, weights=None, descriptor="global", fold=0,
                              mode="fit", model=None, use_regional=False, cv=5, n_repeats=1,
                              group_column=None, seed=0, n_permutations=0, precision="fp32",
                              omp_nthreads=1, name="anatcl_prediction_wf"):
    """Embed each subject's CAT12 ``mwp1`` map, join them, then fit or apply a probe.

    Inputs
    ------
    gm_modulated
        List of CAT12 modulated normalised grey-matter maps, one per subject.
    participants_tsv
        BIDS ``participants.tsv`` with the ``target`` column (and ``group_column``).
    regional_tsv
        Region-wise measures table, joined with the embeddings when ``use_regional``.

    Outputs
    -------
    features_tsv
        The group embeddings table (``participant_id``, ``emb_000`` ...).
    model, model_card, metrics_tsv, figures
        The probe and its cross-validation (``mode="fit"`` only).
    predictions_tsv
        Out-of-fold predictions (``fit``) or the saved probe's predictions (``apply``).

    Subjects are encoded by a MapNode of :class:`AnatCLEncode` (the subject list
    arrives at run time, so it cannot drive build-time iterables); under MultiProc
    each worker loads the network once. ``mode="apply"`` needs ``model``, a probe saved
    by a ``fit`` run (its card must match the weights and columns of these features).

    >>> import pathlib, tempfile
    >>> model = pathlib.Path(tempfile.mkdtemp()) / "age_probe.skops"
    >>> model.touch()
    >>> wf = init_anatcl_prediction_wf(task="brain_age", target="age", mode="apply",
    ...                                model=model, use_regional=True)
    >>> pathlib.Path(wf.get_node("apply_probe").interface.inputs.model).name
    'age_probe.skops'
    """
    _check_options(task, mode, model)
    workflow = Workflow(name=name)
    workflow.__desc__ = encoding_description(weights, descriptor, fold, precision) + _probe_description(
        task, target, use_regional, mode, model, cv, n_repeats, group_column, n_permutations)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["gm_modulated", "participants_tsv", "regional_tsv"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "features_tsv", "model", "model_card", "metrics_tsv", "predictions_tsv", "figures"]),
        name="outputnode")
    encode = pe.MapNode(
        AnatCLEncode(**encode_node_options(weights, descriptor, fold, precision, device="auto",
                                        use_gpu=False, use_head=False)),
        iterfield=["in_file"], name="anatcl_encode", n_procs=omp_nthreads,
        mem_gb=ENCODE_MEM_GB)
    join = pe.Node(JoinEmbeddings(), name="join_embeddings")
    features = pe.Node(niu.Merge(2 if use_regional else 1), name="feature_tables")
    workflow.connect([
        (inputnode, encode, [("gm_modulated", "in_file")]),
        (encode, join, [("out_file", "in_files"), ("out_json", "in_jsons")]),
        (join, features, [("out_tsv", "in1")]),
        (join, outputnode, [("out_tsv", "features_tsv")]),
    ])
    if use_regional:
        workflow.connect(inputnode, "regional_tsv", features, "in2")
    if mode == "fit":
        probe = _fit_node(task, target, cv, n_repeats, group_column, seed, n_permutations)
        workflow.connect([(probe, outputnode, [
            ("model", "model"), ("model_card", "model_card"), ("metrics_tsv", "metrics_tsv"),
            ("figures", "figures")])])
    else:
        probe = pe.Node(ApplyProbe(model=str(model)), name="apply_probe", mem_gb=PROBE_MEM_GB)
    workflow.connect([
        (inputnode, probe, [("participants_tsv", "participants_tsv")]),
        (features, probe, [("out", "features")]),
        (join, probe, [("out_json", "features_json")]),
        (probe, outputnode, [("predictions_tsv", "predictions_tsv")]),
    ])
    return workflow


def _fit_node(task, target, cv, n_repeats, group_column, seed, n_permutations):
    fit = FitProbe(task=task, target=target, cv=cv, n_repeats=n_repeats, seed=seed,
                   n_permutations=n_permutations)
    if group_column:
        fit.inputs.group_column = group_column
    return pe.Node(fit, name="fit_probe", mem_gb=PROBE_MEM_GB)


def _check_options(task, mode, model):
    if task not in TASKS:
        raise AnatCLError(f"task={task!r}: choose one of {', '.join(TASKS)}")
    if mode not in MODES:
        raise AnatCLError(f"mode={mode!r}: choose 'fit' (cross-validate and train a probe) "
                          "or 'apply' (predict with a saved probe)")
    if mode == "apply" and model is None:
        raise AnatCLError("mode='apply' needs model=, the .skops probe a 'fit' run saved "
                          "(its .json card beside it)")
