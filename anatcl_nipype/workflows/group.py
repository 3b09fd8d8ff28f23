"""The group level: feature tables in, a cross-validated probe (or a saved one applied) out.

Four factories, each with a fixed inputnode/outputnode contract:

- :func:`init_anatcl_probe_fit_wf`: join the features, fit and cross-validate a probe
  (ComBat site harmonisation is one of the probe's options);
- :func:`init_anatcl_probe_apply_wf`: apply a saved probe;
- :func:`init_anatcl_fold_ensemble_wf`: one probe per encoder fold, then their ensemble;
- :func:`init_anatcl_probe_relevance_wf`: fit a probe on the embeddings, then map what it
  relies on.

:func:`init_anatcl_group_wf` picks one from its arguments: the ``anatcl-nipype ... group``
command and users' own pipelines both call it. With ``output_dir``, each adds
:func:`~anatcl_nipype.workflows.group_derivatives.init_anatcl_group_derivatives_wf`, fed
from its outputnode. Building imports neither torch nor scikit-learn; the methods text
(``__desc__``) is :mod:`anatcl_nipype.prediction.methods_text`'s, as the report's.

>>> wf = init_anatcl_group_wf(target="age", output_dir="/tmp/derivatives")
>>> wf.get_node("outputnode").outputs.copyable_trait_names() == list(OUTPUTS)
True
>>> wf.get_node("anatcl_group_derivatives_wf.ds_model").inputs.folder
'group/target-age'
"""

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.interfaces.prediction import (
    ApplyProbe,
    CombineFoldProbes,
    FitProbe,
    JoinEmbeddings,
)
from anatcl_nipype.interfaces.regional import MergeRegionalTables
from anatcl_nipype.options import AUTO_TASK, FEATURE_KINDS, INNER_CV, TASKS, check_choice
from anatcl_nipype.prediction.methods_text import (
    applied_text,
    ensemble_text,
    harmonization_text,
    probe_text,
)
from anatcl_nipype.workflows.group_derivatives import (
    init_anatcl_group_derivatives_wf,
    relevance_desc,
    target_folder,
)

__all__ = ("init_anatcl_group_wf", "init_anatcl_probe_fit_wf", "init_anatcl_probe_apply_wf",
           "init_anatcl_fold_ensemble_wf", "init_anatcl_probe_relevance_wf", "target_folder",
           "relevance_desc", "INPUTS", "OUTPUTS")

#: The inputnode of every group workflow (a fold ensemble's ``embeddings`` and
#: ``embeddings_json`` hold one list per encoder fold).
INPUTS = ("embeddings", "embeddings_json", "embedding_ids", "regional_tsv", "participants_tsv")
#: The outputnode of the fit and apply workflows (applying leaves the fit's fields unset).
OUTPUTS = ("features_tsv", "embeddings_table", "embeddings_table_json", "regional_table",
           "regional_table_json", "model", "model_card", "metrics_tsv", "predictions_tsv",
           "figures", "summary_json")
#: What a relevance workflow adds to both.
RELEVANCE_INPUTS = ("gm_maps", "participant_ids", "weights")
RELEVANCE_OUTPUTS = ("relevance_map", "relevance_json", "relevance_regions_tsv",
                     "relevance_regions_json", "participant_maps", "participant_map_jsons",
                     "participant_map_ids")
#: Each encoder fold's results in a fold ensemble, one list entry per fold.
FOLD_FIELDS = ("embeddings_table", "embeddings_table_json", "model", "model_card",
               "metrics_tsv", "predictions_tsv", "figures", "summary_json")
ENSEMBLE_OUTPUTS = (*OUTPUTS, "folds_metrics_tsv", *(f"fold_{f}" for f in FOLD_FIELDS))
#: The fit's outputs and the probe fields they come from.
_FIT_RESULTS = (("model", "model"), ("model_card", "model_card"),
                ("metrics_tsv", "metrics_tsv"), ("predictions_tsv", "predictions_tsv"),
                ("figures", "figures"), ("out_json", "summary_json"))
