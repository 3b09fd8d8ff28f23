"""Benchmark: relevance maps (integrated gradients) per participant, full CAT12 grid, CPU.

A synthetic cohort (``make_cat12_cohort``) is encoded with seeded random weights and an
age probe is fitted on the embeddings; then a fresh process runs
``probe_relevance_maps`` on ``--maps`` full-size maps (baseline: their mean) and reports
the seconds per map and its own peak resident memory (``ru_maxrss``). Cost per map:
``steps`` forward and backward passes plus one forward pass.

Prints a Markdown table; ``--write`` also replaces the section ``## Relevance maps`` of
``benchmarks/RESULTS.md``.

Run from the repository root with the package importable (installed, or
``PYTHONPATH=.``): ``python benchmarks/relevance.py [--steps 20] [--threads 2]``
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECTION = "## Relevance maps"


def prepare(folder, n_maps):
    """Cohort maps, random weights and an age probe on their embeddings."""
    import torch

    from anatcl_nipype.data.cohort import make_cat12_cohort
    from anatcl_nipype.encoder import AnatCLEncoder, write_random_checkpoint
    from anatcl_nipype.encoder.runner import load_network
    from anatcl_nipype.prediction import make_probe, save_probe

    cohort = make_cat12_cohort(Path(folder) / "cohort", n_subjects=max(4, n_maps), seed=0)
    weights = write_random_checkpoint(Path(folder) / "weights.pth", seed=0)
    embeddings = AnatCLEncoder(weights=weights, device="cpu").encode(cohort.gm_maps)
    ages = [cohort.ground_truth["subjects"][s]["age"] for s in cohort.subjects]
    sha256 = load_network(weights, torch.device("cpu"))[1]["sha256"]
    model = Path(folder) / "age.skops"
    save_probe(make_probe("regression", alphas=[1.0]).fit(embeddings, ages), model,
               {"task": "regression", "target": "age", "n_train": len(ages),
                "feature_source": {"columns": [f"emb_{i:03d}" for i in range(512)],
                                   "weights": {"sha256": sha256}}})
    return [str(p) for p in cohort.gm_maps[:n_maps]], str(model), str(weights)


def measure(in_files, model, weights, out_dir, steps, threads, batch):
    """Run in the child process: relevance of every map; seconds per map and peak RSS."""
    import torch

    from anatcl_nipype.relevance import probe_relevance_maps

    torch.set_num_threads(threads)
    start = time.perf_counter()
    probe_relevance_maps(in_files, model, out_dir, weights=weights, steps=steps,
                         internal_batch_size=batch)
    seconds = (time.perf_counter() - start) / len(in_files)
    return {"seconds_per_map": seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--internal-batch-size", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child), args.steps, args.threads,
                                 args.internal_batch_size)))
        return
    with tempfile.TemporaryDirectory() as folder:
        in_files, model, weights = prepare(folder, args.maps)
        child = json.dumps([in_files, model, weights, str(Path(folder) / "out")])
        run = subprocess.run([sys.executable, __file__, "--child", child, "--steps",
                              str(args.steps), "--threads", str(args.threads),
                              "--internal-batch-size", str(args.internal_batch_size)],
                             check=True, capture_output=True, text=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    from results import machine_line

    table = "\n".join([
        SECTION, "", machine_line(), "",
        "| method | steps | internal batch | threads | passes per map (fwd/bwd) "
        "| seconds per map | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|",
        f"| integrated gradients, mean-map baseline | {args.steps} | {args.internal_batch_size} "
        f"| {args.threads} | {args.steps + 1}/{args.steps} | {result['seconds_per_map']:.1f} "
        f"| {result['peak_rss_gib']:.2f} |", ""])
    print(table)
    if args.write:
        from results import write_section

        write_section(table)


if __name__ == "__main__":
    main()
