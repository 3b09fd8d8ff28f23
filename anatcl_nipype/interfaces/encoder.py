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
from anatcl_nipype.options import (
    DESCRIPTORS,
    ENCODER_FIELDS,
    FOLDS,
    PRECISIONS,
    EncoderOptions,
)
from anatcl_nipype.outputs import GROUP_FILES

LOGGER = logging.getLogger("nipype.interface")


class EncoderOptionsInputSpec(BaseInterfaceInputSpec):
    """The encoder options every interface that runs the network shares (public base spec):
    one trait per field of :class:`~anatcl_nipype.options.EncoderOptions`, plus the torch
    threads the node was given.

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


def encoder_options_of(inputs):
    """The :class:`~anatcl_nipype.options.EncoderOptions` an interface's
    :class:`EncoderOptionsInputSpec` inputs hold.

    >>> encoder_options_of(AnatCLEncode(fold=3).inputs).fold
    3
    """
    values = {name: getattr(inputs, name) for name in ENCODER_FIELDS}
    if not isdefined(values["weights"]):
        values["weights"] = None
    return EncoderOptions(**values)


def make_encoder(inputs, batch_size=1):
    """The :class:`~anatcl_nipype.encoder.AnatCLEncoder` (cached per process) of an
    interface's :class:`EncoderOptionsInputSpec` inputs."""
    from dataclasses import asdict

    from anatcl_nipype.encoder import AnatCLEncoder

    options = asdict(encoder_options_of(inputs))
    options["device"] = choose_device(options["device"], options.pop("use_gpu"))
    return AnatCLEncoder(batch_size=batch_size, num_threads=inputs.num_threads, **options)


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
        encoder = make_encoder(self.inputs)
        result = next(encoder.iter_encode([self.inputs.in_file]))
        if result.error is not None:
            raise result.error
        out_files, out_jsons = write_map_outputs(encoder, self.inputs.in_file, result.embedding,
                                                 runtime.cwd)
        self._results.update(out_file=out_files[0], out_json=out_jsons[0], out_files=out_files,
                             out_jsons=out_jsons, fold_labels=list(encoder.folds))
        return runtime


def write_map_outputs(encoder, in_file, embedding, folder):
    """Write one map's embedding ((D,), or (F, D) for a fold ensemble) and provenance into
    ``folder`` as ``<name>_anatcl[Fold<k>].npy``/``.json``; return (npy files, sidecars).

    :class:`AnatCLEncode` and :class:`AnatCLEncodeShard` both write through here, so a map
    encoded alone and one encoded in a shard give the same bytes.
    """
    from anatcl_nipype.encoder.embedding_files import save_embedding

    stem = Path(folder) / f"{_output_stem(in_file)}_anatcl"
    if encoder.ensemble:
        rows, suffixes = embedding, [f"Fold{label}" for label in encoder.folds]
        indices = list(range(len(encoder.folds)))
    else:
        rows, suffixes, indices = [embedding], [""], [None]
    source = {"path": str(Path(in_file).resolve()), "sha256": sha256_file(in_file)}
    out_files, out_jsons = [], []
    for row, suffix, index in zip(rows, suffixes, indices):
        out_files.append(str(save_embedding(f"{stem}{suffix}.npy", row)))
        sidecar = _sidecar(encoder, source, fold_index=index)
        out_jsons.append(str(write_json_atomic(f"{stem}{suffix}.json", sidecar)))
    return out_files, out_jsons


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
            out_tsv=str(write_embeddings_tsv(folder / GROUP_FILES["embeddings"], done_ids,
                                             vectors, prefix)),
            out_files=done_files,
            participant_ids=done_ids,
            failed_tsv=str(write_failures_tsv(folder / "failed.tsv", failures)),
        )
        sidecar = encoder.provenance
        # realpath, not Path.resolve: a symlink loop among skipped maps must not crash here
        sidecar["inputs"] = {pid: os.path.realpath(f) for pid, f in zip(ids, in_files)}
        sidecar["failed"] = [{"participant_id": f[0], "reason": f[2]} for f in failures]
        self._results["out_json"] = str(write_json_atomic(folder / GROUP_FILES["embeddings_json"],
                                                          sidecar))
        return runtime


class AnatCLEncodeShardInputSpec(EncoderOptionsInputSpec):
    # No exists=True: a missing map fails its own scan, not the shard (see AnatCLEncode)
    in_files = InputMultiObject(File(), mandatory=True,
                                desc="CAT12 grey-matter maps (mri/mwp1*.nii), one per scan")
    scan_ids = traits.List(traits.Str(), desc="one id per map, for logs and progress")
    batch_size = traits.Range(low=1, value=1, usedefault=True,
                              desc="maps per forward pass; 1 gives the bytes AnatCLEncode "
                                   "gives (a batched fp32 forward differs in the last bits)")


