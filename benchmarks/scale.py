"""Benchmark: does memory stay flat from 20 to 200 subjects? (batch encoder and workflow)

A synthetic cohort of 200 full-size CAT12 maps; for the first 20 and for all 200, each in a
fresh process:

- the batch encoder: ``AnatCLEncodeBatch`` run as one Nipype node (one model load, read-ahead);
- the per-subject workflow: ``init_anatcl_encoding_wf`` iterated over the subjects under
  MultiProc (2 workers, 1 thread each, scheduler polling every 0.2 s).

Reported: wall time per subject and peak resident memory (``VmHWM``) of the process itself
and of its largest worker (sampled every 0.2 s from /proc while the run lasts; a forked
worker's ``ru_maxrss`` would start at its parent's);
flat memory means the 200-subject peak within 10% of the 20-subject one. Results go to the
``## Scale`` section of ``benchmarks/RESULTS.md``.

Run from the repository root: ``python benchmarks/scale.py [--n-large 200] [--n-small 20]``
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from results import machine_line, write_section

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import write_random_checkpoint

RUNNER = """
import json, sys, threading, time
from pathlib import Path
from nipype import Node, config

def high_water_gib(pid="self"):  # VmHWM: ru_maxrss of a forked child starts at its parent's
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(status.split("VmHWM:")[1].split()[0]) / 1024 ** 2

def descendants():
    found, queue = set(), ["self"]
    while queue:
        for task in Path(f"/proc/{queue.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            queue.extend(children - found)
            found |= children
    return found

workers, done = {}, threading.Event()
def watch():  # a worker's high-water mark only grows: sample it until the run ends
    while not done.wait(0.2):
        for pid in descendants():
            workers[pid] = max(workers.get(pid, 0.0), high_water_gib(pid))
threading.Thread(target=watch, daemon=True).start()
kind, weights, work, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
paths = [line for line in Path(sys.argv[5]).read_text().splitlines()][:n]
config.set("execution", "poll_sleep_duration", "0.2")
start = time.perf_counter()
if kind == "batch":
    from anatcl_nipype.interfaces.encoder import AnatCLEncodeBatch
    Node(AnatCLEncodeBatch(weights=weights, in_files=paths, num_threads=2), name="batch",
         base_dir=str(work)).run()
else:
    from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf
    wf = init_anatcl_encoding_wf(weights=weights)
    wf.base_dir = str(work)
    wf.get_node("inputnode").iterables = ("gm_modulated", paths)
    wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
seconds = time.perf_counter() - start
done.set()
print(json.dumps({"seconds": seconds, "self_gib": high_water_gib(),
                  "children_gib": max(workers.values(), default=0.0)}))
"""


def measure(kind, weights, work, n, path_list):
    output = subprocess.run([sys.executable, "-c", RUNNER, kind, str(weights), str(work), str(n),
                             str(path_list)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-large", type=int, default=200)
    parser.add_argument("--n-small", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="anatcl-scale-"))
    cohort = make_cat12_cohort(folder / "cohort", n_subjects=args.n_large, seed=0)
    path_list = folder / "maps.txt"
    path_list.write_text("\n".join(str(p) for p in cohort.gm_maps))
    weights = write_random_checkpoint(folder / "weights.pth")
    rows, peaks = [], {}
    for kind, label in (("batch", "AnatCLEncodeBatch node"),
                        ("workflow", "per-subject workflow, MultiProc 2")):
        for n in (args.n_small, args.n_large):
            result = measure(kind, weights, folder / f"{kind}{n}", n, path_list)
            peak = max(result["self_gib"], result["children_gib"])
            peaks[kind, n] = peak
            rows.append(f"| {label} | {n} | {result['seconds'] / n:.2f} s | "
                        f"{result['self_gib']:.2f} GiB | {result['children_gib']:.2f} GiB |")
            print(rows[-1], flush=True)
    growth = [f"{kind}: {peaks[kind, args.n_large] / peaks[kind, args.n_small] - 1:+.1%}"
              for kind in ("batch", "workflow")]
    section = "\n".join([
        "## Scale", "",
        f"`benchmarks/scale.py`: {args.n_large} synthetic full-size CAT12 maps (uncompressed "
        "`.nii`), seeded random weights, fp32; each run in a fresh process.", "",
        f"{machine_line()}.", "",
        "| method | subjects | wall time per subject | peak memory (VmHWM), process | peak "
        "memory, largest worker |", "|---|---|---|---|---|", *rows, "",
        f"Peak memory growth from {args.n_small} to {args.n_large} subjects (target within 10%): "
        + ", ".join(growth) + ".", "",
    ])
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
