"""CAT12 segmentation followed by AnatCL encoding and region-wise measures, in one workflow.

nipype's ``CAT12Segment`` runs CAT12 through MATLAB (or its compiled standalone with the
MCR); building and drawing this workflow needs neither. To run it, point Nipype at CAT12:
with MATLAB, ``CAT12Segment.set_mlab_paths(paths="/opt/spm12")`` (SPM12 with CAT12 in
``toolbox/cat12``); with the standalone, ``SPMCommand.set_mlab_paths(
matlab_cmd="/opt/CAT12/run_spm12.sh /opt/MCR/v93 script", use_mcr=True)``.

>>> wf = init_cat12_anatcl_wf()
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())
... # doctest: +NORMALIZE_WHITESPACE
['embedding', 'embedding_json', 'gm_modulated', 'label_roi', 'label_rois', 'regional_json',
 'regional_tsv', 'report']
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf

#: CAT12 needs a few GB; its own documentation suggests 4 to 8 GB per subject.
CAT12_MEM_GB = 6


def init_cat12_anatcl_wf(*, cat12_options=None, regional_options=None, omp_nthreads=1,
                         name="cat12_anatcl_wf", **encoding_options):
    """Run ``CAT12Segment`` on a T1w image, embed its ``mwp1`` map, collect regional measures.

    Inputs: ``t1w`` (an uncompressed T1-weighted ``.nii``, as CAT12 requires).
    Outputs: ``embedding``, ``embedding_json`` (from :func:`init_anatcl_encoding_wf`),
    ``regional_tsv``, ``regional_json`` (from :func:`init_anatcl_regional_wf`: CAT12's
    ROI measures, TIV and IQR in one row), and CAT12's ``gm_modulated`` map,
    ``label_roi`` / ``label_rois`` (ROI XML) and ``report`` (cat_*.xml).

    ``cat12_options`` are passed to ``CAT12Segment``; ``regional_options`` to
    :func:`init_anatcl_regional_wf`; ``encoding_options`` to
    :func:`init_anatcl_encoding_wf`.
    """
    from nipype.interfaces.cat12 import CAT12Segment

    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "embedding", "embedding_json", "regional_tsv", "regional_json", "gm_modulated",
        "label_roi", "label_rois", "report"]), name="outputnode")
    cat12 = pe.Node(CAT12Segment(**(cat12_options or {})), name="cat12_segment",
                    n_procs=omp_nthreads, mem_gb=CAT12_MEM_GB)
    encoding_wf = init_anatcl_encoding_wf(omp_nthreads=omp_nthreads, **encoding_options)
    regional_wf = init_anatcl_regional_wf(**(regional_options or {}))
    workflow.connect([
        (inputnode, cat12, [("t1w", "in_files")]),
        (cat12, encoding_wf, [("gm_modulated_image", "inputnode.gm_modulated")]),
        (cat12, regional_wf, [(field, f"inputnode.{field}") for field in (
            "gm_modulated_image", "label_roi", "label_rois", "report")]),
        (encoding_wf, outputnode, [("outputnode.embedding", "embedding"),
                                   ("outputnode.embedding_json", "embedding_json")]),
        (regional_wf, outputnode, [("outputnode.regional_tsv", "regional_tsv"),
                                   ("outputnode.regional_json", "regional_json")]),
        (cat12, outputnode, [("gm_modulated_image", "gm_modulated"), ("label_roi", "label_roi"),
                             ("label_rois", "label_rois"), ("report", "report")]),
    ])
    return workflow
