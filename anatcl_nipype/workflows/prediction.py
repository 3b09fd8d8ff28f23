"""Deprecated: a prediction study as one workflow (embed each map, then the group level).

Use :func:`~anatcl_nipype.workflows.init_anatcl_group_wf` after your own encoding nodes
(or after the participant level); this wrapper builds exactly that and stays for existing
pipelines. Building it imports neither torch nor scikit-learn.

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     wf = init_anatcl_prediction_wf(task="classification", target="diagnosis")
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())
['features_tsv', 'figures', 'metrics_tsv', 'model', 'model_card', 'predictions_tsv']
"""

import warnings

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.interfaces.encoder import AnatCLEncode
from anatcl_nipype.options import TASKS, EncoderOptions, check_choice
from anatcl_nipype.workflows.encoding import ENCODE_MEM_GB, encoding_description
from anatcl_nipype.workflows.group import init_anatcl_group_wf

MODES = ("fit", "apply")
OUTPUTS = ("features_tsv", "model", "model_card", "metrics_tsv", "predictions_tsv", "figures")


def init_anatcl_prediction_wf(*, task, target, weights=None, descriptor="global", fold=0,
                              mode="fit", model=None, use_regional=False, cv=5, n_repeats=1,
                              group_column=None, seed=0, n_permutations=0, precision="fp32",
                              omp_nthreads=1, name="anatcl_prediction_wf"):
    """Deprecated: encode ``gm_modulated`` (a MapNode of :class:`AnatCLEncode`), then
    :func:`~anatcl_nipype.workflows.init_anatcl_group_wf` (``use_regional``: features
    ``both``; ``mode="apply"``: the saved ``model``).

    Inputs: ``gm_modulated`` (list of CAT12 ``mwp1`` maps), ``participants_tsv``,
    ``regional_tsv``. Outputs: those of the group workflow.
    """
    warnings.warn("init_anatcl_prediction_wf is deprecated; connect your encoding nodes to "
                  "anatcl_nipype.workflows.init_anatcl_group_wf", DeprecationWarning,
                  stacklevel=2)
    check_choice("task", task, TASKS)
    if mode not in MODES:
        raise AnatCLError(f"mode={mode!r}: choose 'fit' (cross-validate and train a probe) "
                          "or 'apply' (predict with a saved probe)")
    if mode == "apply" and model is None:
        raise AnatCLError("mode='apply' needs model=, the .skops probe a 'fit' run saved "
                          "(its .json card beside it)")
    workflow = Workflow(name=name)
    group_wf = init_anatcl_group_wf(
        target=target, task=task, features="both" if use_regional else "embeddings",
        model=model if mode == "apply" else None, cv=cv, n_repeats=n_repeats,
        group_column=group_column, seed=seed, n_permutations=n_permutations)
    encoder = EncoderOptions(weights=weights, descriptor=descriptor, fold=fold,
                             precision=precision)
    workflow.__desc__ = encoding_description(encoder)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["gm_modulated", "participants_tsv", "regional_tsv"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(OUTPUTS)), name="outputnode")
    encode = pe.MapNode(
        AnatCLEncode(**encoder.node_inputs()),
        iterfield=["in_file"], name="anatcl_encode", n_procs=omp_nthreads,
        mem_gb=ENCODE_MEM_GB)
    workflow.connect([
        (inputnode, encode, [("gm_modulated", "in_file")]),
        (encode, group_wf, [("out_file", "inputnode.embeddings"),
                            ("out_json", "inputnode.embeddings_json")]),
        (inputnode, group_wf, [("participants_tsv", "inputnode.participants_tsv"),
                               ("regional_tsv", "inputnode.regional_tsv")]),
        (group_wf, outputnode, [(f"outputnode.{field}", field) for field in OUTPUTS]),
    ])
    return workflow