#: Peak memory of a probe node: a few feature tables and a linear model (a guess with
#: room to spare for thousands of subjects x 512 features).
PROBE_MEM_GB = 1.0
#: Integrated-gradients steps of the relevance maps: forward+backward passes per map.
RELEVANCE_STEPS = 20
#: List merges, picks: no worker round trip.
_LIGHT = {"run_without_submitting": True}


def init_anatcl_group_wf(*, target, task=AUTO_TASK, features="embeddings", model=None, cv=5,
                         group_column=None, n_repeats=1, seed=0, n_permutations=0,
                         output_dir=None, name="anatcl_group_wf", folds=None,
                         relevance_maps=False, relevance_options=None, omp_nthreads=1,
                         **probe_options):
    """The group workflow these arguments ask for: a thin dispatcher to the four factories.

    ``model`` (a ``.skops`` probe a fit saved, its ``.json`` card beside it):
    :func:`init_anatcl_probe_apply_wf`. ``folds`` with more than one fold:
    :func:`init_anatcl_fold_ensemble_wf`. ``relevance_maps=True`` (with
    ``relevance_options`` and ``omp_nthreads``): :func:`init_anatcl_probe_relevance_wf`.
    Otherwise :func:`init_anatcl_probe_fit_wf`. ``probe_options`` go to
    :class:`~anatcl_nipype.interfaces.prediction.FitProbe` as they are (ComBat:
    ``harmonize="combat"``, ``site_column``, ``covariate_columns``, ``unseen_sites``).
    Options that cannot work together are refused before anything is built.

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
    common = dict(target=target, output_dir=output_dir, name=name)
    if model is not None:
        return init_anatcl_probe_apply_wf(model=model, features=features, **common)
    study = dict(task=task, cv=cv, group_column=group_column, n_repeats=n_repeats, seed=seed,
                 n_permutations=n_permutations, **common, **probe_options)
    if folds is not None:
        return init_anatcl_fold_ensemble_wf(folds=folds, features=features, **study)
    if relevance_maps:
        return init_anatcl_probe_relevance_wf(relevance_options=relevance_options,
                                              omp_nthreads=omp_nthreads, **study)
    return init_anatcl_probe_fit_wf(features=features, **study)


def init_anatcl_probe_fit_wf(*, target, task=AUTO_TASK, features="embeddings", cv=5,
                             group_column=None, n_repeats=1, seed=0, n_permutations=0,
                             output_dir=None, name="anatcl_probe_fit_wf", **probe_options):
    """Join the participants' features, then fit and cross-validate a probe.

    Inputs (``inputnode``, :data:`INPUTS`)
    --------------------------------------
    embeddings
        Per-participant embeddings (``.npy``, JSON sidecars beside them) or one group
        table (``.tsv``); used for ``features`` ``embeddings`` and ``both``.
    embeddings_json
        Optional: their JSON sidecars, in the same order (connect ``AnatCLEncode``'s
        ``out_json`` in a parent workflow: Nipype removes outputs no node uses).
    embedding_ids
        Optional: one id per embedding (``sub-<l>[_ses-<s>]``); default: from the sidecars.
    regional_tsv
        Per-participant region-wise tables or one group table (JSON sidecars beside);
        used for ``features`` ``regional`` and ``both``.
    participants_tsv
        BIDS ``participants.tsv`` with the ``target`` column (and ``group_column``).

    Outputs (``outputnode``, :data:`OUTPUTS`)
    -----------------------------------------
    features_tsv
        The group feature tables the probe used, in order (embeddings, regional).
    embeddings_table, embeddings_table_json, regional_table, regional_table_json
        The same tables and their sidecars by kind (unset for a kind not used).
    model, model_card, metrics_tsv, predictions_tsv, figures, summary_json
        The probe fitted on everyone with a known target, its card, the metrics per fold,
        the out-of-fold predictions, the CV figure (SVG, PNG) and a summary.

    ``task="auto"`` picks brain_age for an ``age`` column, regression for numbers and
    classification otherwise, when the node runs. ``group_column`` keeps each of its
    values in one fold (and groups the inner penalty search). With ``output_dir``, sinks
    write ``<output_dir>/group/target-<target>/`` (``embeddings.tsv``, ``regional.tsv``,
    ``probe.skops``/``.json``, ``metrics.tsv``, ``predictions.tsv``, ``cv.svg``/``.png``,
    ``summary.json``), the feature tables only once the probe was fitted. Fanning out:
    none; the participants' files arrive as lists, joined by one node per kind.

    >>> wf = init_anatcl_probe_fit_wf(target="age", features="both")
    >>> wf.get_node("inputnode").inputs.copyable_trait_names()  # doctest: +NORMALIZE_WHITESPACE
    ['embeddings', 'embeddings_json', 'embedding_ids', 'regional_tsv', 'participants_tsv']
    >>> wf.get_node("outputnode").outputs.copyable_trait_names()  # doctest: +NORMALIZE_WHITESPACE
    ['features_tsv', 'embeddings_table', 'embeddings_table_json', 'regional_table',
     'regional_table_json', 'model', 'model_card', 'metrics_tsv', 'predictions_tsv', 'figures',
     'summary_json']
    """
    settings = dict(task=task, cv=cv, group_column=group_column, n_repeats=n_repeats,
                    seed=seed, n_permutations=n_permutations, **probe_options)
    workflow, inputnode, outputnode, _ = _fit_workflow(name, target, features, settings,
                                                       INPUTS, OUTPUTS)
    if output_dir is not None:
        _add_derivatives(workflow, outputnode, OUTPUTS, output_dir=output_dir, target=target,
                         features=features)
    return workflow


def init_anatcl_probe_apply_wf(*, target, model, features="embeddings", output_dir=None,
                               name="anatcl_probe_apply_wf"):
    """Apply a saved probe to the participants' features.

    Inputs: :data:`INPUTS`, as :func:`init_anatcl_probe_fit_wf`. Outputs: :data:`OUTPUTS`,
    of which ``features_tsv`` and its tables by kind, ``predictions_tsv`` (the saved probe's
    predictions: in sample for participants it was fitted on, never called cross-validated)
    and ``summary_json`` (their sidecar) are set. ``model``'s card must name this ``target``
    and these ``features``. With ``output_dir``, writes only
    ``group/target-<target>/desc-applied_predictions.tsv`` and ``.json``.

    >>> import pathlib, tempfile
    >>> probe = pathlib.Path(tempfile.mkdtemp()) / "probe.skops"
    >>> probe.touch()
    >>> wf = init_anatcl_probe_apply_wf(target="age", model=probe, output_dir="/tmp/out")
    >>> wf.get_node("inputnode").inputs.copyable_trait_names() == list(INPUTS)
    True
    >>> wf.get_node("outputnode").outputs.copyable_trait_names() == list(OUTPUTS)
    True
    >>> sorted(n.split(".")[-1] for n in wf.list_node_names() if ".ds_" in n)
    ['ds_predictions', 'ds_predictions_json']
    """
    check_choice("features", features, FEATURE_KINDS)
    if not Path(model).is_file():
        raise AnatCLError(f"{model}: no such probe file; pass the .skops file a fit saved")
    workflow = Workflow(name=name)
    workflow.__desc__ = "\n" + applied_text(target, Path(model).name, features) + "\n"
    inputnode, outputnode = _identity("inputnode", INPUTS), _identity("outputnode", OUTPUTS)
    tables = _feature_tables(workflow, inputnode, outputnode, features)
    probe = pe.Node(ApplyProbe(model=str(Path(model).absolute()), target=target),
                    name="apply_probe", mem_gb=PROBE_MEM_GB)
    collect = _feed_probe(workflow, inputnode, tables, probe)
    workflow.connect([
        (collect, outputnode, [("out", "features_tsv")]),
        (probe, outputnode, [("predictions_tsv", "predictions_tsv"),
                             ("out_json", "summary_json")]),
    ])
    if output_dir is not None:
        _add_derivatives(workflow, outputnode, OUTPUTS, output_dir=output_dir, target=target,
                         applied=True)
    return workflow


def init_anatcl_fold_ensemble_wf(*, target, folds, task=AUTO_TASK, features="embeddings",
                                 cv=5, group_column=None, n_repeats=1, seed=0,
                                 n_permutations=0, output_dir=None,
                                 name="anatcl_fold_ensemble_wf", **probe_options):
    """One probe per encoder fold, cross-validated with the same splits, then their ensemble.

    Inputs: :data:`INPUTS`, but ``embeddings`` (and ``embeddings_json``) hold one list per
    fold, in the order of ``folds`` (e.g. ``[0, 1, 2, 3, 4]``); ``embedding_ids`` serve
    every fold. ``features``: ``embeddings`` or ``both`` (the regional table is joined to
    every fold's embeddings).

    Outputs: :data:`ENSEMBLE_OUTPUTS`. ``predictions_tsv``, ``metrics_tsv`` and
    ``summary_json`` are the ensemble's (the mean of the per-fold out-of-fold predictions;
    :class:`~anatcl_nipype.interfaces.prediction.CombineFoldProbes`), ``folds_metrics_tsv``
    each fold's metrics with their mean and sd; ``features_tsv``, ``model``,
    ``model_card`` and ``figures`` the first fold's; ``fold_<field>`` lists each fold's.
    With ``output_dir``, each fold's results go into ``fold-<k>/``, the ensemble's into
    ``desc-ensemble_predictions.tsv``, ``desc-ensemble_metrics.tsv``,
    ``desc-folds_metrics.tsv`` and ``desc-ensemble_summary.json``.

    >>> wf = init_anatcl_fold_ensemble_wf(target="age", folds=[0, 1])
    >>> wf.get_node("inputnode").inputs.copyable_trait_names() == list(INPUTS)
    True
    >>> [f for f in wf.get_node("outputnode").outputs.copyable_trait_names()
    ...  if f not in OUTPUTS]  # doctest: +NORMALIZE_WHITESPACE
    ['folds_metrics_tsv', 'fold_embeddings_table', 'fold_embeddings_table_json', 'fold_model',
     'fold_model_card', 'fold_metrics_tsv', 'fold_predictions_tsv', 'fold_figures',
     'fold_summary_json']
    """
    check_choice("features", features, FEATURE_KINDS)
    folds = list(folds)
    _check_ensemble(folds, None, features)
    settings = dict(task=task, cv=cv, group_column=group_column, n_repeats=n_repeats,
                    seed=seed, n_permutations=n_permutations, **probe_options)
    workflow = Workflow(name=name)
    workflow.__desc__ = _fit_description(target, features, settings, ensemble_text(folds))
    inputnode = _identity("inputnode", INPUTS)
    outputnode = _identity("outputnode", ENSEMBLE_OUTPUTS)
    regional = (_regional_table(workflow, inputnode, outputnode) if features == "both"
                else [])
    per_fold = {field: pe.Node(niu.Merge(len(folds), no_flatten=True),
                               name=f"collect_fold_{field}", **_LIGHT)
                for field in FOLD_FIELDS}
    combine = pe.Node(CombineFoldProbes(fold_labels=folds), name="combine_folds",
                      mem_gb=PROBE_MEM_GB)
    for position, fold in enumerate(folds, start=1):
        join, probe, collect = _fold_probe(workflow, inputnode, regional, target, settings,
                                           fold, position - 1)
        workflow.connect(
            [(join, per_fold["embeddings_table"], [("out_tsv", f"in{position}")]),
             (join, per_fold["embeddings_table_json"], [("out_json", f"in{position}")])]
            + [(probe, per_fold[field], [(source, f"in{position}")])
               for source, field in _FIT_RESULTS])
        if position == 1:
            workflow.connect([(collect, outputnode, [("out", "features_tsv")]),
                              (probe, outputnode, [("model", "model"),
                                                   ("model_card", "model_card"),
                                                   ("figures", "figures")])])
    workflow.connect(
        [(per_fold["predictions_tsv"], combine, [("out", "predictions_tsv")]),
         (per_fold["model_card"], combine, [("out", "model_card")]),
         (combine, outputnode, [("predictions_tsv", "predictions_tsv"),
                                ("metrics_tsv", "metrics_tsv"), ("out_json", "summary_json"),
                                ("folds_tsv", "folds_metrics_tsv")])]
        + [(merge, outputnode, [("out", f"fold_{field}")]) for field, merge in per_fold.items()])
    if output_dir is not None:
        _add_derivatives(workflow, outputnode, ENSEMBLE_OUTPUTS, output_dir=output_dir,
                         target=target, features=features, folds=folds)
    return workflow


def init_anatcl_probe_relevance_wf(*, target, task=AUTO_TASK, cv=5, group_column=None,
                                   n_repeats=1, seed=0, n_permutations=0,
                                   relevance_options=None, omp_nthreads=1, output_dir=None,
                                   name="anatcl_probe_relevance_wf", **probe_options):
    """Fit a probe on the AnatCL embeddings alone (as :func:`init_anatcl_probe_fit_wf`),
    then explain it on the participants' grey-matter maps.

    Inputs: :data:`INPUTS` and ``gm_maps`` (the CAT12 maps to explain), ``participant_ids``
    (one per map) and, for a custom checkpoint, ``weights``. Outputs: :data:`OUTPUTS` and
    :data:`RELEVANCE_OUTPUTS`: the group map and its sidecar, the region table (with an
    ``atlas``), each participant's map, sidecar and id.
    :class:`~anatcl_nipype.interfaces.relevance.ProbeRelevanceMaps` gets
    ``relevance_options`` (``steps``, ``method``, ``baseline``, ``descriptor``, ``fold``,
    ``atlas``, ``label_table``) and ``omp_nthreads`` threads. Cost: integrated gradients
    with ``steps`` = 20 runs 21 forward and 20 backward passes per map (about 3.5 min and
    1.1 GiB per map on a CPU). With ``output_dir``, also writes
    ``desc-relevance_statmap.nii.gz``/``.json`` (and ``desc-relevance_regions.tsv``/``.json``)
    and each participant's ``sub-<l>[/ses-<s>]/anat/..._desc-relevance<Target>_statmap``
    (:func:`relevance_desc`) by a MapNode sink.

    >>> wf = init_anatcl_probe_relevance_wf(target="age")
    >>> wf.get_node("inputnode").inputs.copyable_trait_names()[len(INPUTS):]
    ['gm_maps', 'participant_ids', 'weights']
    >>> wf.get_node("outputnode").outputs.copyable_trait_names()[len(OUTPUTS):2 + len(OUTPUTS)]
    ['relevance_map', 'relevance_json']
    """
    from anatcl_nipype.interfaces.relevance import ProbeRelevanceMaps

    _check_relevance(True, None, "embeddings", None, probe_options)
    settings = dict(task=task, cv=cv, group_column=group_column, n_repeats=n_repeats,
                    seed=seed, n_permutations=n_permutations, **probe_options)
    outputs = (*OUTPUTS, *RELEVANCE_OUTPUTS)
    workflow, inputnode, outputnode, probe = _fit_workflow(
        name, target, "embeddings", settings, (*INPUTS, *RELEVANCE_INPUTS), outputs)
    options = {key: value for key, value in (relevance_options or {}).items()
               if value is not None}
    relevance = pe.Node(ProbeRelevanceMaps(**{"steps": RELEVANCE_STEPS, **options}),
                        name="relevance_maps", mem_gb=1.5, n_procs=omp_nthreads)
    relevance.inputs.num_threads = omp_nthreads
    workflow.connect([
        (probe, relevance, [("model", "model")]),
        (inputnode, relevance, [("gm_maps", "in_files"), ("participant_ids", "participant_ids"),
                                ("weights", "weights")]),
        (relevance, outputnode, [
            ("group_map", "relevance_map"), ("group_json", "relevance_json"),
            ("region_tsv", "relevance_regions_tsv"), ("region_json", "relevance_regions_json"),
            ("out_files", "participant_maps"), ("out_jsons", "participant_map_jsons"),
            ("participant_ids", "participant_map_ids")]),
    ])
    if output_dir is not None:
        derivatives = _add_derivatives(workflow, outputnode, outputs, output_dir=output_dir,
                                       target=target, relevance=True,
                                       relevance_regions=bool(options.get("atlas")))
        workflow.connect(inputnode, "gm_maps", derivatives, "inputnode.gm_maps")
    return workflow


def _identity(name, fields):
    return pe.Node(niu.IdentityInterface(fields=list(fields)), name=name)


def _fit_workflow(name, target, features, settings, inputs, outputs):
    """A workflow joining ``features`` and fitting a probe with ``settings``; returns it,
    its inputnode and outputnode (with ``inputs`` and ``outputs``) and the probe node."""
    check_choice("task", settings["task"], (*TASKS, AUTO_TASK))
    check_choice("features", features, FEATURE_KINDS)
    workflow = Workflow(name=name)
    workflow.__desc__ = _fit_description(target, features, settings)
    inputnode, outputnode = _identity("inputnode", inputs), _identity("outputnode", outputs)
    tables = _feature_tables(workflow, inputnode, outputnode, features)
    probe = _fit_node(target, settings, "fit_probe")
    collect = _feed_probe(workflow, inputnode, tables, probe)
    workflow.connect([(collect, outputnode, [("out", "features_tsv")]),
                      (probe, outputnode, list(_FIT_RESULTS))])
    return workflow, inputnode, outputnode, probe


def _fit_node(target, settings, name):
    """The FitProbe node (grouped by ``group_column`` when given)."""
    settings = dict(settings)
    group_column = settings.pop("group_column", None)
    probe = pe.Node(FitProbe(target=target, **settings), name=name, mem_gb=PROBE_MEM_GB)
    if group_column:
        probe.inputs.group_column = group_column
    return probe


def _feed_probe(workflow, inputnode, tables, probe, suffix=""):
    """Feed ``probe`` the participants table and the feature ``tables`` (nodes with
    ``out_tsv`` and ``out_json``), merged in order; return the merge of the tables."""
    collect = pe.Node(niu.Merge(len(tables)), name=f"collect_features{suffix}", **_LIGHT)
    collect_json = pe.Node(niu.Merge(len(tables)), name=f"collect_sidecars{suffix}", **_LIGHT)
    for position, node in enumerate(tables, start=1):
        workflow.connect([(node, collect, [("out_tsv", f"in{position}")]),
                          (node, collect_json, [("out_json", f"in{position}")])])
    workflow.connect([(inputnode, probe, [("participants_tsv", "participants_tsv")]),
                      (collect, probe, [("out", "features")]),
                      (collect_json, probe, [("out", "features_json")])])
    return collect


def _feature_tables(workflow, inputnode, outputnode, features):
    """The nodes making the group feature tables, in order; each also goes to the
    outputnode's field of its kind."""
    tables = []
    if features in ("embeddings", "both"):
        join = pe.Node(JoinEmbeddings(), name="join_embeddings")
        workflow.connect([
            (inputnode, join, [("embeddings", "in_files"), ("embeddings_json", "in_jsons"),
                               ("embedding_ids", "participant_ids")]),
            (join, outputnode, [("out_tsv", "embeddings_table"),
                                ("out_json", "embeddings_table_json")]),
        ])
        tables.append(join)
    if features in ("regional", "both"):
        tables += _regional_table(workflow, inputnode, outputnode)
    return tables


