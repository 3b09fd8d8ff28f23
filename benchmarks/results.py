"""Shared by the benchmarks: the machine's description and ``RESULTS.md`` sections.

Each benchmark owns one ``## `` section of ``benchmarks/RESULTS.md`` and replaces it
(or appends it) when it runs, leaving the others alone.
"""

import os
import platform
import re
import statistics
import time
from pathlib import Path

from anatcl_nipype.files import atomic_write

RESULTS = Path(__file__).parent / "RESULTS.md"


def cpu_name():
    """The CPU model, as /proc/cpuinfo names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cores():
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_features():
    """The CPU features that decide fp32/bf16 speed (AVX-512, AVX512-BF16, AMX)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(flag for flag in wanted if flag in flags) or "none of avx2/avx512/amx"


def machine_line():
    """``Machine: <CPU> (<features>), <n> cores; Python x.y.z``."""
    return (f"Machine: {cpu_name()} ({cpu_features()}), {cores()} cores; "
            f"Python {platform.python_version()}")


def median_seconds(function, repeats):
    """Median wall time of ``function()`` over ``repeats`` runs, after one warm-up run."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def replace_section(text, section):
    """``text`` with the section whose heading is ``section``'s first line replaced."""
    heading = section.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n")
                                                              else "\n\n")
    return text + separator + section.rstrip("\n") + "\n"


def write_section(section):
    """Put ``section`` (Markdown starting with ``## <title>``) into RESULTS.md, atomically."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    with atomic_write(RESULTS) as tmp:
        tmp.write_text(replace_section(existing, section))
    print(f"updated {RESULTS}")
