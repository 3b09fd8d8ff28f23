"""The group-level workflow of the ``anatcl-nipype`` command: tables in, a probe out.

Takes what the participant level wrote (per-subject embeddings and regional tables), joins
them into group feature tables, and fits and cross-validates a probe (or applies a saved one).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("e.npy", "e.json", "r.tsv", "r.json", "participants.tsv"):
...     _ = (folder / name).write_text("")
>>> wf = init_anatcl_group_wf(embeddings=[folder / "e.npy"], regional=[folder / "r.tsv"],
...                           target="age", task="brain_age",
...                           participants_tsv=folder / "participants.tsv")
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())  # doctest: +NORMALIZE_WHITESPACE
['embeddings_tsv', 'figures', 'metrics_tsv', 'model', 'model_card', 'predictions_tsv',
 'regional_tsv', 'summary_json']
"""

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.interfaces.prediction import ApplyProbe, FitProbe, JoinEmbeddings
from anatcl_nipype.interfaces.regional import MergeRegionalTables

OUTPUTS = ("embeddings_tsv", "regional_tsv", "model", "model_card", "metrics_tsv",
           "predictions_tsv", "figures", "summary_json")


def _sidecars(paths):
    return [str(Path(path).with_suffix(".json")) for path in paths]


def init_anatcl_group_wf(*, participants_tsv, target, task, embeddings=(), regional=(),
                         model=None, cv=5, n_repeats=1, group_column=None, seed=0,
                         name="anatcl_group_wf"):
    """Join per-subject features and fit (or, with ``model``, apply) a probe.

    ``embeddings``: per-subject ``.npy`` files with their JSON sidecars beside them;
    ``regional``: per-subject regional TSVs with sidecars. Either may be empty, not both.
    """
    workflow = Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=list(OUTPUTS)), name="outputnode")
    collect = pe.Node(niu.Merge(2), name="collect_features")
    collect_json = pe.Node(niu.Merge(2), name="collect_sidecars")
    if embeddings:
        join = pe.Node(JoinEmbeddings(in_files=[str(p) for p in embeddings],
                                      in_jsons=_sidecars(embeddings)), name="join_embeddings")
        workflow.connect([(join, collect, [("out_tsv", "in1")]),
                          (join, collect_json, [("out_json", "in1")]),
                          (join, outputnode, [("out_tsv", "embeddings_tsv")])])
    if regional:
        merge = pe.Node(MergeRegionalTables(in_files=[str(p) for p in regional],
                                            in_jsons=_sidecars(regional), out_name="regional"),
                        name="merge_regional")
        workflow.connect([(merge, collect, [("out_tsv", "in2")]),
                          (merge, collect_json, [("out_json", "in2")]),
                          (merge, outputnode, [("out_tsv", "regional_tsv")])])
    if model is None:
        probe = pe.Node(FitProbe(participants_tsv=str(participants_tsv), target=target,
                                 task=task, cv=cv, n_repeats=n_repeats, seed=seed),
                        name="fit_probe")
        if group_column:
            probe.inputs.group_column = group_column
        workflow.connect([(probe, outputnode, [
            ("model", "model"), ("model_card", "model_card"), ("metrics_tsv", "metrics_tsv"),
            ("predictions_tsv", "predictions_tsv"), ("figures", "figures"),
            ("out_json", "summary_json")])])
    else:
        probe = pe.Node(ApplyProbe(model=str(model), participants_tsv=str(participants_tsv)),
                        name="apply_probe")
        workflow.connect([(probe, outputnode, [("predictions_tsv", "predictions_tsv"),
                                               ("out_json", "summary_json")])])
    workflow.connect([(collect, probe, [("out", "features")]),
                      (collect_json, probe, [("out", "features_json")])])
    return workflow
