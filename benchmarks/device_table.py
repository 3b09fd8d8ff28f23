"""One table from the benchmarks' JSON rows (``--json-dir``): what ``device-check.sh`` prints.

Imports nothing heavy (no torch), so it runs in a blink::

    python benchmarks/device_table.py <folder of encoder.json, streaming.json, ...>
"""

import argparse
import json
import sys
from pathlib import Path

#: The benchmarks in the order device-check.sh runs them; others follow by name.
ORDER = ("encoder", "streaming", "pipeline")
HEADER = ("| benchmark | method | device | precision | volumes/s | fraction of peak | "
          "peak matmul | peak memory |")


def read_results(folder):
    """The JSON files of ``folder``, in :data:`ORDER`, then by name."""
    paths = sorted(Path(folder).glob("*.json"),
                   key=lambda path: (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER),
                                     path.stem))
    return [json.loads(path.read_text()) for path in paths]


def memory_cell(row):
    """``1.20 GiB (process max RSS)``, or ``n/a (why)`` where it was not measured."""
    if row["peak_memory_gib"] is None:
        return f"n/a ({row['memory']})"
    return f"{row['peak_memory_gib']:.2f} GiB ({row['memory']})"


def table_row(benchmark, row):
    """One Markdown row.

    >>> print(table_row("encoder", {"method": "ours", "device": "cuda", "precision": "bf16",
    ...     "arithmetic": "bf16", "volumes_per_s": 512.3, "fraction_of_peak": 0.0391,
    ...     "peak_tflops": 786.0, "peak_memory_gib": 1.5, "memory": "GPU allocated"}))
    | encoder | ours | cuda | bf16 | 512 | 3.9% | 786 TFLOP/s bf16 | 1.50 GiB (GPU allocated) |
    """
    return (f"| {benchmark} | {row['method']} | {row['device']} | {row['precision']} | "
            f"{row['volumes_per_s']:.3g} | {row['fraction_of_peak']:.1%} | "
            f"{row['peak_tflops']:.3g} TFLOP/s {row['arithmetic']} | {memory_cell(row)} |")


def table(results):
    """The Markdown table of every row of every result, with a line per device above it."""
    devices = sorted({f"{result['device']}: {result['device_name']}, torch {result['torch']}"
                      for result in results})
    lines = [f"Device {device}." for device in devices]
    lines += ["", HEADER, "|---|---|---|---|---|---|---|---|"]
    lines += [table_row(result["benchmark"], row) for result in results for row in result["rows"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the benchmarks wrote their JSON")
    args = parser.parse_args(argv)
    results = read_results(args.folder)
    if not results:
        sys.exit(f"{args.folder}: no benchmark results (*.json) here; run the benchmarks with "
                 "--json-dir pointing at it first")
    print(table(results))


if __name__ == "__main__":
    main()
