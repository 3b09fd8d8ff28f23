"""Benchmark: Nipype overhead of AnatCL encoding, per-subject workflow vs batch vs bare encoder.

N full-size synthetic CAT12 maps (uncompressed ``.nii``), seeded random weights, same run:

(a) ``init_anatcl_encoding_wf`` iterated over subjects under MultiProc (``n_procs`` workers,
    one torch thread per node: the way a per-subject pipeline runs);
(b) ``AnatCLEncodeBatch`` as one Nipype node (all threads, one model load);
(c) the bare ``AnatCLEncoder`` loop in this process (all threads; torch already imported).

Each is run in a fresh work dir; wall time per subject and the ratio to (c) are written to
the ``## Workflow overhead`` section of ``benchmarks/RESULTS.md``.

Run from the repository root: ``python benchmarks/workflow.py [--n 16] [--nprocs 2]``
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from nipype import Node
from results import machine_line, write_section

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder, write_random_checkpoint
from anatcl_nipype.interfaces.encoder import AnatCLEncodeBatch
from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf


def per_subject_workflow(paths, weights, work, nprocs, poll_seconds):
    wf = init_anatcl_encoding_wf(weights=str(weights))
    wf.base_dir = str(work)
    wf.config["execution"]["poll_sleep_duration"] = poll_seconds
    wf.get_node("inputnode").iterables = ("gm_modulated", [str(p) for p in paths])
    wf.run(plugin="MultiProc", plugin_args={"n_procs": nprocs})


def batch_node(paths, weights, work, nprocs):
    node = Node(AnatCLEncodeBatch(weights=str(weights), in_files=[str(p) for p in paths],
                                  batch_size=1, num_threads=nprocs), name="batch",
                base_dir=str(work))
    return np.loadtxt(node.run().outputs.out_tsv, skiprows=1, usecols=range(1, 513))


def bare_encoder(paths, weights, nprocs):
    return AnatCLEncoder(weights=weights, num_threads=nprocs).encode(paths)


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args()
    from nipype import config, logging

    config.set("logging", "workflow_level", "WARNING")
    logging.update_logging(config)
    folder = Path(tempfile.mkdtemp(prefix="anatcl-wf-bench-"))
    paths = make_cat12_cohort(folder / "cohort", n_subjects=args.n, seed=0).gm_maps
    weights = write_random_checkpoint(folder / "weights.pth")
    bare_encoder(paths[:2], weights, args.nprocs)  # warm-up: page cache, oneDNN kernels
    seconds = {
        "(c) bare AnatCLEncoder loop": timed(lambda: bare_encoder(paths, weights, args.nprocs)),
        "(b) AnatCLEncodeBatch node": timed(lambda: batch_node(paths, weights, folder / "b",
                                                               args.nprocs)),
        **{f"(a) per-subject workflow, MultiProc n_procs={args.nprocs}, poll every {poll} s":
           timed(lambda poll=poll: per_subject_workflow(paths, weights, folder / f"a{poll}",
                                                        args.nprocs, poll))
           for poll in (2, 0.2)},
    }
    bare = seconds["(c) bare AnatCLEncoder loop"]
    rows = [f"| {name} | {s / args.n:.2f} s | {s / bare:.2f} |" for name, s in seconds.items()]
    section = "\n".join([
        "## Workflow overhead", "",
        f"`benchmarks/workflow.py`: {args.n} full-size synthetic CAT12 maps, seeded random "
        f"weights, fp32, {args.nprocs} cores; one run each in a fresh work dir (the MultiProc "
        "run pays its workers' torch imports and model loads). Nipype's scheduler polls "
        "every `poll_sleep_duration` seconds (default 2); with sub-second nodes that idle time "
        "dominates, so the command line sets 0.2 s.", "",
        f"{machine_line()}, torch {torch.__version__}.", "",
        "| method | wall time per subject | ratio to bare encoder |", "|---|---|---|",
        *rows, "",
    ])
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
