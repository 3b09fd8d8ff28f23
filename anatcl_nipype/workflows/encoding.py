"""Workflows that embed CAT12 grey-matter maps with AnatCL.

Building a workflow imports neither torch nor the model: graphs build and draw fast on
machines without a GPU.

>>> wf = init_anatcl_encoding_wf(descriptor="local", fold=1)
>>> sorted(wf.get_node("outputnode").outputs.copyable_trait_names())
['embedding', 'embedding_json', 'embeddings', 'embeddings_json']
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.citations import cite
from anatcl_nipype.interfaces.encoder import AnatCLEncode, AnatCLEncodeBatch, AnatCLEncodeShard
from anatcl_nipype.options import with_options

#: Peak memory of one encoding process at batch size 1 (model + activations), measured
#: in benchmarks/encoder.py; the batch node adds about this per extra volume in a batch.
ENCODE_MEM_GB = 1.5
BATCH_VOLUME_MEM_GB = 0.6

def encoding_description(encoder):
    """The methods paragraph (``__desc__``) of a workflow that encodes with ``encoder``
    (:class:`~anatcl_nipype.options.EncoderOptions`)."""
    folds = encoder.folds
    fold_text = f"fold {encoder.fold}" if not folds else "folds " + ", ".join(map(str, folds))
    which = ("a user-supplied AnatCL checkpoint" if encoder.weights is not None else
             f"the released AnatCL weights (descriptor '{encoder.descriptor}', {fold_text})")
    return f"""\
Each participant's modulated, normalised grey-matter map from CAT12 (1.5 mm MNI grid,
121x145x121 voxels) was centre-cropped to 121x128x121 voxels and embedded with AnatCL
{cite("barbano2026anatcl")}, a 3D ResNet-18 pretrained on about 4,000 healthy-control scans
of OpenBHB with a contrastive loss whose positives are weighted by regional anatomical
similarity (cortical thickness, grey-matter volume and surface area). The 512-dimensional
output of the network's global average pooling, computed with {which} in {encoder.precision}
precision by anatcl-nipype, was used as the participant's embedding.
"""


def init_anatcl_encoding_wf(*, encoder=None, omp_nthreads=1, name="anatcl_encoding_wf",
                            **options):
    """Embed one participant's CAT12 ``mwp1`` map with AnatCL.

    ``encoder``: :class:`~anatcl_nipype.options.EncoderOptions` (weights, descriptor,
    fold, folds, precision, device, ...), or its fields as keywords (``options``; they
    override ``encoder``'s). With ``folds`` (released weights, e.g. ``(0, 1, 2, 3, 4)``)
    the map is read once and encoded by every fold's model; ``embedding`` is then the first
    fold's.

    Inputs
    ------
    gm_modulated
        CAT12's modulated normalised grey-matter map (CAT12Segment's ``gm_modulated_image``).

    Outputs
    -------
    embedding
        ``.npy`` float32 vector of 512 values (128 with ``use_head``).
    embedding_json
        Provenance sidecar: weights identity and hash, precision, input hash.
    embeddings, embeddings_json
        One embedding and sidecar per fold, in the order of ``folds`` (one each without).

    >>> wf = init_anatcl_encoding_wf(folds=(0, 3))
    >>> wf.get_node("anatcl_encode").inputs.folds
    [0, 3]

    Iterate the inputnode (or use it inside a per-subject workflow) for many subjects:
    under MultiProc each worker process loads the network once and reuses it.
    """
    encoder = with_options(encoder, **options)
    workflow = Workflow(name=name)
    workflow.__desc__ = encoding_description(encoder)
    inputnode = pe.Node(niu.IdentityInterface(fields=["gm_modulated"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["embedding", "embedding_json", "embeddings", "embeddings_json"]),
        name="outputnode")
    encode = pe.Node(AnatCLEncode(**encoder.node_inputs()), name="anatcl_encode",
                     n_procs=omp_nthreads, mem_gb=ENCODE_MEM_GB)
    workflow.connect([
        (inputnode, encode, [("gm_modulated", "in_file")]),
        (encode, outputnode, [("out_file", "embedding"), ("out_json", "embedding_json"),
                              ("out_files", "embeddings"), ("out_jsons", "embeddings_json")]),
    ])
    return workflow


def init_shard_encode_node(in_files, scan_ids, *, encoder=None, omp_nthreads=1, batch_size=1,
                           name="anatcl_encode_shard", **options):
    """One node encoding a shard of maps (``in_files``, one per scan of ``scan_ids``) with
    one model load (:class:`AnatCLEncodeShard`); ``batch_size`` maps per forward pass;
    ``encoder``/``options`` as for :func:`init_anatcl_encoding_wf`.

    >>> node = init_shard_encode_node(["/d/a.nii", "/d/b.nii"], ["sub-a", "sub-b"],
    ...                               folds=(0, 3), batch_size=2)
    >>> node.inputs.scan_ids, node.inputs.folds, node.mem_gb
    (['sub-a', 'sub-b'], [0, 3], 2.1)
    """
    encoder = with_options(encoder, **options)
    return pe.Node(
        AnatCLEncodeShard(in_files=list(in_files), scan_ids=list(scan_ids),
                          batch_size=batch_size, **encoder.node_inputs()),
        name=name, n_procs=omp_nthreads,
        mem_gb=ENCODE_MEM_GB + BATCH_VOLUME_MEM_GB * (batch_size - 1),
    )


def init_anatcl_group_encoding_wf(*, encoder=None, batch_size=4, on_error="skip",
                                  omp_nthreads=1, name="anatcl_group_encoding_wf", **options):
    """Embed a list of CAT12 ``mwp1`` maps with one model load into a group table;
    ``encoder``/``options`` as for :func:`init_anatcl_encoding_wf` (no ``folds``).

    Inputs: ``gm_modulated`` (list of maps), ``participant_ids`` (optional, one per map).
    Outputs: ``embeddings_tsv`` (participant_id, emb_000..emb_511), ``embeddings``
    (one ``.npy`` per map), ``embeddings_json`` (provenance), ``failed_tsv`` (maps that
    could not be encoded, with the reason; empty when all worked) and ``participant_ids``.

    >>> wf = init_anatcl_group_encoding_wf(batch_size=2)
    >>> wf.get_node("anatcl_encode_batch").interface.inputs.batch_size
    2
    """
    encoder = with_options(encoder, **options)
    workflow = Workflow(name=name)
    workflow.__desc__ = encoding_description(encoder)
    inputnode = pe.Node(niu.IdentityInterface(fields=["gm_modulated", "participant_ids"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "embeddings_tsv", "embeddings", "embeddings_json", "failed_tsv", "participant_ids"]),
        name="outputnode")
    encode = pe.Node(
        AnatCLEncodeBatch(batch_size=batch_size, on_error=on_error, **encoder.node_inputs()),
        name="anatcl_encode_batch", n_procs=omp_nthreads,
        mem_gb=ENCODE_MEM_GB + BATCH_VOLUME_MEM_GB * (batch_size - 1),
    )
    workflow.connect([
        (inputnode, encode, [("gm_modulated", "in_files"), ("participant_ids", "participant_ids")]),
        (encode, outputnode, [("out_tsv", "embeddings_tsv"), ("out_files", "embeddings"),
                              ("out_json", "embeddings_json"), ("failed_tsv", "failed_tsv"),
                              ("participant_ids", "participant_ids")]),
    ])
    return workflow
