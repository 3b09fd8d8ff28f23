"""The participant-level workflow of the ``anatcl-nipype`` command (one branch per subject).

>>> subjects = [{"participant_id": f"sub-0{i}", "gm_modulated": f"/d/mwp1sub-0{i}_T1w.nii"}
...             for i in (1, 2, 3)]
>>> wf = init_anatcl_participant_wf(subjects=subjects[:1], output_dir="/tmp/out")
>>> [n for n in wf.list_node_names() if n.endswith("anatcl_encode")]
['single_subject_01_wf.anatcl_encoding_wf.anatcl_encode']
>>> wf = init_anatcl_participant_wf(subjects=subjects, output_dir="/tmp/out", shard_size=2)
>>> [n for n in wf.list_node_names() if "encode" in n]
['anatcl_encode_shard_1', 'anatcl_encode_shard_2']
"""

import re

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import bids_label, bids_source_for, bounded_label, scan_id
from anatcl_nipype.interfaces.encoder import SelectShardScan
from anatcl_nipype.options import with_options
from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf
from anatcl_nipype.workflows.encoding import (
    encoding_description,
    init_anatcl_encoding_wf,
    init_shard_encode_node,
)
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf

_BRANCH = re.compile(r"(?:^|\.)single_subject_([A-Za-z0-9]+)(?:_ses_([A-Za-z0-9]+))?_wf(?:\.|$)")
#: CAT12 files the regional branch reads, by their CAT12Segment output names.
REGIONAL_FIELDS = ("label_roi", "label_rois", "report")
#: What a branch takes from the encoding (the encoding workflow's outputnode fields).
ENCODED = ("embedding", "embedding_json", "embeddings", "embeddings_json")
#: AnatCLEncodeShard outputs every branch of a shard takes (as ``inputnode.shard_<name>``).
SHARD_FIELDS = ("out_files", "out_jsons", "errors", "error_types")
#: Name of the shard nodes, ``<SHARD_NODE>_<k>`` (k from 1).
SHARD_NODE = "anatcl_encode_shard"


def init_anatcl_participant_wf(*, subjects, output_dir, encoder=None, omp_nthreads=1,
                               shard_size=1, name="anatcl_participant_wf", **options):
    """One :func:`init_single_subject_wf` per subject, side by side.

    ``subjects`` holds dicts with ``participant_id`` and ``gm_modulated`` (and, when
    present, ``label_roi``, ``label_rois``, ``report``). ``encoder``:
    :class:`~anatcl_nipype.options.EncoderOptions`, or its fields as keywords
    (``options``); every branch encodes with them.

    ``shard_size`` above 1: the maps are encoded in shards of that many scans, in the
    order of ``subjects`` (:func:`shards_of`), one :class:`AnatCLEncodeShard` node per
    shard (``anatcl_encode_shard_<k>``, one model load, one cluster job each); every branch
    picks its scan's outputs from its shard and writes the same files as without shards
    (in fp32, byte for byte: see :func:`shard_batch_size`). A map that fails fails its
    own branch only.
    """
    encoder = with_options(encoder, **options)
    workflow = Workflow(name=name)
    # one call each: Nipype's add_nodes and connect list every node already in the workflow
    # each time they are called, so adding branches one by one costs O(n^2) (minutes at
    # 10,000 subjects)
    if shard_size <= 1:
        workflow.add_nodes([init_single_subject_wf(subject=subject, output_dir=output_dir,
                                                   encoder=encoder, omp_nthreads=omp_nthreads)
                            for subject in subjects])
        return workflow
    connections = []
    for number, shard in enumerate(shards_of(subjects, shard_size), start=1):
        encode = init_shard_encode_node(
            [str(subject["gm_modulated"]) for subject in shard],
            [scan_id(s["participant_id"], s.get("session_id")) for s in shard],
            encoder=encoder, omp_nthreads=omp_nthreads,
            batch_size=shard_batch_size(shard_size, encoder.precision),
            name=f"{SHARD_NODE}_{number}")
        for index, subject in enumerate(shard):
            branch = init_single_subject_wf(subject=subject, output_dir=output_dir,
                                            encoder=encoder, shard_index=index)
            connections.append((encode, branch, [
                (field, f"inputnode.shard_{field}") for field in SHARD_FIELDS]))
    workflow.connect(connections)
    return workflow


