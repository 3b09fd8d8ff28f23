"""MultiProc workers: what starting them from a forkserver costs against forking them.

Forked workers deadlock once the parent has used torch's thread pool (one participant with
``--nprocs 2`` hung); the command line now starts them from a forkserver that imports torch,
Nipype and the interfaces once. This measures the price: the participant level as a user
runs it (fresh process, ``--nprocs 2``), workers forked (``--plugin-args
'{"mp_context": "fork"}'``, one torch thread per node: the only setting that ended before)
against the forkserver, same threads; and the forkserver with two threads per node (hung
before). Rounds alternate the settings, so a busy machine slows them alike.

    python benchmarks/workers.py [--n 8] [--rounds 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine_line, write_section

SETTINGS = {
    "forked workers, 1 thread per node": ["--omp-nthreads", "1", "--plugin-args",
                                          '{"mp_context": "fork"}'],
    "forkserver workers, 1 thread per node": ["--omp-nthreads", "1"],
    "forkserver workers, 2 threads per node": ["--omp-nthreads", "2"],
}


def participant_level(cat12, weights, folder, extra):
    """(wall seconds, phases) of one participant-level run in a fresh process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "anatcl_nipype", str(cat12), str(folder / "out"),
                    "participant", "--weights", str(weights), "--nprocs", "2", "-w",
                    str(folder / "work"), *extra], check=True, capture_output=True)
    wall = time.perf_counter() - start
    record = json.loads((folder / "out" / "anatcl" / "run-participant.json").read_text())
    return wall, record["phases"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from anatcl_nipype.data import make_cat12_cohort
    from anatcl_nipype.encoder import write_random_checkpoint

    walls = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cohort = make_cat12_cohort(tmp / "cat12", n_subjects=args.n, seed=0)
        weights = write_random_checkpoint(tmp / "random.pth", seed=0)
        for number in range(args.rounds):
            for index, (name, extra) in enumerate(SETTINGS.items()):
                wall, phases = participant_level(cohort.root, weights,
                                                 tmp / f"r{number}s{index}", extra)
                walls[name].append(wall)
                print(f"round {number}: {name}: {wall:.1f} s {phases}", flush=True)
    forked = statistics.median(walls[next(iter(SETTINGS))])
    lines = ["## MultiProc workers", "",
             f"`benchmarks/workers.py`: the participant level on {args.n} full-size synthetic "
             "participants, `--nprocs 2`, each run a fresh process as a user types it; "
             f"{args.rounds} alternating rounds, median wall time.", "", machine_line(), "",
             "| workers | wall (median) | per participant | vs forked | rounds |",
             "|---|---|---|---|---|"]
    for name, times in walls.items():
        median = statistics.median(times)
        lines.append(f"| {name} | {median:.1f} s | {median / args.n:.2f} s | "
                     f"{median / forked:.2f}x | {', '.join(f'{t:.1f}' for t in times)} |")
    print("\n".join(lines))
    write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
