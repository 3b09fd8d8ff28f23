"""Which precision the encoder runs in: ``fp32`` (default, exact), ``bf16``, or ``auto``.

``auto`` picks the fastest mode that keeps its accuracy contract on the machine it runs on:

- ``bf16`` (autocast, channels-last; cosine >= 0.999 to fp32) where the hardware has fast
  bfloat16 units: CPUs with AMX, AMD CPUs with AVX512-BF16 (Zen 4 and later), CUDA GPUs
  of compute capability 8.0 and later;
- ``fp32-channels-last`` only where it was measured faster than fp32 and within 1e-5 of it;
- ``fp32`` otherwise.

It decides from the CPU's features; where they do not settle it (an AVX-512 CPU, where
channels-last may pay, or a CPU this module does not know), a one-off micro-benchmark is
run and cached per machine under ``<home>/precision/`` (keyed by CPU model and torch
version). An explicit ``bf16`` on a CPU whose bf16 is emulated or slower than fp32 is
refused unless forced.

>>> avx2_only = CPUFeatures("AMD EPYC", "AuthenticAMD", "x86_64", avx2=True, avx512=False,
...                         avx512_bf16=False, amx=False)
>>> choice = choose_precision("auto", "cpu", cpu=avx2_only)
>>> choice.mode
'fp32'
>>> for part in choice.reason.split("; "):
...     print(part)
bf16 is emulated on this CPU (AMD EPYC, AVX2 only, no bf16 units), ~100x slower than fp32
channels-last fp32 is slower than fp32 on AVX2-only CPUs (measured on AMD Zen 3)
"""

import datetime
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import NamedTuple

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.options import PRECISION_CHOICES

LOGGER = logging.getLogger("anatcl_nipype.encoder")
#: What the network can run in (``auto`` resolves to one of these).
MODES = ("fp32", "fp32-channels-last", "bf16")
#: Accuracy contracts against fp32: channels-last fp32 within this max abs difference...
CHANNELS_LAST_TOLERANCE = 1e-5
#: ... and bf16 embeddings at least this cosine similarity.
BF16_MIN_COSINE = 0.999
#: Edge of the random volume the micro-benchmark runs through the network (voxels).
BENCHMARK_SIZE = 64
#: How much faster than fp32 a mode must measure to be picked (noise margin).
MIN_SPEEDUP = 1.05


class PrecisionRefused(AnatCLError):
    """A precision asked for that would be much slower than fp32 on this hardware."""


class CPUFeatures(NamedTuple):
    """The facts about a CPU that decide how fast bf16 and channels-last run."""

    model: str
    vendor: str
    machine: str
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool

    @classmethod
    def of_this_machine(cls):
        """The CPU this process runs on: from ``/proc/cpuinfo`` where there is one (no torch
        import, so the command line can check a precision before loading torch), else as
        torch's CPU dispatch sees it."""
        model = _cpu_info("model name") or platform.processor() or "unknown CPU"
        vendor = _cpu_info("vendor_id") or os.environ.get("PROCESSOR_IDENTIFIER", "")
        flags = set(_cpu_info("flags").split())
        if flags:
            return cls(model, vendor, platform.machine(), avx2="avx2" in flags,
                       avx512="avx512f" in flags, avx512_bf16="avx512_bf16" in flags,
                       amx="amx_bf16" in flags and "amx_tile" in flags)
        import torch

        return cls(model, vendor, platform.machine(), avx2=torch.cpu._is_avx2_supported(),
                   avx512=torch.cpu._is_avx512_supported(),
                   avx512_bf16=torch.cpu._is_avx512_bf16_supported(),
                   amx=torch.cpu._is_amx_tile_supported())

    def describe(self):
        """``"<model>, <widest vector units>"`` for messages."""
        if self.amx:
            units = "AMX"
        elif self.avx512_bf16:
            units = "AVX512-BF16, no AMX"
        elif self.avx512:
            units = "AVX-512, no bf16 units"
        elif self.avx2:
            units = "AVX2 only, no bf16 units"
        else:
            units = f"{self.machine}, no x86 vector extensions"
        return f"{self.model}, {units}"


class PrecisionChoice(NamedTuple):
    """What the encoder runs in, what was asked for, and why."""

    requested: str
    mode: str
    reason: str

    @property
    def autocast_bf16(self):
        """Whether the forward pass runs under bfloat16 autocast."""
        return self.mode == "bf16"

    @property
    def channels_last(self):
        """Whether the network and its input use the channels-last 3D memory format."""
        return self.mode != "fp32"

    @property
    def provenance(self):
        """For sidecars: ``{"requested", "mode", "reason"}``."""
        return self._asdict()