def shards_of(subjects, shard_size):
    """``subjects`` in consecutive shards of ``shard_size`` (the last one may be smaller).

    >>> shards_of(["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
    """
    subjects = list(subjects)
    return [subjects[start:start + shard_size] for start in range(0, len(subjects), shard_size)]


def shard_batch_size(shard_size, precision):
    """Maps per forward pass in a shard: ``shard_size``, except in fp32, where each map runs
    alone, so embeddings are byte-identical to the per-participant path's (a batched fp32
    forward runs other kernels and differs in the last bits; measured in
    benchmarks/RESULTS.md). The shard still loads the model once and reads maps ahead.

    >>> shard_batch_size(64, "fp32"), shard_batch_size(64, "bf16")
    (1, 64)
    """
    return 1 if precision == "fp32" else shard_size


def init_single_subject_wf(*, subject, output_dir, encoder=None, omp_nthreads=1,
                           shard_index=None, **options):
    """Encode one subject's CAT12 map, read its CAT12 ROI measures, write BIDS derivatives.

    The regional branch runs when the subject has CAT12 ROI files or a report
    (``label_roi``, ``label_rois``, ``report``). ``encoder``/``options`` as for
    :func:`init_anatcl_participant_wf`. With ``folds`` (released weights, e.g.
    ``(0, 1, 2, 3, 4)``) the map is read once and encoded by every fold's model, each
    fold written as its own derivative (``desc-anatclGlobalFold3``) with its own sidecar.
    ``shard_index`` (the sharded path of :func:`init_anatcl_participant_wf`): the map is
    encoded elsewhere, in a shard; the inputnode's ``shard_*`` fields take that
    :class:`AnatCLEncodeShard`'s outputs and this scan is the shard's ``shard_index``-th.
    """
    encoder = with_options(encoder, **options)
    workflow = Workflow(name=single_subject_wf_name(subject))
    inputnode = pe.Node(niu.IdentityInterface(fields=[
        "gm_modulated", "source_file",
        *(f"shard_{field}" for field in SHARD_FIELDS if shard_index is not None)]),
        name="inputnode")
    inputnode.inputs.gm_modulated = str(subject["gm_modulated"])
    workflow.__desc__ = encoding_description(encoder)
    encoding, produced = _add_encoding(workflow, inputnode, shard_index, encoder=encoder,
                                       omp_nthreads=omp_nthreads)
    inputnode.inputs.source_file = bids_source_for(subject["participant_id"],
                                                   subject.get("session_id"),
                                                   subject["gm_modulated"])
    regional_inputs = {field: str(subject[field]) for field in REGIONAL_FIELDS
                       if subject.get(field)}
    derivatives_wf = init_anatcl_derivatives_wf(output_dir=output_dir,
                                                descriptor=encoder.descriptor,
                                                fold=encoder.first_fold, weights=encoder.weights,
                                                regional=bool(regional_inputs),
                                                id_note=subject.get("id_note"))
    workflow.connect([
        (inputnode, derivatives_wf, [("source_file", "inputnode.source_file")]),
        (encoding, derivatives_wf, [(produced["embedding"], "inputnode.embedding"),
                                    (produced["embedding_json"], "inputnode.embedding_json")]),
    ])
    for index, other in enumerate(encoder.folds[1:] if encoder.folds else (), start=1):
        _add_fold_derivatives(workflow, inputnode, encoding, produced, index, other,
                              output_dir, encoder.descriptor, subject.get("id_note"))
    if regional_inputs:
        regional_wf = init_anatcl_regional_wf()
        for field, path in regional_inputs.items():
            setattr(regional_wf.inputs.inputnode, field, path)
        regional_wf.inputs.inputnode.participant_id = scan_id(subject["participant_id"],
                                                              subject.get("session_id"))
        workflow.__postdesc__ = regional_wf.__desc__
        workflow.connect([(regional_wf, derivatives_wf, [
            ("outputnode.regional_tsv", "inputnode.regional_tsv"),
            ("outputnode.regional_json", "inputnode.regional_json")])])
    return workflow


