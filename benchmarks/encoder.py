"""Benchmark: AnatCL encoding, the official package's loop vs AnatCLEncoder, same run.

N full-size CAT12-grid maps (synthetic cohort, uncompressed ``.nii`` as CAT12 writes them)
and one seeded random checkpoint in the official format. Per round, alternating:

- official: ``anatcl.AnatCL(pretrained=False)`` with the checkpoint loaded; for each file,
  nibabel load, crop axis 1 to 8..135, ``torch.no_grad()`` forward, batch 1 (the obvious loop);
- ours fp32: ``AnatCLEncoder(weights, precision="fp32", batch_size=1).encode(paths)``;
- ours auto: the same with ``precision="auto"`` (what it picked, and why, is printed);
- ours bf16: the same with ``precision="bf16"`` (autocast + channels_last_3d), only where the
  CPU has fast bf16 units (elsewhere it is refused: emulated or slower than fp32).

Times are per volume (median over rounds); the embeddings are compared (max abs difference
for fp32, cosine similarity for bf16). Peak memory is the max RSS of a fresh process that
imports the package, loads the weights and encodes the N maps at batch size 1.
Results go to the ``## Encoder`` section of ``benchmarks/RESULTS.md``.

Run from the repository root: ``python benchmarks/encoder.py [--n 8] [--rounds 3]``
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder, write_random_checkpoint
from anatcl_nipype.encoder.precision import choose_precision
from anatcl_nipype.encoder.runner import cpu_has_fast_bf16
from results import machine_line, write_section

PEAK_RSS_SCRIPT = """
import json, resource, sys
from anatcl_nipype.encoder import AnatCLEncoder
paths = sys.argv[2:]
AnatCLEncoder(weights=sys.argv[1], batch_size=1, num_threads={threads}).encode(paths)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2))
"""


def official_loop(weights, paths):
    """The official package, used the obvious way."""
    from anatcl import AnatCL

    model = AnatCL(pretrained=False)
    model.backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=False)["model"])
    model.eval()
    outputs = []
    with torch.no_grad():
        for path in paths:
            volume = np.asarray(nib.load(path).dataobj, dtype=np.float32)[:, 8:136, :]
            outputs.append(model(torch.from_numpy(np.ascontiguousarray(volume))[None, None])[0].numpy())
    return np.stack(outputs)


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def peak_rss_gib(weights, paths, threads):
    script = PEAK_RSS_SCRIPT.format(threads=threads)
    output = subprocess.run([sys.executable, "-c", script, str(weights), *map(str, paths)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(n, rounds, threads):
    torch.set_num_threads(threads)
    folder = Path(tempfile.mkdtemp(prefix="anatcl-bench-"))
    cohort = make_cat12_cohort(folder / "cohort", n_subjects=n, seed=0)
    weights = write_random_checkpoint(folder / "weights.pth", seed=0)
    paths = cohort.gm_maps
    runners = {
        "official loop (fp32)": lambda: official_loop(weights, paths),
        "AnatCLEncoder fp32": lambda: AnatCLEncoder(weights=weights).encode(paths),
        "AnatCLEncoder auto": lambda: AnatCLEncoder(weights=weights, precision="auto").encode(paths),
    }
    if cpu_has_fast_bf16():
        runners["AnatCLEncoder bf16"] = lambda: AnatCLEncoder(weights=weights,
                                                              precision="bf16").encode(paths)
    for runner in runners.values():  # warm-up: page cache, lazy imports, oneDNN kernels
        runner()
    times = {name: [] for name in runners}
    outputs = {}
    for _ in range(rounds):
        for name, runner in runners.items():
            seconds, outputs[name] = timed(runner)
            times[name].append(seconds / n)
    return times, outputs, peak_rss_gib(weights, paths, threads)


def cosine_min(a, b):
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def markdown(times, outputs, peak_gib, n, rounds, threads):
    official = outputs["official loop (fp32)"]
    base = float(np.median(times["official loop (fp32)"]))
    rows = [f"| {name} | {np.median(t) * 1000:.0f} ms | {np.median(t) / base:.2f} | "
            f"{1 / np.median(t):.2f} |" for name, t in times.items()]
    auto = choose_precision("auto", "cpu")
    accuracy = [f"fp32 max abs difference to the official loop "
                f"{np.abs(outputs['AnatCLEncoder fp32'] - official).max():.1e}",
                f"auto ({auto.mode}) max abs difference "
                f"{np.abs(outputs['AnatCLEncoder auto'] - official).max():.1e}, cosine min "
                f"{cosine_min(outputs['AnatCLEncoder auto'], official):.6f}"]
    if "AnatCLEncoder bf16" in outputs:
        accuracy.append(f"bf16 cosine similarity to fp32 min "
                        f"{cosine_min(outputs['AnatCLEncoder bf16'], official):.6f}")
    else:
        accuracy.append("bf16 not run: refused on this CPU (no fast bf16 units)")
    return "\n".join([
        "## Encoder", "",
        f"`benchmarks/encoder.py`: {n} full-size CAT12-grid maps (121x145x121, uncompressed "
        f"`.nii`), seeded random weights in the official format, batch size 1, {threads} torch "
        f"threads; median over {rounds} alternating rounds after one warm-up.", "",
        f"{machine_line()}, torch {torch.__version__}.", "",
        "| method | time per volume | time / official | volumes per second |",
        "|---|---|---|---|",
        *rows, "",
        f"precision='auto' picked {auto.mode}: {auto.reason}.", "",
        f"Parity: {'; '.join(accuracy)}.", "",
        f"Peak memory (max RSS) of a process encoding the {n} maps at batch size 1: "
        f"{peak_gib:.2f} GiB.", "",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    times, outputs, peak = run(args.n, args.rounds, args.threads)
    section = markdown(times, outputs, peak, args.n, args.rounds, args.threads)
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