def choose_precision(requested="fp32", device="cpu", force=False, cpu=None, cuda_capability=None,
                     measure=None):
    """Resolve ``requested`` (``fp32``, ``bf16`` or ``auto``) for ``device`` into a choice.

    ``cpu`` (a :class:`CPUFeatures`), ``cuda_capability`` (a ``(major, minor)`` tuple) and
    ``measure`` (a function ``modes -> {mode: {"seconds", "max_abs_diff", "cosine_min"}}``)
    default to this machine, its GPU and the cached micro-benchmark. Raises
    :class:`PrecisionRefused` for an explicit ``bf16`` where it is much slower than fp32,
    unless ``force``.

    >>> choose_precision("fp32").mode
    'fp32'
    """
    if requested not in PRECISION_CHOICES:
        raise AnatCLError(f"precision must be one of {PRECISION_CHOICES}, not {requested!r}")
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32", "requested: exact parity with the official package")
    device_type = str(device).split(":")[0]
    if device_type == "cuda":
        return _choose_on_cuda(requested, device, force, cuda_capability)
    cpu = cpu or CPUFeatures.of_this_machine()
    measure = measure or (lambda modes: measured_modes(cpu, modes))
    speed, why = bf16_speed(cpu, measure)
    if requested == "bf16":
        if speed != "fast" and not force:
            raise PrecisionRefused(_refusal(speed, why, cpu))
        note = "" if speed == "fast" else f" (forced: {why})"
        return PrecisionChoice("bf16", "bf16", f"requested{note}")
    if speed == "fast":
        return PrecisionChoice("auto", "bf16", why)
    return _choose_fp32_layout(cpu, why, measure)


def bf16_speed(cpu, measure=None):
    """``(speed, why)``: speed is ``fast``, ``slower`` or ``emulated`` relative to fp32.

    Known CPUs are classified by their features (figures measured on the AnatCL forward
    pass); others by ``measure`` (the cached micro-benchmark).

    >>> zen4 = CPUFeatures("AMD EPYC 9654", "AuthenticAMD", "x86_64", True, True, True, False)
    >>> bf16_speed(zen4)[0]
    'fast'
    """
    described = cpu.describe()
    if cpu.amx:
        return "fast", f"AMX bf16 units on this CPU ({described}): bf16 autocast"
    if cpu.avx512_bf16 and cpu.vendor == "AuthenticAMD":
        return "fast", (f"AVX512-BF16 on an AMD CPU ({described}): bf16 autocast, measured "
                        "2.2x faster than fp32 on AMD Zen 4")
    if cpu.avx512_bf16 and cpu.vendor == "GenuineIntel":
        return "slower", (f"this CPU ({described}) has AVX512-BF16 but no AMX: bf16 measured "
                          "0.5x the speed of fp32 on such a Xeon")
    if cpu.machine in ("x86_64", "AMD64", "i686") and not cpu.avx512_bf16:
        if cpu.avx512:
            return "emulated", f"bf16 is emulated on this CPU ({described}), slower than fp32"
        return "emulated", f"bf16 is emulated on this CPU ({described}), ~100x slower than fp32"
    if measure is None:
        return "slower", f"no measurement of bf16 on this CPU ({described}): assumed slower"
    timings = measure(("fp32", "bf16"))
    ratio = timings["bf16"]["seconds"] / timings["fp32"]["seconds"]
    cosine = timings["bf16"]["cosine_min"]
    accurate = cosine >= BF16_MIN_COSINE
    speed = "fast" if ratio * MIN_SPEEDUP <= 1 and accurate else "slower"
    return speed, (f"bf16 measured at {ratio:.2f}x fp32's time on this CPU ({described}), "
                   f"cosine to fp32 {cosine:.5f}" + ("" if accurate else " (too far from fp32)"))


def _refusal(speed, why, cpu):
    if "~100x" in why:
        head = "bf16 on this CPU is emulated, ~100x slower than fp32"
    elif speed == "emulated":
        head = "bf16 on this CPU is emulated, slower than fp32"
    else:
        head = "bf16 on this CPU is slower than fp32"
    detail = f"this CPU: {cpu.describe()}" if speed == "emulated" else why
    return (f"{head}; use precision='auto' or 'fp32' (--precision auto|fp32) ({detail}; "
            "force_precision=True or --force-precision runs it anyway)")