class AnatCLEncodeShardOutputSpec(TraitedSpec):
    out_files = traits.List(traits.List(traits.Str()),
                            desc="per map: its embedding per fold, as AnatCLEncode's "
                                 "out_files (empty where the map failed)")
    out_jsons = traits.List(traits.List(traits.Str()), desc="per map: each fold's sidecar")
    errors = traits.List(traits.Str(), desc="per map: why it failed ('' where encoded)")
    error_types = traits.List(traits.Str(), desc="per map: the error's class ('' if none)")
    scan_ids = traits.List(traits.Str(), desc="the scan_ids input, passed on")


class AnatCLEncodeShard(SimpleInterface):
    """Embed a shard of CAT12 maps with one model load, each map's outputs written as
    :class:`AnatCLEncode` writes them (same names, same bytes), one folder per map.

    A map that cannot be encoded fails alone: its ``errors`` entry says why and
    :class:`SelectShardScan` raises it in that scan's branch; the other maps are written.
    This is the node of the participant level's sharded path (``--shard-size``).

    >>> shard = AnatCLEncodeShard(in_files=["a.nii", "b.nii"], batch_size=2)
    >>> shard.inputs.batch_size, len(shard.inputs.in_files)
    (2, 2)
    """

    input_spec = AnatCLEncodeShardInputSpec
    output_spec = AnatCLEncodeShardOutputSpec

    def _run_interface(self, runtime):
        in_files = list(self.inputs.in_files)
        ids = self.inputs.scan_ids if isdefined(self.inputs.scan_ids) else in_files
        encoder = make_encoder(self.inputs, batch_size=self.inputs.batch_size)
        outputs = {"out_files": [], "out_jsons": [], "errors": [], "error_types": []}
        for position, (in_file, result) in enumerate(zip(in_files,
                                                          encoder.iter_encode(in_files))):
            files, jsons, error = [], [], result.error
            if error is None:
                folder = Path(runtime.cwd) / f"map{position:04d}"  # names may repeat
                folder.mkdir(exist_ok=True)
                files, jsons = write_map_outputs(encoder, in_file, result.embedding, folder)
            else:
                LOGGER.warning("AnatCL: %s failed: %s", ids[position], error)
            outputs["out_files"].append(files)
            outputs["out_jsons"].append(jsons)
            outputs["errors"].append("" if error is None else str(error))
            outputs["error_types"].append("" if error is None else type(error).__name__)
            LOGGER.info("AnatCL: shard map %d/%d (%s) %s", position + 1, len(in_files),
                        ids[position], "encoded" if error is None else "failed")
        self._results.update(outputs, scan_ids=list(ids))
        return runtime


class SelectShardScanInputSpec(BaseInterfaceInputSpec):
    index = traits.Int(mandatory=True, desc="the scan's position in its shard")
    out_files = traits.List(traits.List(traits.Str()), mandatory=True,
                            desc="AnatCLEncodeShard's out_files")
    out_jsons = traits.List(traits.List(traits.Str()), mandatory=True,
                            desc="AnatCLEncodeShard's out_jsons")
    errors = traits.List(traits.Str(), mandatory=True, desc="AnatCLEncodeShard's errors")
    error_types = traits.List(traits.Str(), mandatory=True,
                              desc="AnatCLEncodeShard's error_types")


class SelectShardScan(SimpleInterface):
    """One scan's outputs of an :class:`AnatCLEncodeShard`, under :class:`AnatCLEncode`'s
    output names; raises the scan's own error (same class and message) where its map failed,
    so the failure belongs to that scan's branch alone.

    >>> select = SelectShardScan(index=1, out_files=[["a.npy"], []], out_jsons=[["a.json"], []],
    ...                          errors=["", "the map is empty"], error_types=["", "VolumeError"])
    >>> select.run()
    Traceback (most recent call last):
    anatcl_nipype.errors.VolumeError: the map is empty
    """

    input_spec = SelectShardScanInputSpec
    output_spec = AnatCLEncodeOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype import errors

        index = self.inputs.index
        if self.inputs.errors[index]:
            kind = getattr(errors, self.inputs.error_types[index], None)
            if not (isinstance(kind, type) and issubclass(kind, AnatCLError)):
                kind = AnatCLError
            raise kind(self.inputs.errors[index])
        out_files, out_jsons = self.inputs.out_files[index], self.inputs.out_jsons[index]
        self._results.update(out_file=out_files[0], out_json=out_jsons[0], out_files=out_files,
                             out_jsons=out_jsons)
        return runtime
