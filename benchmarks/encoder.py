"""Benchmark: AnatCL encoding, the official package's loop vs AnatCLEncoder, same run.

N full-size CAT12-grid maps (synthetic cohort, uncompressed ``.nii`` as CAT12 writes them)
and one seeded random checkpoint in the official format. Per round, alternating:

- official: ``anatcl.AnatCL(pretrained=False)`` with the checkpoint loaded; for each file,
  nibabel load, crop axis 1 to 8..135, ``torch.no_grad()`` forward, batch 1 (the obvious loop);
- ours fp32: ``AnatCLEncoder(weights, precision="fp32", batch_size=B).encode(paths)``, B
  from ``--batch-size`` (default 1);
- ours auto: the same with ``precision="auto"`` (what it picked, and why, is printed);
- ours bf16: the same with ``precision="bf16"`` (autocast + channels_last_3d), only where the
  device has fast bf16 units (elsewhere it is refused: emulated or slower than fp32).

Times are per volume (median over rounds; CUDA synchronised around each timing); the
embeddings are compared (max abs difference for fp32, cosine similarity for bf16). Peak
memory is the peak resident memory (VmHWM) of a fresh process that imports the package,
loads the weights and encodes the N maps at batch size 1, and on CUDA each method's peak
GPU memory.
Results go to the ``## Encoder`` section of ``benchmarks/RESULTS.md`` (not with
``--no-write``); ``--json-dir`` also writes ``encoder.json`` (throughput, fraction of peak,
memory per method: see ``device.py``).

Run from the repository root:
``python benchmarks/encoder.py [--n 8] [--rounds 3] [--device cpu|cuda|cuda:N]``
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from device import (
    PEAK_RESIDENT_GIB,
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
from anatcl_nipype.encoder import AnatCLEncoder, write_random_checkpoint
from anatcl_nipype.encoder.precision import choose_precision

PEAK_RSS_SCRIPT = """
import json, sys
from anatcl_nipype.encoder import AnatCLEncoder
paths = sys.argv[2:]
AnatCLEncoder(weights=sys.argv[1], batch_size=1, num_threads={threads},
              device="{device}").encode(paths)
print(json.dumps({peak}))
"""


def official_loop(weights, paths, device):
    """The official package, used the obvious way."""
    from anatcl import AnatCL

    model = AnatCL(pretrained=False)
    model.backbone.load_state_dict(torch.load(weights, map_location="cpu",
                                              weights_only=False)["model"])
    model.eval().to(device)
    outputs = []
    with torch.no_grad():
        for path in paths:
            volume = np.asarray(nib.load(path).dataobj, dtype=np.float32)[:, 8:136, :]
            batch = torch.from_numpy(np.ascontiguousarray(volume))[None, None].to(device)
            outputs.append(model(batch)[0].cpu().numpy())
    return np.stack(outputs)


def peak_rss_gib(weights, paths, threads, device):
    script = PEAK_RSS_SCRIPT.format(threads=threads, device=device, peak=PEAK_RESIDENT_GIB)
    output = subprocess.run([sys.executable, "-c", script, str(weights), *map(str, paths)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def precisions(device):
    """Each method's precision on ``device`` (bf16 only where the device has fast bf16)."""
    auto = choose_precision("auto", device).mode
    methods = {"official loop (fp32)": "fp32", "AnatCLEncoder fp32": "fp32",
               "AnatCLEncoder auto": auto}
    if auto == "bf16":
        methods["AnatCLEncoder bf16"] = "bf16"
    return methods


def run(n, rounds, threads, device, batch_size):
    torch.set_num_threads(threads)
    folder = Path(tempfile.mkdtemp(prefix="anatcl-bench-"))
    cohort = make_cat12_cohort(folder / "cohort", n_subjects=n, seed=0)
    weights = write_random_checkpoint(folder / "weights.pth", seed=0)
    paths = cohort.gm_maps

    def ours(precision):
        return lambda: AnatCLEncoder(weights=weights, precision=precision, device=device,
                                     batch_size=batch_size).encode(paths)

    runners = {"official loop (fp32)": lambda: official_loop(weights, paths, device)}
    runners.update({name: ours(name.split()[-1]) for name in list(precisions(device))[1:]})
    for runner in runners.values():  # warm-up: page cache, lazy imports, oneDNN kernels
        runner()
    times = {name: [] for name in runners}
    memory = {name: (0.0, "") for name in runners}
    outputs = {}
    for _ in range(rounds):
        for name, runner in runners.items():
            reset_peak_memory(device)
            seconds, outputs[name] = timed(runner, device)
            times[name].append(seconds / n)
            memory[name] = max(memory[name], peak_memory(device))
    return times, outputs, memory, peak_rss_gib(weights, paths, threads, device)


def cosine_min(a, b):
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def rows(times, memory, device):
    """The JSON rows: one per method (see ``device.row``)."""
    methods = precisions(device)
    return [row(name, device, methods[name], float(np.median(t)), memory[name])
            for name, t in times.items()]


def markdown(times, outputs, peak_gib, n, rounds, threads, device, batch_size):
    official = outputs["official loop (fp32)"]
    base = float(np.median(times["official loop (fp32)"]))
    rows = [f"| {name} | {np.median(t) * 1000:.0f} ms | {np.median(t) / base:.2f} | "
            f"{1 / np.median(t):.2f} |" for name, t in times.items()]
    auto = choose_precision("auto", device)
    accuracy = [f"fp32 max abs difference to the official loop "
                f"{np.abs(outputs['AnatCLEncoder fp32'] - official).max():.1e}",
                f"auto ({auto.mode}) max abs difference "
                f"{np.abs(outputs['AnatCLEncoder auto'] - official).max():.1e}, cosine min "
                f"{cosine_min(outputs['AnatCLEncoder auto'], official):.6f}"]
    if "AnatCLEncoder bf16" in outputs:
        accuracy.append(f"bf16 cosine similarity to fp32 min "
                        f"{cosine_min(outputs['AnatCLEncoder bf16'], official):.6f}")
    else:
        accuracy.append(f"bf16 not run: refused on this {device.type} (no fast bf16 units)")
    return "\n".join([
        "## Encoder", "",
        f"`benchmarks/encoder.py`: {n} full-size CAT12-grid maps (121x145x121, uncompressed "
        f"`.nii`), seeded random weights in the official format, on {device}, batch size "
        f"{batch_size} (the official loop 1), {threads} torch threads; median over {rounds} "
        "alternating rounds after one warm-up.", "",
        f"{machine_line()}, torch {torch.__version__}. {device_line(device)}".rstrip(), "",
        "| method | time per volume | time / official | volumes per second |",
        "|---|---|---|---|",
        *rows, "",
        f"precision='auto' picked {auto.mode}: {auto.reason}.", "",
        f"Parity: {'; '.join(accuracy)}.", "",
        f"Peak resident memory (VmHWM) of a fresh process encoding the {n} maps at batch size "
        f"1: {peak_gib:.2f} GiB.", "",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1, help="AnatCLEncoder's batch size")
    args = add_device_options(parser).parse_args()
    times, outputs, memory, peak = run(args.n, args.rounds, args.threads, args.device,
                                       args.batch_size)
    section = markdown(times, outputs, peak, args.n, args.rounds, args.threads, args.device,
                       args.batch_size)
    print(section)
    write_rows(args.json_dir, "encoder", args.device, rows(times, memory, args.device),
               dict(n=args.n, rounds=args.rounds, threads=args.threads,
                    batch_size=args.batch_size))
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
