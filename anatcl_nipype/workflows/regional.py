"""Workflows that extract region-wise measures from CAT12's outputs, per subject or per group.

The inputnode takes nipype ``CAT12Segment``'s output names, so the workflow chains
straight after it; inputs left unset (no surface file, no report) are skipped. Building
a workflow imports neither torch nor the model. The methods text (``__desc__``) is
:mod:`anatcl_nipype.regional.methods_text`'s, as the report's.

>>> wf = init_anatcl_regional_wf()
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())
['regional_json', 'regional_tsv']
>>> import tempfile, pathlib
>>> atlas = pathlib.Path(tempfile.mkdtemp()) / "atlas-demo_dseg.nii.gz"
>>> atlas.touch()  # the atlas must exist when the workflow is built
>>> wf = init_anatcl_regional_wf(atlas=atlas, pooled_features=True)
>>> outputs = wf.get_node("outputnode").outputs.copyable_trait_names()
>>> sorted(outputs)  # doctest: +NORMALIZE_WHITESPACE
['pooled_features', 'pooled_json', 'pooled_regions', 'pooled_tsv', 'regional_json',
 'regional_tsv']
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.interfaces.regional import (
    AtlasGMVolumes,
    CAT12ROIMeasures,
    MergeRegionalTables,
    RegionPooledFeatures,
)
from anatcl_nipype.options import with_options
from anatcl_nipype.regional.methods_text import regional_text
from anatcl_nipype.workflows.encoding import ENCODE_MEM_GB

#: Fields of the inputnode: CAT12Segment's output names, plus the row label.
INPUT_FIELDS = ("label_roi", "label_rois", "report", "gm_modulated_image", "participant_id")
REGIONAL_OUTPUTS = ("regional_tsv", "regional_json")
POOLED_OUTPUTS = ("pooled_features", "pooled_regions", "pooled_tsv", "pooled_json")


def init_anatcl_regional_wf(*, atlas=None, label_table=None, atlas_name=None, resample=False,
                            cat12_rois=True, cat12_atlases=None, cat12_measures=None,
                            pooled_features=False, layers=("layer3", "layer4"), encoder=None,
                            omp_nthreads=1, name="anatcl_regional_wf", **options):
    """One participant's region-wise measures as a one-row table.

    Parameters
    ----------
    atlas, label_table, atlas_name, resample
        A label image (and its region table) on the grid of the ``mwp1`` map: adds
        ``Vgm`` and ``mean_gm`` per region (:class:`AtlasGMVolumes`). None: no atlas.
    cat12_rois, cat12_atlases, cat12_measures
        Read CAT12's ROI files and report (:class:`CAT12ROIMeasures`), keeping these
        atlases and measures (default: all).
    pooled_features, layers
        Also pool AnatCL's feature maps within the atlas regions
        (:class:`RegionPooledFeatures`, EXPLORATORY; needs ``atlas`` on the CAT12 grid).
    encoder, options, omp_nthreads
        The AnatCL weights and how to run them (pooled features), as in
        ``init_anatcl_encoding_wf`` (``resample`` is the one above).

    Inputs
    ------
    label_roi, label_rois, report, gm_modulated_image
        CAT12Segment's outputs (catROI_*.xml, catROIs_*.xml, cat_*.xml, mwp1*.nii);
        any may be left unset.
    participant_id
        Row label; default: ``sub-<label>`` from the file names.

    Outputs
    -------
    regional_tsv, regional_json
        One row: ``participant_id``, CAT12's ROI measures (``<atlas>_<region>_<measure>``),
        ``cat12_TIV``, ``cat12_IQR``, ``cat12_vol_abs_*`` and the atlas' ``Vgm``/``mean_gm``;
        the sidecar describes every column and lists the inputs with their sha256.
    pooled_features, pooled_regions, pooled_tsv, pooled_json
        With ``pooled_features``: one ``.npy`` (regions x channels) per layer, the
        regions table, a one-row channel-mean summary and its sidecar.
    """
    if not cat12_rois and atlas is None:
        raise AnatCLError("init_anatcl_regional_wf: nothing to measure; keep cat12_rois=True "
                          "or pass an atlas")
    if pooled_features and atlas is None:
        raise AnatCLError("init_anatcl_regional_wf: pooled_features needs an atlas on the "
                          "CAT12 grid (atlas=...)")
    workflow = Workflow(name=name)
    workflow.__desc__ = regional_text(cat12_rois=cat12_rois, atlas=atlas is not None,
                                      atlas_name=atlas_name,
                                      pooled_features=pooled_features) + "\n"
    inputnode = pe.Node(niu.IdentityInterface(fields=list(INPUT_FIELDS), mandatory_inputs=False),
                        name="inputnode")
    outputs = REGIONAL_OUTPUTS + (POOLED_OUTPUTS if pooled_features else ())
    outputnode = pe.Node(niu.IdentityInterface(fields=list(outputs)), name="outputnode")
    atlas_options = _atlas_options(atlas, label_table, atlas_name)
    tables = []
    if cat12_rois:
        tables.append(_cat12_rois_node(workflow, inputnode, cat12_atlases, cat12_measures))
    if atlas is not None:
        volumes = pe.Node(AtlasGMVolumes(resample=resample, **atlas_options),
                          name="atlas_gm_volumes")
        workflow.connect(inputnode, "gm_modulated_image", volumes, "gm_modulated")
        workflow.connect(inputnode, "participant_id", volumes, "participant_id")
        tables.append(volumes)
    _merge_tables(workflow, tables, outputnode)
    if pooled_features:
        pooled = pe.Node(
            RegionPooledFeatures(layers=list(layers), **atlas_options, **with_options(
                encoder, **options, resample=resample).node_inputs()),
            name="region_pooled_features", n_procs=omp_nthreads, mem_gb=ENCODE_MEM_GB)
        workflow.connect([
            (inputnode, pooled, [("gm_modulated_image", "gm_modulated"),
                                 ("participant_id", "participant_id")]),
            (pooled, outputnode, [("out_features", "pooled_features"),
                                  ("out_regions", "pooled_regions"),
                                  ("out_tsv", "pooled_tsv"), ("out_json", "pooled_json")]),
        ])
    return workflow


def init_anatcl_group_regional_wf(subjects, *, name="anatcl_group_regional_wf",
                                  **regional_options):
    """Region-wise measures of many subjects joined into one group table.

    ``subjects`` is a list of dicts, one per subject, all with the same keys among the
    inputnode fields of :func:`init_anatcl_regional_wf` (``label_roi``, ``report``,
    ``gm_modulated_image``, ``participant_id``...). A ``subjects`` node iterates over
    them (synchronised iterables), each runs :func:`init_anatcl_regional_wf` with
    ``regional_options``, and a JoinNode (:class:`MergeRegionalTables`) makes one row
    per subject. Outputs: ``regional_tsv``, ``regional_json`` and, with
    ``pooled_features``, ``pooled_tsv``, ``pooled_json`` (the joined channel-mean
    summaries) and ``pooled_features`` (per subject, the list of ``.npy`` files).

    >>> wf = init_anatcl_group_regional_wf([{"label_roi": "catROI_sub-01_T1w.xml"},
    ...                                     {"label_roi": "catROI_sub-02_T1w.xml"}])
    >>> wf.get_node("subjects").iterables
    [('label_roi', ['catROI_sub-01_T1w.xml', 'catROI_sub-02_T1w.xml'])]
    """
    fields = _subject_fields(subjects)
    pooled = regional_options.get("pooled_features", False)
    workflow = Workflow(name=name)
    source = pe.Node(niu.IdentityInterface(fields=fields), name="subjects")
    source.iterables = [(field, [str(subject[field]) for subject in subjects])
                        for field in fields]
    source.synchronize = True
    subject_wf = init_anatcl_regional_wf(**regional_options)
    workflow.__postdesc__ = ("The participants' tables were joined into one group table, one "
                             "row per participant.\n")
    outputs = REGIONAL_OUTPUTS + (("pooled_tsv", "pooled_json", "pooled_features") if pooled
                                  else ())
    outputnode = pe.Node(niu.IdentityInterface(fields=list(outputs)), name="outputnode")
    workflow.connect([(source, subject_wf, _pairs(fields, "inputnode."))])
    _join_tables(workflow, subject_wf, outputnode, "regional", "merge_subjects")
    if pooled:
        _join_tables(workflow, subject_wf, outputnode, "pooled", "merge_pooled")
        features = pe.JoinNode(niu.IdentityInterface(fields=["pooled_features"]),
                               joinsource="subjects", joinfield=["pooled_features"],
                               name="join_pooled_features")
        workflow.connect([
            (subject_wf, features, [("outputnode.pooled_features", "pooled_features")]),
            (features, outputnode, [("pooled_features", "pooled_features")]),
        ])
    return workflow


def _cat12_rois_node(workflow, inputnode, atlases, measures):
    options = {"atlases": list(atlases)} if atlases else {}
    if measures:
        options["measures"] = list(measures)
    # reads one small XML: run in the scheduler's process, not a MultiProc worker (a worker
    # round trip cost about 2 s per node on a 2-core machine, for milliseconds of work)
    node = pe.Node(CAT12ROIMeasures(**options), name="cat12_roi_measures",
                   run_without_submitting=True)
    workflow.connect([(inputnode, node, _pairs(("label_roi", "label_rois", "report",
                                                "participant_id")))])
    return node


def _merge_tables(workflow, tables, outputnode):
    """Join the per-source one-row tables of the participant into ``regional_tsv``."""
    light = {"run_without_submitting": True}  # milliseconds of work: see _cat12_rois_node
    collect_tsv = pe.Node(niu.Merge(len(tables)), name="collect_tables", **light)
    collect_json = pe.Node(niu.Merge(len(tables)), name="collect_sidecars", **light)
    merge = pe.Node(MergeRegionalTables(out_name="regional"), name="merge_regional", **light)
    for position, node in enumerate(tables, start=1):
        workflow.connect(node, "out_tsv", collect_tsv, f"in{position}")
        workflow.connect(node, "out_json", collect_json, f"in{position}")
    workflow.connect([
        (collect_tsv, merge, [("out", "in_files")]),
        (collect_json, merge, [("out", "in_jsons")]),
        (merge, outputnode, [("out_tsv", "regional_tsv"), ("out_json", "regional_json")]),
    ])


def _join_tables(workflow, subject_wf, outputnode, kind, name):
    merge = pe.JoinNode(MergeRegionalTables(out_name=kind), joinsource="subjects",
                        joinfield=["in_files", "in_jsons"], name=name)
    workflow.connect([
        (subject_wf, merge, [(f"outputnode.{kind}_tsv", "in_files"),
                             (f"outputnode.{kind}_json", "in_jsons")]),
        (merge, outputnode, [("out_tsv", f"{kind}_tsv"), ("out_json", f"{kind}_json")]),
    ])


def _pairs(fields, prefix=""):
    return [(field, prefix + field) for field in fields]


def _subject_fields(subjects):
    subjects = list(subjects)
    if not subjects:
        raise AnatCLError("init_anatcl_group_regional_wf: no subjects given")
    fields = sorted(subjects[0])
    unknown = sorted(set(fields) - set(INPUT_FIELDS))
    if unknown or not fields:
        raise AnatCLError(f"subject fields {unknown or '(none)'} not understood; use "
                          f"{', '.join(INPUT_FIELDS)}")
    for position, subject in enumerate(subjects, start=1):
        if sorted(subject) != fields:
            raise AnatCLError(f"subject {position} has fields {sorted(subject)}, the first "
                              f"has {fields}; give every subject the same fields")
    return fields


def _atlas_options(atlas, label_table, atlas_name):
    options = {"atlas": str(atlas)} if atlas is not None else {}
    if label_table is not None:
        options["label_table"] = str(label_table)
    if atlas_name is not None:
        options["atlas_name"] = atlas_name
    return options
