"""Batched AnatCL inference: load the model once, stream volumes through it.

One encoder may hold several models (a fold ensemble): each map is read and cropped once
and run through every fold's model. Every output is checked before it is returned: a
non-finite embedding is that input's :class:`~anatcl_nipype.errors.VolumeError`, never a
result.

>>> import tempfile, os, numpy as np
>>> from anatcl_nipype.encoder.checkpoint import write_random_checkpoint
>>> weights = write_random_checkpoint(os.path.join(tempfile.mkdtemp(), "w.pth"))
>>> encoder = AnatCLEncoder(weights=weights)
>>> volume = np.zeros((121, 145, 121), dtype=np.float32); volume[40:80, 40:100, 40:80] = 0.5
>>> encoder.encode([volume]).shape
(1, 512)
"""

import collections
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import anatcl_nipype
from anatcl_nipype.encoder.checkpoint import load_checkpoint
from anatcl_nipype.encoder.model import AnatCLNetwork
from anatcl_nipype.encoder.precision import CPUFeatures, bf16_speed, choose_precision
from anatcl_nipype.encoder.volumes import (
    PREPROCESSING,
    check_finite_output,
    check_volume_values,
    crop_to_anatcl,
    load_cat12_volume,
)
from anatcl_nipype.encoder.weights import fetch_weights
from anatcl_nipype.errors import AnatCLError, VolumeError
from anatcl_nipype.threads import set_torch_threads

LOGGER = logging.getLogger("anatcl_nipype.encoder")
#: Networks already loaded in this process, keyed by file identity, device and precision.
_NETWORK_CACHE = {}


class Encoded(NamedTuple):
    """One input's result: its embedding ((D,), or (F, D) for a fold ensemble), or the
    error that stopped it."""

    source: object
    embedding: np.ndarray | None
    error: AnatCLError | None = None


class FoldModel(NamedTuple):
    """One model of an encoder: its label (the fold), network and weights identity."""

    label: int
    network: torch.nn.Module
    identity: dict