def _regional_table(workflow, inputnode, outputnode):
    """The merge of the participants' regional tables, as a one-node list."""
    merge = pe.Node(MergeRegionalTables(out_name="regional"), name="merge_regional")
    sidecars = pe.Node(niu.Function(function=_sidecars, output_names=["sidecars"]),
                       name="regional_sidecars", **_LIGHT)
    workflow.connect([(inputnode, merge, [("regional_tsv", "in_files")]),
                      (inputnode, sidecars, [("regional_tsv", "paths")]),
                      (sidecars, merge, [("sidecars", "in_jsons")]),
                      (merge, outputnode, [("out_tsv", "regional_table"),
                                           ("out_json", "regional_table_json")])])
    return [merge]


def _sidecars(paths):
    """The JSON sidecar beside each table (``x.tsv`` -> ``x.json``), where there is one."""
    from pathlib import Path

    paths = [paths] if isinstance(paths, str) else paths
    found = [str(Path(p).with_suffix(".json")) for p in paths]
    return found if all(Path(p).is_file() for p in found) else []


def _fold_probe(workflow, inputnode, regional, target, settings, fold, index):
    """Fold ``fold``'s embeddings (entry ``index`` of the inputnode's lists), joined, with
    the ``regional`` tables, into its own probe; returns the join, probe and merge nodes."""
    pick = pe.Node(niu.Function(function=_pick_fold, output_names=["files", "sidecars"]),
                   name=f"pick_fold{fold}", **_LIGHT)
    pick.inputs.index = index
    join = pe.Node(JoinEmbeddings(), name=f"join_embeddings_fold{fold}")
    probe = _fit_node(target, settings, f"fit_probe_fold{fold}")
    workflow.connect([
        (inputnode, pick, [("embeddings", "embeddings"), ("embeddings_json", "sidecars")]),
        (inputnode, join, [("embedding_ids", "participant_ids")]),
        (pick, join, [("files", "in_files"), ("sidecars", "in_jsons")]),
    ])
    collect = _feed_probe(workflow, inputnode, [join, *regional], probe, suffix=f"_fold{fold}")
    return join, probe, collect


