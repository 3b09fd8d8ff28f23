"""Nipype interfaces for AnatCL encoding.

Thin adapters over :class:`anatcl_nipype.encoder.AnatCLEncoder`: they check inputs,
encode, and write the embeddings plus a JSON provenance sidecar. torch is imported only
when a node runs, and the network is loaded once per worker process and reused.

>>> AnatCLEncode().inputs.precision
'fp32'
"""

import logging
import os
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from anatcl_nipype.bids import participant_ids_for, strip_cat12_prefix
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import sha256_file, write_failures_tsv, write_json_atomic
from anatcl_nipype.options import DESCRIPTORS, FOLDS, PRECISIONS

LOGGER = logging.getLogger("nipype.interface")


class EncoderOptionsInputSpec(BaseInterfaceInputSpec):
    """The encoder options every interface that runs the network shares (public base spec).

    >>> sorted(EncoderOptionsInputSpec().copyable_trait_names())[:4]
    ['descriptor', 'device', 'fold', 'folds']
    """

    weights = File(exists=True, desc="AnatCL checkpoint; without it the released weights of "
                                     "descriptor/fold are taken from the cache")
    descriptor = traits.Enum(*DESCRIPTORS, usedefault=True, desc="released weights: descriptor")
    fold = traits.Range(low=FOLDS[0], high=FOLDS[-1], value=0, usedefault=True,
                        desc="released weights: fold")
    precision = traits.Enum(*PRECISIONS, "auto", usedefault=True,
                            desc="fp32 matches the official package; bf16 is a faster opt-in; "
                                 "auto picks the fastest mode that keeps its accuracy here")
    force_precision = traits.Bool(False, usedefault=True,
                                  desc="run an explicit bf16 even where it is slower than fp32")
    folds = traits.Either(None, traits.List(traits.Range(low=FOLDS[0], high=FOLDS[-1]),
                                            minlen=1),
                          default=None, usedefault=True,
                          desc="a fold ensemble of released weights, e.g. [0, 1, 2, 3, 4]: "
                               "each map is read once and encoded by every fold's model")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu, cuda or cuda:N")
    use_gpu = traits.Bool(False, usedefault=True,
                          desc="run on CUDA (MultiProc reserves a GPU slot); falls back to CPU "
                               "with a warning when CUDA is absent")
    use_head = traits.Bool(False, usedefault=True,
                           desc="output the 128-d projection instead of the 512-d representation")
    resample = traits.Bool(False, usedefault=True,
                           desc="resample maps on another MNI grid onto the CAT12 grid")
    num_threads = traits.Int(1, usedefault=True,
                             desc="torch CPU threads (set from the node's n_procs)")


def make_encoder(inputs, batch_size=1):
    """The :class:`~anatcl_nipype.encoder.AnatCLEncoder` (cached per process) of an
    interface's :class:`EncoderOptionsInputSpec` inputs."""
    from anatcl_nipype.encoder import AnatCLEncoder

    return AnatCLEncoder(
        weights=inputs.weights if isdefined(inputs.weights) else None,
        descriptor=inputs.descriptor,
        fold=inputs.fold,
        device=choose_device(inputs.device, inputs.use_gpu),
        precision=inputs.precision,
        force_precision=inputs.force_precision,
        folds=tuple(inputs.folds) if inputs.folds else None,
        batch_size=batch_size,
        use_head=inputs.use_head,
        resample=inputs.resample,
        num_threads=inputs.num_threads,
    )


def choose_device(device, use_gpu):
    """The device a node runs on: ``device``, or CUDA for ``use_gpu`` (CPU with a warning
    where CUDA is absent)."""
    if not use_gpu:
        return device
    import torch

    if torch.cuda.is_available():
        return device if device.startswith("cuda") else "cuda"
    LOGGER.warning("use_gpu=True but CUDA is not available on %s: encoding on the CPU",
                   os.uname().nodename)
    return "cpu"


def _output_stem(in_file):
    name = strip_cat12_prefix(Path(in_file).name)
    for extension in (".nii.gz", ".nii"):
        name = name.removesuffix(extension)
    return name


def _sidecar(encoder, source, participant_id=None, fold_index=None):
    """Provenance of one output; ``source`` is the input's path and sha256 (hashed once)."""
    provenance = (encoder.provenance if fold_index is None
                  else encoder.fold_provenance(fold_index))
    provenance["input"] = dict(source)
    if participant_id:
        provenance["participant_id"] = participant_id
    provenance["shape"] = [encoder.output_dim]
    return provenance


class AnatCLEncodeInputSpec(EncoderOptionsInputSpec):
    # No exists=True: a missing or unreadable map fails in the node with a VolumeError
    # naming it, instead of a TraitError that stops the whole workflow before it runs.
    in_file = File(mandatory=True,
                   desc="CAT12 modulated normalised grey-matter map (mri/mwp1*.nii)")


class AnatCLEncodeOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="embedding, float32 .npy of shape (512,) or (128,) "
                                      "(a fold ensemble: the first fold's)")
    out_json = File(exists=True, desc="provenance sidecar (weights, precision, input hash)")
    out_files = OutputMultiObject(File(exists=True),
                                  desc="one embedding per fold, in the order of folds "
                                       "(one file without folds)")
    out_jsons = OutputMultiObject(File(exists=True), desc="each fold's own provenance sidecar")
    fold_labels = traits.List(desc="the fold of each of out_files (None: a custom checkpoint)")


