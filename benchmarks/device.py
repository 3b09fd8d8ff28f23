"""Shared by the benchmarks that take ``--device``: timing, peak memory, fraction of peak.

- ``--device cpu|cuda|cuda:N`` (default cpu), ``--json-dir DIR`` (machine-readable rows for
  ``device_table.py``), ``--write/--no-write`` (update ``benchmarks/RESULTS.md``; default on,
  as before; ``device-check.sh`` passes ``--no-write``);
- timing that synchronises CUDA before and after;
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per measurement), on a CPU
  the process's max RSS so far (it only grows);
- fraction of peak: achieved FLOP/s (the forward pass's FLOPs, counted by torch on the
  121x128x121 input) over the FLOP/s of a large matmul measured in the same run, on the same
  device, in the same arithmetic.
"""

import argparse
import resource
import time
from functools import lru_cache
from pathlib import Path

import torch

from anatcl_nipype.encoder.runner import resolve_device
from anatcl_nipype.errors import AnatCLError

#: The encoder's input after cropping (one volume, batch 1).
FORWARD_SHAPE = (1, 1, 121, 128, 121)
#: A Python expression: this process's peak resident memory in GiB (Linux ``VmHWM``). For a
#: child process, ``ru_maxrss`` is no use: Linux starts it at the parent's resident memory
#: at fork (a child that allocates nothing reports a 2 GiB parent's 2 GiB).
PEAK_RESIDENT_GIB = ('int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) '
                     '/ 1024 ** 2')


def device_argument(text):
    """``--device``'s type: ``cpu``, ``cuda`` or ``cuda:N``, refused where CUDA is absent.

    >>> device_argument("cpu")
    device(type='cpu')
    """
    if text == "auto":
        raise argparse.ArgumentTypeError("name the device: cpu, cuda or cuda:N")
    try:
        return resolve_device(text)
    except AnatCLError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_options(parser):
    """Add ``--device``, ``--json-dir`` and ``--write/--no-write`` to ``parser``."""
    parser.add_argument("--device", type=device_argument, default=torch.device("cpu"),
                        help="cpu (default), cuda or cuda:N")
    parser.add_argument("--json-dir", type=Path,
                        help="also write the rows as <benchmark>.json into this folder")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update benchmarks/RESULTS.md (default: yes)")
    return parser


def synchronize(device):
    """Wait for the device's queued work (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device):
    """``(seconds, result)`` of ``function()``, CUDA synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def reset_peak_memory(device):
    """Start a new peak-memory measurement (CUDA only; a CPU's max RSS cannot be reset)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device):
    """``(GiB, what)``: CUDA memory allocated at peak since the last reset, or the
    process's max RSS so far on a CPU."""
    if device.type == "cuda":
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 1024 ** 3, "GPU allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, "process max RSS"


@lru_cache(maxsize=None)
def forward_gflop():
    """GFLOP of one AnatCL forward pass on a 121x128x121 volume, counted by torch on the
    meta device (no memory, no compute): about 60."""
    from torch.utils.flop_counter import FlopCounterMode

    from anatcl_nipype.encoder.model import AnatCLNetwork

    with torch.device("meta"):
        network = AnatCLNetwork().eval()
        volume = torch.empty(FORWARD_SHAPE)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(volume)
    return counter.get_total_flops() / 1e9


def arithmetic(precision, device):
    """The arithmetic the forward pass's convolutions run in: ``bf16``, ``fp32`` or, for
    fp32 on a CUDA device where cuDNN may use TensorFloat-32 (torch's default), ``tf32``."""
    if precision == "bf16":
        return "bf16"
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


@lru_cache(maxsize=None)
def matmul_peak_tflops(device, kind):
    """TFLOP/s of a large square matmul on ``device`` in ``kind`` (``fp32``, ``tf32``,
    ``bf16``): the mean of ten products after three warm-ups, measured once per run."""
    size = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if kind == "bf16" else torch.float32
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.rand((size, size), generator=generator, device=device).to(dtype)
    b = torch.rand((size, size), generator=generator, device=device).to(dtype)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
    try:
        with torch.inference_mode():
            for _ in range(3):
                a @ b
            seconds, _ = timed(lambda: [a @ b for _ in range(10)], device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * size ** 3 * 10 / seconds / 1e12


def device_name(device):
    """``NVIDIA H100 80GB HBM3 (compute capability 9.0)``, or the CPU's model."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    from results import cpu_name

    return cpu_name()


def row(method, device, precision, seconds_per_volume, memory, models=1):
    """One measured method as a JSON-ready dict: throughput, fraction of peak, memory.

    ``precision`` is the encoder's (``fp32``, ``bf16``, ``fp32-channels-last``); ``models``
    the number of forward passes per volume (5 for a five-fold ensemble); ``memory`` the
    ``(GiB, what)`` of :func:`peak_memory`.
    """
    kind = arithmetic("bf16" if precision == "bf16" else "fp32", device)
    achieved = models * forward_gflop() / seconds_per_volume / 1e3
    peak = matmul_peak_tflops(device, kind)
    return {"method": method, "device": str(device), "precision": precision,
            "arithmetic": kind, "volumes_per_s": 1 / seconds_per_volume,
            "gflop_per_volume": models * forward_gflop(), "achieved_tflops": achieved,
            "peak_tflops": peak, "fraction_of_peak": achieved / peak,
            "peak_memory_gib": memory[0], "memory": memory[1]}


def write_rows(json_dir, benchmark, device, rows, settings):
    """Write ``<json_dir>/<benchmark>.json`` (nothing without ``json_dir``); return its path."""
    if json_dir is None:
        return None
    from anatcl_nipype.files import write_json_atomic

    path = Path(json_dir) / f"{benchmark}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"benchmark": benchmark, "device": str(device),
                             "device_name": device_name(device), "torch": torch.__version__,
                             "settings": settings, "rows": rows})
    print(f"wrote {path}")
    return path


def device_line(device):
    """A line for RESULTS.md naming the GPU, where the benchmark ran on one ('' on a CPU)."""
    if device.type != "cuda":
        return ""
    return f"Device: {device_name(device)}, CUDA {torch.version.cuda}."
