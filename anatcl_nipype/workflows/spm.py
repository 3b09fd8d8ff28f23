"""The SPM12 route: NewSegment + DARTEL + modulated normalisation to MNI, then AnatCL.

AnatCL was trained on CAT12 maps. SPM12 can write a modulated grey-matter map on the very
same grid (1.5 mm, bounding box [-90 -126 -72; 90 90 108] -> 121x145x121), which the encoder
accepts; but SPM's tissue model, DARTEL template and affine step to MNI differ from CAT12's
shooting to MNI152NLin2009cAsym, so these maps are out of the training distribution. Use
this route where CAT12 cannot run, and only with probes trained on SPM-derived maps.

DARTEL builds its template from every subject, so this is a group workflow. Building and
drawing it needs neither MATLAB nor SPM; running it does (see :mod:`.cat12` for how to point
Nipype at them).

>>> wf = init_spm_anatcl_wf()
>>> wf.get_node("normalise_to_mni").inputs.voxel_size
(1.5, 1.5, 1.5)
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.workflows.encoding import init_anatcl_group_encoding_wf

#: The SPM bounding box of CAT12's default output grid (x, y, z low, then high), and its
#: voxel size.
CAT12_BOUNDING_BOX = (-90.0, -126.0, -72.0, 90.0, 90.0, 108.0)
CAT12_VOXEL_MM = (1.5, 1.5, 1.5)
SPM_MEM_GB = 4


def _tissues(tpm):
    """NewSegment's six classes: (TPM class, gaussians, (native, DARTEL), (warped, modulated))."""
    return [
        ((tpm, 1), 1, (True, True), (False, False)),  # grey matter: c1 and rc1
        ((tpm, 2), 1, (True, True), (False, False)),  # white matter: c2 and rc2
        ((tpm, 3), 2, (True, False), (False, False)),  # CSF: c3
        ((tpm, 4), 3, (False, False), (False, False)),
        ((tpm, 5), 4, (False, False), (False, False)),
        ((tpm, 6), 2, (False, False), (False, False)),
    ]


def _dartel_image_sets(dartel_input_images):
    """Per-subject [[rc1], [rc2], ...] -> per-tissue [[rc1 of each subject], [rc2 ...]]."""
    per_tissue = zip(*dartel_input_images)
    return [[files[0] for files in tissue] for tissue in per_tissue if all(tissue)]


def _grey_matter(native_class_images):
    """Per-subject [[c1], [c2], ...] -> the c1 (grey matter) of each subject."""
    return [classes[0][0] for classes in native_class_images]


def init_spm_anatcl_wf(*, name="spm_anatcl_wf", **encoding_options):
    """T1w images -> SPM12 modulated GM on the CAT12 grid -> AnatCL group embeddings.

    Inputs: ``t1w_files`` (list of ``.nii``), ``tpm`` (SPM12's ``tpm/TPM.nii``; an input
    because NewSegment checks the file exists) and ``participant_ids`` (optional).
    Outputs: ``gm_modulated`` (SPM ``mwc1`` maps) and the group encoding outputs
    (``embeddings_tsv``, ``embeddings``, ``embeddings_json``, ``failed_tsv``).
    """
    from nipype.interfaces import spm

    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w_files", "tpm", "participant_ids"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "gm_modulated", "embeddings_tsv", "embeddings", "embeddings_json", "failed_tsv"]),
        name="outputnode")
    tissues = pe.Node(niu.Function(function=_tissues, output_names=["tissues"]),
                      name="tissues")
    segment = pe.MapNode(spm.NewSegment(), iterfield=["channel_files"], name="segment",
                         mem_gb=SPM_MEM_GB)
    dartel_sets = pe.Node(niu.Function(function=_dartel_image_sets, output_names=["image_files"]),
                          name="dartel_sets")
    grey_matter = pe.Node(niu.Function(function=_grey_matter, output_names=["gm_files"]),
                          name="grey_matter")
    dartel = pe.Node(spm.DARTEL(), name="dartel_template", mem_gb=SPM_MEM_GB)
    normalise = pe.Node(spm.DARTELNorm2MNI(modulate=True, voxel_size=CAT12_VOXEL_MM,
                                           bounding_box=CAT12_BOUNDING_BOX, fwhm=[0, 0, 0]),
                        name="normalise_to_mni", mem_gb=SPM_MEM_GB)
    encoding_wf = init_anatcl_group_encoding_wf(**encoding_options)
    workflow.connect([
        (inputnode, tissues, [("tpm", "tpm")]),
        (tissues, segment, [("tissues", "tissues")]),
        (inputnode, segment, [("t1w_files", "channel_files")]),
        (segment, dartel_sets, [("dartel_input_images", "dartel_input_images")]),
        (segment, grey_matter, [("native_class_images", "native_class_images")]),
        (dartel_sets, dartel, [("image_files", "image_files")]),
        (dartel, normalise, [("final_template_file", "template_file"),
                             ("dartel_flow_fields", "flowfield_files")]),
        (grey_matter, normalise, [("gm_files", "apply_to_files")]),
        (normalise, encoding_wf, [("normalized_files", "inputnode.gm_modulated")]),
        (inputnode, encoding_wf, [("participant_ids", "inputnode.participant_ids")]),
        (normalise, outputnode, [("normalized_files", "gm_modulated")]),
        (encoding_wf, outputnode, [(f"outputnode.{field}", field) for field in (
            "embeddings_tsv", "embeddings", "embeddings_json", "failed_tsv")]),
    ])
    return workflow