class AnatCLEncode(SimpleInterface):
    """Embed one CAT12 grey-matter map with AnatCL.

    Wraps :class:`anatcl_nipype.encoder.AnatCLEncoder`. Writes ``<name>_anatcl.npy``
    and ``<name>_anatcl.json`` (``<name>`` is the input name without CAT12's ``mwp1``).

    >>> from nipype import Node
    >>> node = Node(AnatCLEncode(descriptor="local", fold=2), name="anatcl", n_procs=2)
    >>> node.inputs.num_threads, node.interface.inputs.descriptor
    (2, 'local')
    """

    input_spec = AnatCLEncodeInputSpec
    output_spec = AnatCLEncodeOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.encoder.embedding_files import save_embedding

        encoder = make_encoder(self.inputs)
        embeddings = encoder.encode([self.inputs.in_file])
        stem = Path(runtime.cwd) / f"{_output_stem(self.inputs.in_file)}_anatcl"
        if not encoder.ensemble:
            embeddings, suffixes, indices = embeddings[None], [""], [None]
        else:
            suffixes = [f"Fold{label}" for label in encoder.folds]
            indices = list(range(len(encoder.folds)))
        out_files, out_jsons = [], []
        in_file = self.inputs.in_file
        source = {"path": str(Path(in_file).resolve()), "sha256": sha256_file(in_file)}
        for fold_embeddings, suffix, index in zip(embeddings, suffixes, indices):
            out_files.append(str(save_embedding(f"{stem}{suffix}.npy", fold_embeddings[0])))
            sidecar = _sidecar(encoder, source, fold_index=index)
            out_jsons.append(str(write_json_atomic(f"{stem}{suffix}.json", sidecar)))
        self._results.update(out_file=out_files[0], out_json=out_jsons[0], out_files=out_files,
                             out_jsons=out_jsons, fold_labels=list(encoder.folds))
        return runtime


class AnatCLEncodeBatchInputSpec(EncoderOptionsInputSpec):
    # No exists=True: with on_error="skip", a missing map is skipped like any bad map.
    in_files = InputMultiObject(File(), mandatory=True,
                                desc="CAT12 grey-matter maps (mri/mwp1*.nii)")
    participant_ids = traits.List(traits.Str(),
                                  desc="one id per map; default: sub-<label> from each path")
    batch_size = traits.Range(low=1, value=4, usedefault=True, desc="maps per forward pass")
    on_error = traits.Enum("raise", "skip", usedefault=True,
                           desc="'skip' encodes every readable map and lists the others in "
                                "failed_tsv; 'raise' stops the node at the first bad map")


class AnatCLEncodeBatchOutputSpec(TraitedSpec):
    out_tsv = File(exists=True, desc="participant_id, emb_000..emb_511, one row per map")
    out_files = OutputMultiObject(File(exists=True), desc="one .npy per encoded map")
    out_json = File(exists=True, desc="provenance sidecar of the table")
    failed_tsv = File(exists=True, desc="participant_id, path, reason of maps that failed")
    participant_ids = traits.List(traits.Str(), desc="ids of the encoded maps, table order")


class AnatCLEncodeBatch(SimpleInterface):
    """Embed many CAT12 grey-matter maps with one model load: a group table.

    Volumes are read ahead while a batch runs; memory stays flat in the number of maps.
    This is the node group-level workflows and JoinNodes use.

    >>> batch = AnatCLEncodeBatch(batch_size=2, on_error="skip")
    >>> batch.inputs.on_error
    'skip'
    """

    input_spec = AnatCLEncodeBatchInputSpec
    output_spec = AnatCLEncodeBatchOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.encoder.embedding_files import save_embedding, write_embeddings_tsv

        in_files = list(self.inputs.in_files)
        ids = participant_ids_for(in_files, self.inputs.participant_ids
                                  if isdefined(self.inputs.participant_ids) else None)
        if self.inputs.folds:
            raise AnatCLError("AnatCLEncodeBatch writes one table of one model; for a fold "
                              "ensemble use one AnatCLEncodeBatch per fold, or AnatCLEncode "
                              "(folds=...), which reads each map once for every fold")
        encoder = make_encoder(self.inputs, batch_size=self.inputs.batch_size)
        folder = Path(runtime.cwd)
        done_ids, done_files, vectors, failures = [], [], [], []
        for participant_id, result in zip(ids, encoder.iter_encode(in_files)):
            if result.error is not None:
                if self.inputs.on_error == "raise":
                    raise result.error
                LOGGER.warning("AnatCL: %s failed: %s", participant_id, result.error)
                failures.append((participant_id, str(result.source), str(result.error)))
                continue
            path = folder / f"{participant_id}_{_output_stem(result.source)}_anatcl.npy"
            done_files.append(str(save_embedding(path, result.embedding)))
            done_ids.append(participant_id)
            vectors.append(result.embedding)
            LOGGER.info("AnatCL: encoded %s (%d/%d)", participant_id,
                        len(done_ids) + len(failures), len(in_files))
        if not vectors:
            raise AnatCLError("no map could be encoded: " + "; ".join(f[2] for f in failures))
        prefix = "proj" if self.inputs.use_head else "emb"
        self._results.update(
            out_tsv=str(write_embeddings_tsv(folder / "embeddings.tsv", done_ids, vectors, prefix)),
            out_files=done_files,
            participant_ids=done_ids,
            failed_tsv=str(write_failures_tsv(folder / "failed.tsv", failures)),
        )
        sidecar = encoder.provenance
        # realpath, not Path.resolve: a symlink loop among skipped maps must not crash here
        sidecar["inputs"] = {pid: os.path.realpath(f) for pid, f in zip(ids, in_files)}
        sidecar["failed"] = [{"participant_id": f[0], "reason": f[2]} for f in failures]
        self._results["out_json"] = str(write_json_atomic(folder / "embeddings.json", sidecar))
        return runtime