class AnatCLEncoder:
    """Encode CAT12 grey-matter maps into AnatCL embeddings.

    Parameters
    ----------
    weights : path or list of paths, optional
        A checkpoint file, or several (a fold ensemble, labelled 0, 1, ... in order).
        Without it the released weights for ``descriptor`` and ``fold`` (or ``folds``)
        are taken from the cache (downloaded on first use).
    descriptor, fold : str, int
        Which released weights (``global``/``local``, folds 0-4).
    folds : sequence of int, optional
        A fold ensemble of released weights, e.g. ``(0, 1, 2, 3, 4)``: every map is read
        once and encoded by each fold's model; :meth:`encode` then returns (F, N, D).
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``auto`` picks CUDA when present.
    precision : {"fp32", "bf16", "auto"}
        ``fp32`` (default) matches the official package exactly; ``bf16`` runs under
        bfloat16 autocast with channels-last memory (cosine >= 0.999 to fp32), refused
        where the hardware has no fast bf16 units; ``auto`` picks the fastest mode that
        keeps its accuracy contract here (see :mod:`anatcl_nipype.encoder.precision`).
    force_precision : bool
        Run an explicit ``bf16`` even where it is slower than fp32.
    batch_size : int
        Volumes per forward pass.
    use_head : bool
        Return the 128-d L2-normalised projection instead of the 512-d features.
    resample : bool
        Resample maps on another MNI grid onto the CAT12 grid instead of refusing them.
    num_threads : int, optional
        Torch CPU threads (process-wide); leave unset to keep torch's choice.
    readers : int, optional
        Threads reading and cropping the next volumes. By default one on a CPU (it decodes
        while the forward pass runs in native code) and one per core on CUDA.
    """

    def __init__(self, weights=None, descriptor="global", fold=0, device="auto",
                 precision="fp32", batch_size=1, use_head=False, resample=False,
                 num_threads=None, readers=None, folds=None, force_precision=False):
        if int(batch_size) < 1:
            raise AnatCLError(f"batch_size must be at least 1, not {batch_size}")
        set_torch_threads(num_threads)
        self.device = resolve_device(device)
        self.choice = choose_precision(precision, self.device, force=force_precision)
        if self.choice.requested != self.choice.mode:
            LOGGER.info("precision=%r runs %s: %s", precision, self.choice.mode, self.choice.reason)
        self.batch_size = int(batch_size)
        self.use_head = bool(use_head)
        self.resample = bool(resample)
        self.readers = max(1, int(readers)) if readers else default_readers(self.device)
        self.ensemble = folds is not None or isinstance(weights, (list, tuple))
        self.models = [
            FoldModel(label, *load_identified_network(path, self.device, self.choice.mode, known))
            for label, path, known in _weights_to_load(weights, descriptor, fold, folds)
        ]

    @property
    def precision(self):
        """The arithmetic the network runs in: ``fp32`` or ``bf16``."""
        return "bf16" if self.choice.autocast_bf16 else "fp32"

    @property
    def network(self):
        """The (first) model's network."""
        return self.models[0].network

    @property
    def folds(self):
        """The models' labels, in output order."""
        return tuple(model.label for model in self.models)

    @property
    def weights_identity(self):
        """The (first) model's weights: descriptor, fold, path, SHA-256, run id."""
        return dict(self.models[0].identity)

    @property
    def output_dim(self):
        """512, or 128 with ``use_head``."""
        return 128 if self.use_head else 512

    @property
    def provenance(self):
        """What produced the embeddings, for JSON sidecars.

        For a fold ensemble, ``weights`` gives way to ``folds`` (labels) and
        ``fold_weights`` (one identity per fold); :meth:`fold_provenance` gives each fold's
        own sidecar, shaped like a single model's.
        """
        provenance = self.fold_provenance(0)
        if self.ensemble:
            del provenance["weights"]
            provenance["folds"] = list(self.folds)
            provenance["fold_weights"] = [dict(model.identity) for model in self.models]
        return provenance

    def fold_provenance(self, index):
        """The provenance of the ``index``-th model alone (a single-fold sidecar)."""
        return {
            "software": {"anatcl_nipype": anatcl_nipype.__version__, "torch": torch.__version__},
            "weights": dict(self.models[index].identity),
            "precision": self.precision,
            "precision_choice": self.choice.provenance,
            "device": str(self.device),
            "output": "projection head (128-d, L2-normalised)" if self.use_head
            else "backbone representation (512-d)",
            "preprocessing": dict(PREPROCESSING, resampled_if_off_grid=self.resample),
        }

    def encode(self, inputs):
        """Embed every input (paths or 3D arrays); return an (N, D) float32 array, or
        (F, N, D) for a fold ensemble.

        Stops at the first input that cannot be used, with its :class:`AnatCLError`.
        """
        inputs = list(inputs)
        embeddings = np.empty((len(self.models), len(inputs), self.output_dim), dtype=np.float32)
        for index, result in enumerate(self.iter_encode(inputs)):
            if result.error is not None:
                raise result.error
            embeddings[:, index] = result.embedding
        return embeddings if self.ensemble else embeddings[0]

    def iter_encode(self, inputs):
        """Yield one :class:`Encoded` per input, in order, streaming.

        Inputs that cannot be read or checked, or whose embedding is not finite, yield
        their error instead of an embedding, so one bad map does not stop the others.
        At most a few batches of volumes are held in memory whatever the number of inputs.
        """
        batch = []
        for position, (source, volume, error) in enumerate(self._read_ahead(inputs)):
            if error is not None:
                yield from self._run(batch)
                batch = []
                yield Encoded(source, None, error)
                continue
            batch.append((position, source, volume))
            if len(batch) == self.batch_size:
                yield from self._run(batch)
                batch = []
        yield from self._run(batch)

    def _run(self, batch):
        if not batch:
            return
        volumes = torch.from_numpy(np.stack([volume for _, _, volume in batch]))[:, None]
        outputs = self._forward_all(volumes)  # (F, B, D)
        for row, (position, source, _) in enumerate(batch):
            error = self._non_finite_error(outputs[:, row], source, position)
            if error is not None:
                yield Encoded(source, None, error)
            else:
                yield Encoded(source, outputs[:, row] if self.ensemble else outputs[0, row])

    def forward(self, volumes):
        """Run the network(s) on a (B, 1, X, Y, Z) tensor; return a (B, D) float32 array
        ((F, B, D) for a fold ensemble). Raises :class:`VolumeError` if any output is not
        finite."""
        outputs = self._forward_all(volumes)
        for row in range(outputs.shape[1]):
            error = self._non_finite_error(outputs[:, row], None, row)
            if error is not None:
                raise error
        return outputs if self.ensemble else outputs[0]

    def _forward_all(self, volumes):
        volumes = volumes.to(self.device, non_blocking=True)
        if self.choice.channels_last:
            volumes = volumes.contiguous(memory_format=torch.channels_last_3d)
        outputs = []
        with torch.inference_mode(), true_fp32_convolutions(), torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.choice.autocast_bf16
        ):
            for model in self.models:
                outputs.append(model.network(volumes, use_head=self.use_head).float().cpu().numpy())
        return np.stack(outputs)

    def _non_finite_error(self, embeddings, source, position):
        """The :class:`VolumeError` of the first fold whose embedding of one input is not
        finite (see :func:`~anatcl_nipype.encoder.volumes.check_finite_output`), or None."""
        name = source if isinstance(source, (str, Path)) else f"input {position} (array)"
        try:
            for model, embedding in zip(self.models, embeddings):
                where = (f"fold {model.label}, precision {self.choice.mode}, "
                         f"weights {model.identity['path']}")
                check_finite_output(embedding, f"{name} ({where})")
        except VolumeError as error:
            return error
        return None

    def _read_ahead(self, inputs):
        lookahead = self.batch_size + self.readers
        with ThreadPoolExecutor(self.readers, thread_name_prefix="anatcl-read") as pool:
            pending = collections.deque()
            for item in inputs:
                pending.append((item, pool.submit(self._prepare, item)))
                if len(pending) > lookahead:
                    yield _outcome(*pending.popleft())
            while pending:
                yield _outcome(*pending.popleft())

    def _prepare(self, item):
        if isinstance(item, np.ndarray):
            volume = crop_to_anatcl(np.asarray(item, dtype=np.float32))
            check_volume_values(volume)
            return np.ascontiguousarray(volume)
        return load_cat12_volume(item, resample=self.resample)