def _pick_fold(embeddings, index, sidecars=None):
    """Entry ``index`` of the per-fold lists (the sidecars: unset when not given).

    >>> _pick_fold([["a0.npy", "b0.npy"], ["a1.npy", "b1.npy"]], 1)
    (['a1.npy', 'b1.npy'], <undefined>)
    """
    from nipype.interfaces.base import Undefined

    def entry(lists):
        item = lists[index]
        return [item] if isinstance(item, str) else list(item)

    return entry(embeddings), entry(sidecars) if sidecars else Undefined


def _fit_description(target, features, settings, extra=None):
    """The fit's methods paragraph: the probe, then the ensemble and ComBat where used."""
    text = probe_text(target, settings["task"], features, cv=settings["cv"],
                      n_repeats=settings["n_repeats"], group_column=settings["group_column"],
                      seed=settings["seed"], n_permutations=settings["n_permutations"],
                      bias_cv=settings.get("bias_cv", INNER_CV))
    if extra:
        text += " " + extra
    if settings.get("harmonize", "none") != "none":
        text += " " + harmonization_text(settings.get("site_column", "site"),
                                         settings.get("covariate_columns") or (),
                                         unseen_sites=settings.get("unseen_sites"))
    return f"\n{text}\n"


def _add_derivatives(workflow, outputnode, fields, **options):
    """The derivatives workflow, fed from ``outputnode``'s ``fields``; returned."""
    derivatives = init_anatcl_group_derivatives_wf(**options)
    workflow.connect([(outputnode, derivatives, [(f, f"inputnode.{f}") for f in fields])])
    return derivatives


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
