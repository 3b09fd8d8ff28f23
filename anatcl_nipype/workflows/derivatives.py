"""Write AnatCL results as BIDS derivatives with the package's own sink,
:class:`~anatcl_nipype.interfaces.bids.AnatCLDerivativesDataSink` (names built by
pybids' ``build_path``, files written atomically).

>>> wf = init_anatcl_derivatives_wf(output_dir="/tmp/derivatives", descriptor="global", fold=0)
>>> wf.get_node("ds_embedding").interface.inputs.desc
'anatclGlobalFold0'
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import weights_desc
from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink, DatasetDescription
from anatcl_nipype.outputs import PARTICIPANT_FILES


def _bids_source(in_file):
    from anatcl_nipype.bids import bids_source_from_cat12

    return bids_source_from_cat12(in_file)


def _note_participant_id(in_file, note):
    """A copy of the sidecar ``in_file`` saying how the participant id was made."""
    import json
    from pathlib import Path

    from anatcl_nipype.files import write_json_atomic

    sidecar = json.loads(Path(in_file).read_text())
    sidecar["ParticipantIdSource"] = note
    return str(write_json_atomic(Path.cwd() / Path(in_file).name, sidecar))


def init_anatcl_derivatives_wf(*, output_dir, descriptor="global", fold=0, weights=None,
                               regional=False, id_note=None, name="anatcl_derivatives_wf"):
    """Sink one participant's embedding (and regional measures) into ``output_dir``.

    Inputs: ``source_file`` (the CAT12 ``mwp1`` map, named after its BIDS T1w),
    ``embedding`` and ``embedding_json``; with ``regional``, ``regional_tsv`` and
    ``regional_json``. Writes
    ``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>]_desc-<desc>_embedding.npy``
    and ``.json``, ``..._desc-cat12_regions.tsv`` and ``.json``, and
    ``dataset_description.json`` with ``GeneratedBy``. ``id_note`` (how a non-BIDS file
    name became the participant id) goes into the sidecars as ``ParticipantIdSource``.
    With ``weights`` (a checkpoint file) the embedding sinks read ``embedding_json`` when
    they run: seeded random weights write ``desc-anatclRandom``, others ``desc-anatclCustom``
    (building the graph loads no checkpoint and imports no torch).
    """
    workflow = Workflow(name=name)
    embedding = (weights_desc(descriptor, fold, weights), PARTICIPANT_FILES["embedding"][1])
    kinds = {"embedding": embedding, "embedding_json": embedding}
    if regional:
        kinds.update(regional_tsv=PARTICIPANT_FILES["regional"],
                     regional_json=PARTICIPANT_FILES["regional"])
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
        source = inputnode
        if id_note and kind.endswith("_json"):
            source = pe.Node(niu.Function(function=_note_participant_id,
                                          output_names=[kind]), name=f"note_{kind}",
                             run_without_submitting=True)  # edits one small JSON
            source.inputs.note = id_note
            workflow.connect(inputnode, kind, source, "in_file")
        workflow.connect([
            (bids_source, sink, [("source_file", "source_file")]),
            (source, sink, [(kind, "in_file")]),
            (sink, outputnode, [("out_file", kind)]),
        ])
        if weights is not None and kind.startswith("embedding"):
            workflow.connect(inputnode, "embedding_json", sink, "weights_sidecar")
    workflow.connect([(workflow.get_node("ds_embedding"), description, [("out_file", "trigger")])])
    return workflow
