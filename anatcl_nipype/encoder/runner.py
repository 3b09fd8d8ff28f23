"""Batched AnatCL inference: load the model once, stream volumes through it.

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
import platform
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import anatcl_nipype
from anatcl_nipype.encoder.checkpoint import load_checkpoint
from anatcl_nipype.encoder.model import AnatCLNetwork
from anatcl_nipype.encoder.volumes import PREPROCESSING, check_volume_values, crop_to_anatcl, load_cat12_volume
from anatcl_nipype.encoder.weights import fetch_weights
from anatcl_nipype.errors import AnatCLError

LOGGER = logging.getLogger("anatcl_nipype.encoder")
PRECISIONS = ("fp32", "bf16")
#: Networks already loaded in this process, keyed by file identity, device and precision.
_NETWORK_CACHE = {}


class Encoded(NamedTuple):
    """One input's result: its embedding, or the error that stopped it."""

    source: object
    embedding: np.ndarray | None
    error: AnatCLError | None = None


class AnatCLEncoder:
    """Encode CAT12 grey-matter maps into AnatCL embeddings.

    Parameters
    ----------
    weights : path, optional
        A checkpoint file. Without it the released weights for ``descriptor`` and
        ``fold`` are taken from the cache (downloaded on first use).
    descriptor, fold : str, int
        Which released weights (``global``/``local``, folds 0-4).
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``auto`` picks CUDA when present.
    precision : {"fp32", "bf16"}
        ``fp32`` (default) matches the official package; ``bf16`` runs under
        bfloat16 autocast with channels-last memory, faster where bf16 units are.
    batch_size : int
        Volumes per forward pass.
    use_head : bool
        Return the 128-d L2-normalised projection instead of the 512-d features.
    resample : bool
        Resample maps on another MNI grid onto the CAT12 grid instead of refusing them.
    num_threads : int, optional
        Torch CPU threads (process-wide); leave unset to keep torch's choice.
    readers : int
        Threads reading and cropping the next volumes while a batch runs.
    """

    def __init__(self, weights=None, descriptor="global", fold=0, device="auto",
                 precision="fp32", batch_size=1, use_head=False, resample=False,
                 num_threads=None, readers=2):
        if precision not in PRECISIONS:
            raise AnatCLError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if int(batch_size) < 1:
            raise AnatCLError(f"batch_size must be at least 1, not {batch_size}")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = resolve_device(device)
        self.precision = precision
        self.batch_size = int(batch_size)
        self.use_head = bool(use_head)
        self.resample = bool(resample)
        self.readers = max(1, int(readers))
        if weights is None:
            weights = fetch_weights(descriptor, fold)
            self.weights_identity = {"descriptor": descriptor, "fold": int(fold)}
        else:
            self.weights_identity = {"descriptor": None, "fold": None}
        self.network, identity = load_network(weights, self.device, precision)
        self.weights_identity.update(identity)
        if precision == "bf16" and self.device.type == "cpu":
            warn_if_bf16_is_slow()

    @property
    def output_dim(self):
        """512, or 128 with ``use_head``."""
        return 128 if self.use_head else 512

    @property
    def provenance(self):
        """What produced the embeddings, for JSON sidecars."""
        return {
            "software": {"anatcl_nipype": anatcl_nipype.__version__, "torch": torch.__version__},
            "weights": dict(self.weights_identity),
            "precision": self.precision,
            "device": str(self.device),
            "output": "projection head (128-d, L2-normalised)" if self.use_head
            else "backbone representation (512-d)",
            "preprocessing": dict(PREPROCESSING, resampled_if_off_grid=self.resample),
        }

    def encode(self, inputs):
        """Embed every input (paths or 3D arrays); return an (N, D) float32 array.

        Stops at the first input that cannot be used, with its :class:`AnatCLError`.
        """
        inputs = list(inputs)
        embeddings = np.empty((len(inputs), self.output_dim), dtype=np.float32)
        for index, result in enumerate(self.iter_encode(inputs)):
            if result.error is not None:
                raise result.error
            embeddings[index] = result.embedding
        return embeddings

    def iter_encode(self, inputs):
        """Yield one :class:`Encoded` per input, in order, streaming.

        Inputs that cannot be read or checked yield their error instead of an
        embedding, so one bad map does not stop the others. At most a few batches
        of volumes are held in memory whatever the number of inputs.
        """
        batch = []
        for source, volume, error in self._read_ahead(inputs):
            if error is not None:
                yield from self._run(batch)
                batch = []
                yield Encoded(source, None, error)
                continue
            batch.append((source, volume))
            if len(batch) == self.batch_size:
                yield from self._run(batch)
                batch = []
        yield from self._run(batch)

    def _run(self, batch):
        if not batch:
            return
        volumes = torch.from_numpy(np.stack([volume for _, volume in batch]))[:, None]
        for (source, _), embedding in zip(batch, self.forward(volumes)):
            yield Encoded(source, embedding)

    def forward(self, volumes):
        """Run the network on a (B, 1, X, Y, Z) tensor; return a (B, D) float32 array."""
        volumes = volumes.to(self.device, non_blocking=True)
        if self.precision == "bf16":
            volumes = volumes.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            output = self.network(volumes, use_head=self.use_head)
        return output.float().cpu().numpy()

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


def _outcome(item, future):
    try:
        return item, future.result(), None
    except AnatCLError as error:
        return item, None, error


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

    Returns ``(network, identity)``, identity being the file's path, SHA-256, run id and
    whether it holds seeded random weights. Later calls with the same unchanged file,
    device and precision return the same network object without reading the file again.
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
        if precision == "bf16":
            network.to(memory_format=torch.channels_last_3d)
        identity = {"path": str(path), "sha256": checkpoint.sha256, "run_id": checkpoint.run_id,
                    "random": bool(checkpoint.options.get("random", False))}
        _NETWORK_CACHE[key] = (network, identity)
        LOGGER.info("loaded AnatCL weights %s (sha256 %s) on %s", path, checkpoint.sha256[:12], device)
    return _NETWORK_CACHE[key]


def cpu_has_fast_bf16():
    """Whether bf16 autocast is faster than fp32 on this CPU.

    Measured: bf16 pays on CPUs with AMX, and on AMD Zen 4 (AVX512-BF16); on Intel CPUs
    with AVX512-BF16 but no AMX it is slower than fp32, and on AVX2-only CPUs it is
    emulated, about 100x slower.

    >>> isinstance(cpu_has_fast_bf16(), bool)
    True
    """
    return bool(torch.cpu._is_amx_tile_supported() or (
        torch.cpu._is_avx512_bf16_supported() and _cpu_vendor() == "AuthenticAMD"))


def warn_if_bf16_is_slow():
    """Warn when this CPU has no fast bfloat16 units (bf16 would be slower than fp32)."""
    fast = cpu_has_fast_bf16()
    if not fast:
        LOGGER.warning("precision='bf16' is likely slower than fp32 on this CPU (%s): it has no "
                       "fast bfloat16 units; use precision='fp32'", platform.processor() or "unknown")
    return fast


def _cpu_vendor():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.environ.get("PROCESSOR_IDENTIFIER", "")
