"""Write AnatCL results as BIDS derivatives (niworkflows' DerivativesDataSink).

>>> wf = init_anatcl_derivatives_wf(output_dir="/tmp/derivatives", descriptor="global", fold=0)
>>> wf.get_node("ds_embedding").interface.inputs.desc
'anatclGlobalFold0'
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import weights_desc
from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink, DatasetDescription


def _bids_source(in_file):
    from anatcl_nipype.bids import bids_source_from_cat12

    return bids_source_from_cat12(in_file)


def init_anatcl_derivatives_wf(*, output_dir, descriptor="global", fold=0, weights=None,
                               regional=False, name="anatcl_derivatives_wf"):
    """Sink one participant's embedding (and regional measures) into ``output_dir``.

    Inputs: ``source_file`` (the CAT12 ``mwp1`` map, named after its BIDS T1w),
    ``embedding`` and ``embedding_json``; with ``regional``, ``regional_tsv`` and
    ``regional_json``. Writes
    ``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>]_desc-<desc>_embedding.npy``
    and ``.json``, ``..._desc-cat12_regions.tsv`` and ``.json``, and
    ``dataset_description.json`` with ``GeneratedBy``.
    """
    workflow = Workflow(name=name)
    kinds = {"embedding": (weights_desc(descriptor, fold, weights), "embedding"),
             "embedding_json": (weights_desc(descriptor, fold, weights), "embedding")}
    if regional:
        kinds.update(regional_tsv=("cat12", "regions"), regional_json=("cat12", "regions"))
    inputnode = pe.Node(niu.IdentityInterface(fields=["source_file", *kinds]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(kinds)), name="outputnode")
    bids_source = pe.Node(niu.Function(function=_bids_source, output_names=["source_file"]),
                          name="bids_source", run_without_submitting=True)
    description = pe.Node(DatasetDescription(base_directory=str(output_dir)),
                          name="ds_dataset_description", run_without_submitting=True)
    workflow.connect([(inputnode, bids_source, [("source_file", "in_file")])])
    for kind, (desc, suffix) in kinds.items():
        sink = pe.Node(AnatCLDerivativesDataSink(base_directory=str(output_dir), desc=desc,
                                                 suffix=suffix, compress=None),
                       name=f"ds_{kind}", run_without_submitting=True)
        workflow.connect([
            (bids_source, sink, [("source_file", "source_file")]),
            (inputnode, sink, [(kind, "in_file")]),
            (sink, outputnode, [("out_file", kind)]),
        ])
    workflow.connect([(workflow.get_node("ds_embedding"), description, [("out_file", "trigger")])])
    return workflow