def _choose_fp32_layout(cpu, bf16_why, measure):
    if not cpu.avx512 and cpu.machine in ("x86_64", "AMD64"):
        return PrecisionChoice("auto", "fp32", f"{bf16_why}; channels-last fp32 is slower than "
                                               "fp32 on AVX2-only CPUs (measured on AMD Zen 3)")
    timings = measure(("fp32", "fp32-channels-last"))
    ratio = timings["fp32-channels-last"]["seconds"] / timings["fp32"]["seconds"]
    difference = timings["fp32-channels-last"]["max_abs_diff"]
    measured = f"channels-last fp32 measured at {ratio:.2f}x fp32's time, max abs difference " \
               f"{difference:.1e}"
    if ratio * MIN_SPEEDUP <= 1 and difference <= CHANNELS_LAST_TOLERANCE:
        return PrecisionChoice("auto", "fp32-channels-last", f"{bf16_why}; {measured}")
    return PrecisionChoice("auto", "fp32", f"{bf16_why}; fp32 kept: {measured}")


def _choose_on_cuda(requested, device, force, capability):
    import torch

    if capability is None:
        capability = torch.cuda.get_device_capability(device)
    name = f"CUDA device {device} (compute capability {capability[0]}.{capability[1]})"
    if tuple(capability) >= (8, 0):
        why = f"{name} has bf16 tensor cores: bf16 autocast"
        return PrecisionChoice(requested, "bf16", why if requested == "auto" else "requested")
    why = f"{name} has no bf16 tensor cores, bf16 is slower than fp32 there"
    if requested == "bf16" and not force:
        raise PrecisionRefused(f"bf16 on this GPU is slower than fp32; use precision='auto' or "
                               f"'fp32' ({why}; force_precision=True runs bf16 anyway)")
    if requested == "bf16":
        return PrecisionChoice("bf16", "bf16", f"requested (forced: {why})")
    return PrecisionChoice("auto", "fp32", why)


def measured_modes(cpu, modes, measure=None):
    """Micro-benchmark figures for ``modes`` on this CPU, measured once and cached.

    The cache file is ``<home>/precision/<hash of CPU model and torch version>.json``;
    modes it lacks are measured (with ``measure``, default :func:`measure_modes`) and added.
    """
    import torch

    path = precision_cache_path(cpu.model, torch.__version__)
    cached = _read_cache(path)
    missing = [mode for mode in modes if mode not in cached.get("modes", {})]
    if missing:
        LOGGER.info("measuring %s once on this CPU (%s); cached in %s", ", ".join(missing),
                    cpu.model, path)
        fresh = (measure or measure_modes)(tuple(dict.fromkeys(("fp32", *missing))))
        cached = {"cpu": cpu._asdict(), "torch": torch.__version__,
                  "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "modes": {**cached.get("modes", {}), **fresh}}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, cached)
        except OSError as error:  # a read-only home: measure again next time
            LOGGER.warning("cannot cache precision measurements in %s: %s", path, error)
    return cached["modes"]


def precision_cache_path(cpu_model, torch_version):
    """Where :func:`measured_modes` keeps one machine's figures."""
    from anatcl_nipype.encoder.weights import home_dir

    key = hashlib.sha256(f"{cpu_model}\0torch {torch_version}".encode()).hexdigest()[:16]
    return home_dir() / "precision" / f"{key}.json"


def _read_cache(path):
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) and isinstance(content.get("modes"), dict) else {}


def measure_modes(modes=MODES, size=BENCHMARK_SIZE, repeats=3):
    """Time the seeded random network on one ``size``^3 volume in each mode.

    Returns ``{mode: {"seconds": median, "max_abs_diff": ..., "cosine_min": ...}}``, the
    differences taken against fp32 (which is always measured).

    >>> figures = measure_modes(("fp32", "fp32-channels-last"), size=16, repeats=1)
    >>> figures["fp32-channels-last"]["max_abs_diff"] < 1e-5
    True
    """
    import numpy as np
    import torch

    from anatcl_nipype.encoder.checkpoint import make_random_network

    network = make_random_network(seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    volume = torch.rand((1, 1, size, size, size), generator=generator)
    outputs, figures = {}, {}
    for mode in dict.fromkeys(("fp32", *modes)):
        channels_last = mode != "fp32"
        model = network.to(memory_format=torch.channels_last_3d if channels_last
                           else torch.contiguous_format)
        x = volume.contiguous(memory_format=torch.channels_last_3d) if channels_last else volume

        def forward():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=mode == "bf16"):
                return model(x).float().numpy()

        outputs[mode] = forward()  # warm-up: oneDNN picks and caches its kernels
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            forward()
            seconds.append(time.perf_counter() - start)
        reference, output = outputs["fp32"], outputs[mode]
        cosine = ((reference * output).sum(1) / np.linalg.norm(reference, axis=1)
                  / np.linalg.norm(output, axis=1))
        figures[mode] = {"seconds": statistics.median(seconds),
                         "max_abs_diff": float(np.abs(output - reference).max()),
                         "cosine_min": float(cosine.min())}
    return {mode: figures[mode] for mode in modes}


def _cpu_info(field):
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