def _weights_to_load(weights, descriptor, fold, folds):
    """``(label, path, identity)`` for each model an encoder holds."""
    if folds is not None:
        if weights is not None:
            raise AnatCLError("folds selects released weights; to ensemble your own files pass "
                              "weights=[file, file, ...] without folds")
        folds = tuple(int(f) for f in folds)
        if not folds or len(set(folds)) != len(folds):
            raise AnatCLError(f"folds must be distinct released folds (0-4), not {folds}")
        return [(f, fetch_weights(descriptor, f), {"descriptor": descriptor, "fold": f})
                for f in folds]
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise AnatCLError("weights is an empty list: pass one checkpoint or several")
        return [(index, path, {"descriptor": None, "fold": None})
                for index, path in enumerate(weights)]
    if weights is None:
        return [(int(fold), fetch_weights(descriptor, fold),
                 {"descriptor": descriptor, "fold": int(fold)})]
    return [(int(fold), weights, {"descriptor": None, "fold": None})]


def load_identified_network(weights, device, mode, known):
    """:func:`load_network`, with ``known`` (descriptor, fold) added to the identity."""
    network, identity = load_network(weights, device, mode)
    return network, {**known, **identity}


def default_readers(device):
    """Reader threads for ``device``: one on a CPU, one per core (up to 8) on CUDA."""
    if device.type == "cpu":
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def _outcome(item, future):
    try:
        return item, future.result(), None
    except AnatCLError as error:
        return item, None, error


def true_fp32_convolutions():
    """cuDNN's convolutions in fp32, not TF32 (its default on Ampere and later GPUs rounds
    inputs to 10 bits: about 5e-3 from the CPU's embeddings); the other cuDNN settings are
    kept. fp32 means fp32 on every device; bf16 autocast is the fast mode."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                       deterministic=cudnn.deterministic, allow_tf32=False)


def resolve_device(device="auto"):
    """Turn ``auto``/``cpu``/``cuda[:N]`` into a :class:`torch.device`.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise AnatCLError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise AnatCLError(f"device {device!r} asked for, but CUDA is not available here; "
                          "use device='auto' or 'cpu'")
    return resolved


def load_network(weights, device, precision="fp32"):
    """Load ``weights`` into an eval-mode network on ``device``, once per process.

    ``precision`` is a mode of :data:`~anatcl_nipype.encoder.precision.MODES`; every mode
    but ``fp32`` keeps the network in channels-last memory. Returns ``(network, identity)``,
    identity being the file's path, SHA-256, run id and whether it holds seeded random
    weights. Later calls with the same unchanged file, device and mode return the same
    network object without reading the file again.
    """
    path = Path(weights).resolve()
    try:
        stat = path.stat()
    except OSError:
        raise AnatCLError(f"{weights}: no such weights file") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device), precision)
    if key not in _NETWORK_CACHE:
        checkpoint = load_checkpoint(path)
        network = AnatCLNetwork()
        network.load_state_dict(checkpoint.state_dict)
        network.eval().to(device)
        if precision != "fp32":
            network.to(memory_format=torch.channels_last_3d)
        identity = {"path": str(path), "sha256": checkpoint.sha256, "run_id": checkpoint.run_id,
                    "random": bool(checkpoint.options.get("random", False))}
        _NETWORK_CACHE[key] = (network, identity)
        LOGGER.info("loaded AnatCL weights %s (sha256 %s) on %s", path, checkpoint.sha256[:12],
                    device)
    return _NETWORK_CACHE[key]


def cpu_has_fast_bf16():
    """Whether bf16 autocast is faster than fp32 on this CPU (AMX, or AMD AVX512-BF16).

    >>> isinstance(cpu_has_fast_bf16(), bool)
    True
    """
    return bf16_speed(CPUFeatures.of_this_machine())[0] == "fast"