def _add_encoding(workflow, inputnode, shard_index, **encoding):
    """What gives a branch its embeddings, connected to ``inputnode``: the encoding workflow,
    or (``shard_index`` given) a pick of this scan's outputs from its shard. Returns it and
    the names of its outputs, by :data:`ENCODED` field."""
    if shard_index is None:
        encoding = init_anatcl_encoding_wf(**encoding)
        workflow.connect(inputnode, "gm_modulated", encoding, "inputnode.gm_modulated")
        return encoding, {name: f"outputnode.{name}" for name in ENCODED}
    pick = pe.Node(SelectShardScan(index=shard_index), name="select_shard_scan",
                   run_without_submitting=True)  # picks list items: no job of its own
    workflow.connect([(inputnode, pick, [(f"shard_{field}", field) for field in SHARD_FIELDS])])
    return pick, dict(zip(ENCODED, ("out_file", "out_json", "out_files", "out_jsons")))


def _add_fold_derivatives(workflow, inputnode, encoding, produced, index, fold, output_dir,
                          descriptor, id_note):
    """Sink the ``index``-th fold's embedding of a fold ensemble (``desc-anatcl...Fold<k>``)."""
    # picking a list item: in the scheduler's process, not a worker round trip
    pick = pe.Node(niu.Select(index=index), name=f"select_fold{fold}",
                   run_without_submitting=True)
    pick_json = pe.Node(niu.Select(index=index), name=f"select_fold{fold}_json",
                        run_without_submitting=True)
    derivatives_wf = init_anatcl_derivatives_wf(output_dir=output_dir, descriptor=descriptor,
                                                fold=fold, id_note=id_note,
                                                name=f"anatcl_derivatives_fold{fold}_wf")
    workflow.connect([
        (encoding, pick, [(produced["embeddings"], "inlist")]),
        (encoding, pick_json, [(produced["embeddings_json"], "inlist")]),
        (inputnode, derivatives_wf, [("source_file", "inputnode.source_file")]),
        (pick, derivatives_wf, [("out", "inputnode.embedding")]),
        (pick_json, derivatives_wf, [("out", "inputnode.embedding_json")]),
    ])


def single_subject_wf_name(subject):
    """The branch's name, bounded so work-folder names stay far under 255 bytes.

    >>> single_subject_wf_name({"participant_id": "sub-01"})
    'single_subject_01_wf'
    >>> single_subject_wf_name({"participant_id": "sub-01", "session_id": "ses-bl"})
    'single_subject_01_ses_bl_wf'
    >>> len(single_subject_wf_name({"participant_id": "sub-" + "a" * 240}))
    66
    """
    label = bounded_label(bids_label(subject["participant_id"].removeprefix("sub-")), 48)
    if subject.get("session_id"):
        label += "_ses_" + bounded_label(bids_label(subject["session_id"].removeprefix("ses-")),
                                         24)
    return f"single_subject_{label}_wf"


def scan_of_branch(node_name):
    """The scan (``sub-<l>[_ses-<s>]``) whose branch a node belongs to, or None.

    >>> scan_of_branch("anatcl_participant_wf.single_subject_01_ses_bl_wf.anatcl_encode")
    'sub-01_ses-bl'
    >>> scan_of_branch("single_subject_01_wf"), scan_of_branch("anatcl_group_wf.fit_probe")
    ('sub-01', None)
    """
    match = _BRANCH.search(node_name)
    if not match:
        return None
    return scan_id(f"sub-{match.group(1)}", match.group(2) and f"ses-{match.group(2)}")


def shard_scans(node):
    """The scans a shard node (``anatcl_encode_shard_<k>``) encodes, or None for any other
    node (the progress lines count a shard's scans)."""
    if shard_number(node.name) is None:
        return None
    return list(node.inputs.scan_ids)


def encoded_scans(node):
    """The scans a finished shard node encoded (those whose map did not fail)."""
    outputs = node.result.outputs
    return [scan for scan, error in zip(outputs.scan_ids, outputs.errors) if not error]


def shard_number(node_name):
    """``k`` of a shard node's name (``...anatcl_encode_shard_<k>``), or None.

    >>> shard_number("anatcl_participant_wf.anatcl_encode_shard_12"), shard_number("x")
    (12, None)
    """
    match = re.search(rf"(?:^|\.){SHARD_NODE}_([0-9]+)$", node_name)
    return int(match.group(1)) if match else None
