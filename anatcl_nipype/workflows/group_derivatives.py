"""Write the group level's results: a derivatives workflow fed from a group workflow's
outputnode, as smriprep's ``init_anat_derivatives_wf`` is fed from the anatomical one.

Every result goes into ``<output_dir>/group/target-<target>/`` (a fold ensemble's per-fold
results into its ``fold-<k>/``), each participant's relevance map into
``sub-<l>[/ses-<s>]/anat/``. The inputnode holds every field any group workflow's outputnode
has (:data:`INPUTS`); the arguments say which of them the workflow fills, and only those get
a sink.

>>> wf = init_anatcl_group_derivatives_wf(output_dir="/tmp/out", target="age",
...                                       features="both")
>>> sorted(n for n in wf.list_node_names() if n.startswith("ds_"))  # doctest: +NORMALIZE_WHITESPACE
['ds_embeddings_json', 'ds_embeddings_tsv', 'ds_figures', 'ds_metrics', 'ds_model',
 'ds_model_card', 'ds_predictions', 'ds_regional_json', 'ds_regional_tsv', 'ds_summary']
"""

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import bids_label
from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink, GroupDerivativesSink
from anatcl_nipype.outputs import GROUP_FILES as FILES
from anatcl_nipype.outputs import fold_folder, target_folder

#: Feature tables: written only after the probe was fitted (their sinks wait for
#: ``summary_json``), so a failed fit leaves none under the final names.
TABLES = {
    "embeddings": (("embeddings_table", FILES["embeddings"], "ds_embeddings_tsv"),
                   ("embeddings_table_json", FILES["embeddings_json"], "ds_embeddings_json")),
    "regional": (("regional_table", FILES["regional"], "ds_regional_tsv"),
                 ("regional_table_json", FILES["regional_json"], "ds_regional_json")),
}
TABLE_FIELDS = tuple(field for kind in TABLES.values() for field, _, _ in kind)
#: A fitted probe's results: (outputnode field, file name, sink).
FIT = (
    ("model", FILES["model"], "ds_model"),
    ("model_card", FILES["model_card"], "ds_model_card"),
    ("metrics_tsv", FILES["metrics"], "ds_metrics"),
    ("predictions_tsv", FILES["predictions"], "ds_predictions"),
    ("figures", FILES["figures"], "ds_figures"),
    ("summary_json", FILES["summary"], "ds_summary"),
)
#: Applying a saved probe writes beside the fitted results, never over them.
APPLY = (
    ("predictions_tsv", FILES["applied_predictions"], "ds_predictions"),
    ("summary_json", FILES["applied_predictions_json"], "ds_predictions_json"),
)
#: A fold ensemble's combined results, beside the per-fold ``fold-<k>/`` folders.
ENSEMBLE = (
    ("predictions_tsv", FILES["ensemble_predictions"], "ds_ensemble_predictions"),
    ("metrics_tsv", FILES["ensemble_metrics"], "ds_ensemble_metrics"),
    ("folds_metrics_tsv", FILES["folds_metrics"], "ds_folds_metrics"),
    ("summary_json", FILES["ensemble_summary"], "ds_ensemble_summary"),
)
#: Each fold's own results, one sink per kind over the folds (MapNodes): the fit's results
#: and the fold's embeddings table, from the ``fold_<field>`` lists of the ensemble.
PER_FOLD = (*TABLES["embeddings"], *FIT)
#: The fitted probe's relevance: group map, its sidecar, the region table (with an atlas).
RELEVANCE = (
    ("relevance_map", FILES["relevance_map"], "ds_relevance_map"),
    ("relevance_json", FILES["relevance_json"], "ds_relevance_json"),
)
RELEVANCE_REGIONS = (
    ("relevance_regions_tsv", FILES["relevance_regions"], "ds_relevance_regions"),
    ("relevance_regions_json", FILES["relevance_regions_json"], "ds_relevance_regions_json"),
)
#: Per-participant relevance maps, and the maps they explain (named after their T1w).
PARTICIPANT_RELEVANCE = ("participant_maps", "participant_map_jsons", "participant_map_ids")
#: Tables written with ``participant_id`` and ``session_id`` columns when rows are sessions.
PER_SCAN_TABLES = tuple(FILES[kind] for kind in ("embeddings", "regional", "predictions",
                                                  "applied_predictions"))
#: The inputnode: every field of every group workflow's outputnode, and ``gm_maps``.
INPUTS = tuple(dict.fromkeys(
    ["features_tsv", *TABLE_FIELDS,
     *(field for field, _, _ in FIT + APPLY + ENSEMBLE + RELEVANCE + RELEVANCE_REGIONS),
     *(f"fold_{field}" for field, _, _ in PER_FOLD), *PARTICIPANT_RELEVANCE, "gm_maps"]))


def relevance_desc(target):
    """The ``desc`` of a participant's relevance map: one per target, so maps explaining
    different targets never overwrite each other.

    >>> relevance_desc("age"), relevance_desc("MMSE score")
    ('relevanceAge', 'relevanceMMSEscore')
    """
    label = bids_label(target)
    return f"relevance{label[0].upper()}{label[1:]}"


