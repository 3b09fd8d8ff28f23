"""Benchmark: reading next to compute, and fold ensembles, each as same-run ratios.

Two sections of ``benchmarks/RESULTS.md``:

- ``## Reading and compute``: N full-size synthetic maps as ``.nii.gz`` (decompression is
  the reading cost), seeded random weights, batch size 1, fp32. Per round, alternating:
  the forward pass alone on volumes already in memory (``encoder.forward``), and the end
  to end ``AnatCLEncoder.encode(paths)`` (read, check, crop, forward) with its default
  reader, with 2 readers, and with reading done inline before each forward (no overlap).
  Target: end to end within 1.10x the forward pass alone.
- ``## Fold ensembles``: the same maps encoded with one fold's weights and with five folds'
  (``AnatCLEncoder(weights=[five files])``, each map read once). Target: at most 5.2x.

Times are medians per volume over rounds (CUDA synchronised around each timing); on a shared
machine they are noisy, so only the ratios (same run, alternating) are compared. Sections are
written unless ``--no-write``; ``--json-dir`` also writes ``streaming.json`` (throughput,
fraction of peak, memory per method: see ``device.py``). Run from the repository root:
``python benchmarks/streaming.py [--n 6] [--rounds 3] [--threads 2] [--device cpu|cuda:N]``
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from device import (
    add_device_options,
    device_line,
    peak_memory,
    reset_peak_memory,
    row,
    timed,
    write_rows,
)
from results import machine_line, write_section

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder, load_cat12_volume, write_random_checkpoint


def compressed_cohort(folder, n):
    """The synthetic cohort's maps, rewritten as ``.nii.gz``."""
    cohort = make_cat12_cohort(folder / "cohort", n_subjects=n, seed=0)
    paths = []
    for path in cohort.gm_maps:
        image = nib.load(path)
        target = Path(str(path) + ".gz")
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header), target)
        paths.append(target)
    return paths


class InlineReading(AnatCLEncoder):
    """The encoder with reading done in the main thread before each forward (no overlap)."""

    def _read_ahead(self, inputs):
        for item in inputs:
            try:
                yield item, self._prepare(item), None
            except Exception as error:  # noqa: BLE001 - the benchmark's maps are all valid
                raise SystemExit(f"{item}: {error}") from None


def alternate(runners, n, rounds, device):
    """Per-volume seconds of each runner, alternating, after one warm-up each; and each
    runner's peak memory (see ``device.peak_memory``)."""
    for runner in runners.values():
        runner()
    times = {name: [] for name in runners}
    memory = {name: (0.0, "") for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            reset_peak_memory(device)
            seconds, _ = timed(runner, device)
            times[name].append(seconds / n)
            memory[name] = max(memory[name], peak_memory(device))
    return times, memory


def reading_runners(weights, paths, device):
    encoder = AnatCLEncoder(weights=weights, device=device)
    volumes = [torch.from_numpy(load_cat12_volume(path))[None, None] for path in paths]
    return {
        "forward pass alone (volumes in memory)": lambda: [encoder.forward(v) for v in volumes],
        "encode(paths), default reader":
            lambda: AnatCLEncoder(weights=weights, device=device).encode(paths),
        "encode(paths), 2 readers":
            lambda: AnatCLEncoder(weights=weights, readers=2, device=device).encode(paths),
        "encode(paths), inline reading":
            lambda: InlineReading(weights=weights, device=device).encode(paths),
    }


#: Forward passes per volume of each fold runner.
FOLD_MODELS = {"1 fold": 1, "5 folds, maps read once": 5}


def fold_runners(weight_files, paths, device):
    return {
        "1 fold": lambda: AnatCLEncoder(weights=weight_files[0], device=device).encode(paths),
        "5 folds, maps read once":
            lambda: AnatCLEncoder(weights=weight_files, device=device).encode(paths),
    }


def rows(times, memory, device, models=None):
    """The JSON rows: one per method, fp32 (see ``device.row``)."""
    return [row(name, device, "fp32", statistics.median(seconds), memory[name],
                (models or {}).get(name, 1)) for name, seconds in times.items()]


def table(times, base_name, ratio_label):
    """Median times, and the median of the per-round ratios (each round against its own
    baseline: robust to a machine whose load changes between rounds)."""
    base = times[base_name]
    rows = []
    for name, seconds in times.items():
        ratios = [t / b for t, b in zip(seconds, base)]
        rows.append(f"| {name} | {statistics.median(seconds) * 1000:.0f} ms | "
                    f"{statistics.median(ratios):.3f} | {', '.join(f'{r:.2f}' for r in ratios)} |")
    return [f"| method | time per volume | {ratio_label} (median of rounds) | per-round ratios |",
            "|---|---|---|---|", *rows]


def reading_section(times, n, rounds, threads, device):
    return "\n".join([
        "## Reading and compute", "",
        f"`benchmarks/streaming.py`: {n} full-size synthetic maps as `.nii.gz`, seeded random "
        f"weights, fp32, batch size 1, on {device}, {threads} torch threads; median over "
        f"{rounds} alternating rounds after one warm-up. Ratios to the forward pass alone in the "
        "same round; the machine is shared, so absolute times are noisy.", "",
        f"{machine_line()}, torch {torch.__version__}. {device_line(device)}".rstrip(), "",
        *table(times, "forward pass alone (volumes in memory)", "time / forward alone"), "",
    ])


def folds_section(times, n, rounds, threads, device):
    return "\n".join([
        "## Fold ensembles", "",
        f"`benchmarks/streaming.py`: {n} full-size synthetic maps as `.nii.gz`, five seeded "
        f"random checkpoints, fp32, batch size 1, on {device}, {threads} torch threads; median "
        f"over {rounds} alternating rounds after one warm-up (models loaded once per process). "
        "Target: five folds at most 5.2x one fold.", "",
        f"{machine_line()}, torch {torch.__version__}. {device_line(device)}".rstrip(), "",
        *table(times, "1 fold", "time / one fold"), "",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("reading", "folds"))
    args = add_device_options(parser).parse_args()
    device = args.device
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="anatcl-streaming-"))
    paths = compressed_cohort(folder, args.n)
    weight_files = [write_random_checkpoint(folder / f"fold{fold}.pth", seed=fold)
                    for fold in range(5)]
    sections, json_rows = [], []
    if args.only != "folds":
        times, memory = alternate(reading_runners(weight_files[0], paths, device), args.n,
                                  args.rounds, device)
        sections.append(reading_section(times, args.n, args.rounds, args.threads, device))
        json_rows += rows(times, memory, device)
    if args.only != "reading":
        times, memory = alternate(fold_runners(weight_files, paths, device), args.n,
                                  args.rounds, device)
        sections.append(folds_section(times, args.n, args.rounds, args.threads, device))
        json_rows += rows(times, memory, device, FOLD_MODELS)
    for section in sections:
        print(section)
    write_rows(args.json_dir, "streaming", device, json_rows,
               dict(n=args.n, rounds=args.rounds, threads=args.threads, only=args.only))
    for section in sections if args.write else ():
        write_section(section)


if __name__ == "__main__":
    main()
