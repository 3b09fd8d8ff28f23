"""The participant-level workflow of the ``anatcl-nipype`` command (one branch per subject).

>>> wf = init_anatcl_participant_wf(
...     subjects=[{"participant_id": "sub-01", "gm_modulated": "/data/sub-01/mri/mwp1sub-01_T1w.nii"}],
...     output_dir="/tmp/out")
>>> [n for n in wf.list_node_names() if n.endswith("anatcl_encode")]
['single_subject_01_wf.anatcl_encoding_wf.anatcl_encode']
"""

import re

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import bids_label, bids_source_for, bounded_label, scan_id
from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf
from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf

_BRANCH = re.compile(r"(?:^|\.)single_subject_([A-Za-z0-9]+)(?:_ses_([A-Za-z0-9]+))?_wf(?:\.|$)")
#: CAT12 files the regional branch reads, by their CAT12Segment output names.
REGIONAL_FIELDS = ("label_roi", "label_rois", "report")


def init_anatcl_participant_wf(*, subjects, output_dir, name="anatcl_participant_wf",
                               **options):
    """One :func:`init_single_subject_wf` per subject, side by side.

    ``subjects`` holds dicts with ``participant_id`` and ``gm_modulated`` (and, when
    present, ``label_roi``, ``label_rois``, ``report``); ``options`` go to every branch.
    """
    workflow = Workflow(name=name)
    # one call: Nipype's add_nodes lists every node already in the workflow each time it is
    # called, so adding the branches one by one costs O(n^2) (minutes at 10,000 subjects)
    workflow.add_nodes([init_single_subject_wf(subject=subject, output_dir=output_dir,
                                               **options) for subject in subjects])
    return workflow


def init_single_subject_wf(*, subject, output_dir, weights=None, descriptor="global", fold=0,
                           precision="fp32", device="auto", use_gpu=False, omp_nthreads=1,
                           folds=None, force_precision=False, resample=False):
    """Encode one subject's CAT12 map, read its CAT12 ROI measures, write BIDS derivatives.

    The regional branch runs when the subject has CAT12 ROI files or a report
    (``label_roi``, ``label_rois``, ``report``). ``folds`` (released weights, e.g.
    ``(0, 1, 2, 3, 4)``): the map is read once and encoded by every fold's model, each
    fold written as its own derivative (``desc-anatclGlobalFold3``) with its own sidecar.
    """
    workflow = Workflow(name=single_subject_wf_name(subject))
    inputnode = pe.Node(niu.IdentityInterface(fields=["gm_modulated", "source_file"]),
                        name="inputnode")
    inputnode.inputs.gm_modulated = str(subject["gm_modulated"])
    encoding_wf = init_anatcl_encoding_wf(weights=weights, descriptor=descriptor, fold=fold,
                                          precision=precision, device=device, use_gpu=use_gpu,
                                          omp_nthreads=omp_nthreads, folds=folds,
                                          force_precision=force_precision, resample=resample)
    workflow.__desc__ = encoding_wf.__desc__
    if folds:
        fold = folds[0]  # the encoding workflow's ``embedding`` is the first fold's
    inputnode.inputs.source_file = bids_source_for(subject["participant_id"],
                                                   subject.get("session_id"),
                                                   subject["gm_modulated"])
    regional_inputs = {field: str(subject[field]) for field in REGIONAL_FIELDS
                       if subject.get(field)}
    derivatives_wf = init_anatcl_derivatives_wf(output_dir=output_dir, descriptor=descriptor,
                                                fold=fold, weights=weights,
                                                regional=bool(regional_inputs),
                                                id_note=subject.get("id_note"))
    workflow.connect([
        (inputnode, encoding_wf, [("gm_modulated", "inputnode.gm_modulated")]),
        (inputnode, derivatives_wf, [("source_file", "inputnode.source_file")]),
        (encoding_wf, derivatives_wf, [("outputnode.embedding", "inputnode.embedding"),
                                       ("outputnode.embedding_json", "inputnode.embedding_json")]),
    ])
    for index, other in enumerate(folds[1:] if folds else (), start=1):
        _add_fold_derivatives(workflow, inputnode, encoding_wf, index, other, output_dir,
                              descriptor, subject.get("id_note"))
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


def _add_fold_derivatives(workflow, inputnode, encoding_wf, index, fold, output_dir,
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
        (encoding_wf, pick, [("outputnode.embeddings", "inlist")]),
        (encoding_wf, pick_json, [("outputnode.embeddings_json", "inlist")]),
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