def init_anatcl_group_derivatives_wf(*, output_dir, target, applied=False,
                                     features="embeddings", folds=None, relevance=False,
                                     relevance_regions=False,
                                     name="anatcl_group_derivatives_wf"):
    """Sink a group workflow's results into ``<output_dir>/group/target-<target>/``.

    Connect the group workflow's outputnode fields to the inputnode fields of the same name
    (and its inputnode's ``gm_maps`` with ``relevance``). ``applied``: a saved probe's
    predictions only. ``features``: which group tables were made. ``folds``: a fold
    ensemble, whose ``fold_*`` lists are written into ``fold-<k>/`` by one MapNode sink per
    kind. ``relevance``: the group relevance map (``relevance_regions``: its region table)
    and, by a MapNode, each participant's map. Feature tables wait for ``summary_json``:
    they appear only once the probe was fitted. Sinks run in the scheduler's process.

    Inputs (``inputnode``): :data:`INPUTS`. Outputs: none (the files are the result).

    >>> wf = init_anatcl_group_derivatives_wf(output_dir="/tmp/out", target="age",
    ...                                       folds=[0, 1], relevance=False)
    >>> wf.get_node("ds_fold_model").inputs.folder
    ['group/target-age/fold-0', 'group/target-age/fold-1']
    >>> len(wf.get_node("inputnode").inputs.copyable_trait_names()) == len(INPUTS)
    True
    """
    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=list(INPUTS)), name="inputnode")
    base = str(Path(output_dir).absolute())
    folder = target_folder(target)
    if applied:
        results, tables = APPLY, ()
    elif folds:
        results = ENSEMBLE
        tables = TABLES["regional"] if features == "both" else ()
        _sink_per_fold(workflow, inputnode, base, [f"{folder}/{fold_folder(k)}" for k in folds])
    else:
        results = FIT
        tables = tuple(sink for kind, sinks in TABLES.items()
                       if features in (kind, "both") for sink in sinks)
    if relevance:
        results += RELEVANCE + (RELEVANCE_REGIONS if relevance_regions else ())
        _sink_participant_relevance(workflow, inputnode, base, relevance_desc(target))
    for field, out_name, sink_name in results + tables:
        sink = pe.Node(GroupDerivativesSink(base_directory=base, folder=folder,
                                            out_name=out_name),
                       name=sink_name, run_without_submitting=True)
        source, source_field = _per_scan(workflow, inputnode, field, out_name, sink_name)
        workflow.connect(source, source_field, sink, "in_file")
        if field in TABLE_FIELDS:
            workflow.connect(inputnode, "summary_json", sink, "trigger")
    return workflow


def _per_scan(workflow, inputnode, field, out_name, sink_name, iterfield=None):
    """The table of ``field`` with ``participant_id`` and ``session_id`` columns when its
    rows are sessions (:data:`PER_SCAN_TABLES`); other results as they are."""
    if out_name not in PER_SCAN_TABLES:
        return inputnode, field
    function = niu.Function(function=_session_table, output_names=["out_tsv"])
    split = (pe.MapNode(function, iterfield=["in_tsv"], name=f"sessions_{sink_name}",
                        run_without_submitting=True) if iterfield else
             pe.Node(function, name=f"sessions_{sink_name}", run_without_submitting=True))
    split.inputs.out_name = out_name
    workflow.connect(inputnode, field, split, "in_tsv")
    return split, "out_tsv"


def _session_table(in_tsv, out_name):
    from pathlib import Path

    from anatcl_nipype.prediction.features import with_session_column

    return with_session_column(in_tsv, Path.cwd() / out_name)


def _sink_per_fold(workflow, inputnode, base, folders):
    """One MapNode sink per kind of result, over the folds' ``fold-<k>/`` folders; the
    embeddings tables wait for the ensemble's ``summary_json``."""
    for field, out_name, sink_name in PER_FOLD:
        sink_name = sink_name.replace("ds_", "ds_fold_", 1)
        sink = pe.MapNode(GroupDerivativesSink(base_directory=base, out_name=out_name),
                          iterfield=["in_file", "folder"], name=sink_name,
                          run_without_submitting=True)
        sink.inputs.folder = folders
        source, source_field = _per_scan(workflow, inputnode, f"fold_{field}", out_name,
                                         sink_name, iterfield=True)
        workflow.connect(source, source_field, sink, "in_file")
        if field in TABLE_FIELDS:
            workflow.connect(inputnode, "summary_json", sink, "trigger")


def _sink_participant_relevance(workflow, inputnode, base, desc):
    """Each participant's relevance map and sidecar as a BIDS derivative (a MapNode sink):
    ``sub-<l>[/ses-<s>]/anat/sub-<l>[_ses-<s>]_desc-<desc>_statmap.nii.gz`` and ``.json``."""
    pairs = pe.Node(niu.Function(function=_participant_files,
                                 output_names=["in_files", "source_files"]),
                    name="participant_relevance_files", run_without_submitting=True)
    sink = pe.MapNode(AnatCLDerivativesDataSink(base_directory=base, desc=desc,
                                                suffix="statmap"),
                      iterfield=["in_file", "source_file"], name="ds_participant_relevance",
                      run_without_submitting=True)
    workflow.connect([
        (inputnode, pairs, [("participant_maps", "maps"), ("participant_map_jsons", "sidecars"),
                            ("participant_map_ids", "participant_ids"),
                            ("gm_maps", "gm_maps")]),
        (pairs, sink, [("in_files", "in_file"), ("source_files", "source_file")]),
    ])


def _participant_files(maps, sidecars, participant_ids, gm_maps):
    """``[map, sidecar]`` per participant, and the BIDS T1w each is named after."""
    from anatcl_nipype.bids import bids_source_for, split_scan_id

    gm_maps = [gm_maps] if isinstance(gm_maps, str) else list(gm_maps)
    in_files = [[image, sidecar] for image, sidecar in zip(maps, sidecars)]
    sources = [bids_source_for(*split_scan_id(scan), path)
               for scan, path in zip(participant_ids, gm_maps)]
    return in_files, sources
