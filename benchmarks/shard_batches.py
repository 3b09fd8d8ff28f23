"""Benchmark: why a shard runs its fp32 maps one at a time (``--shard-size``).

``## Shards: batched fp32 forward passes``: N full-size synthetic maps encoded with seeded
random weights in fp32, at batch size 1 (what each per-participant node runs) and at batch
sizes 2 and N. For each batch size: whether every embedding equals the batch-1 one bit for
bit, the largest absolute difference, and the median time per map over alternating rounds
(after one warm-up). The participant level promises the sharded path's files equal the
per-participant path's byte for byte in fp32, so a shard batches only where the bits are
not promised (bf16, auto). Run from the repository root:
``python benchmarks/shard_batches.py [--n 4] [--rounds 3] [--threads 2]``
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import machine_line, write_section

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder, load_cat12_volume, write_random_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp())
    weights = write_random_checkpoint(folder / "weights.pth", seed=7)
    maps = make_cat12_cohort(folder / "cohort", n_subjects=args.n, seed=0).gm_maps
    volumes = [load_cat12_volume(path) for path in maps]
    sizes = sorted({1, 2, args.n})
    encoders = {size: AnatCLEncoder(weights=weights, batch_size=size) for size in sizes}
    embeddings = {size: encoder.encode(volumes) for size, encoder in encoders.items()}
    seconds = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(volumes)
            seconds[size].append((time.perf_counter() - start) / args.n)
    rows = []
    for size in sizes:
        difference = np.abs(embeddings[size] - embeddings[1])
        equal = [bool(np.array_equal(embeddings[size][i], embeddings[1][i]))
                 for i in range(args.n)]
        rows.append(f"| {size} | {sum(equal)} of {args.n} | {difference.max():.2g} | "
                    f"{statistics.median(seconds[size]) * 1000:.0f} ms |")
    section = "\n".join([
        "## Shards: batched fp32 forward passes",
        "",
        f"`benchmarks/shard_batches.py`: {args.n} full-size synthetic maps (volumes in "
        f"memory), seeded random weights, fp32, {args.threads} torch threads; median time per "
        f"map over {args.rounds} alternating rounds after one warm-up. A batch of one runs "
        "other kernels than a batch of several: the last bits differ, so a shard runs fp32 "
        "maps one at a time to keep the per-participant path's bytes (`shard_batch_size`).",
        "",
        f"{machine_line()}, torch {torch.__version__}; the machine was shared "
        "(load average about 9).",
        "",
        "| batch size | embeddings equal to batch 1, bit for bit | max abs difference | "
        "time per map |",
        "|---|---|---|---|",
        *rows,
        "",
    ])
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
