"""Benchmark: the participant level at cohort scale (100, 1,000, 10,000 participants).

What a UK-Biobank-sized run costs outside the network: the graph, Nipype's scheduler, the
sinks and the report are the real ones; the encoder's network is a stand-in
(``benchmarks/standin/sitecustomize.py``: ``AnatCLNetwork.forward`` replaced by an 8x8x8
average pooling in every process; the checkpoint is still loaded, each map still read,
checked, cropped and hashed, each embedding and sidecar still written and sunk).

The cohort: ``--real`` synthetic full-size CAT12 subjects (``make_cat12_cohort``: mwp1 map,
ROI XML, report XML), and for ``n`` participants a folder of ``n`` subject folders whose
files are symbolic links to them (``sub-00001`` -> real subject 1, ``sub-00002`` -> 2, ...),
so 10,000 participants need no 80 GB of maps.

For each size and plugin, in a fresh process each:

- graph: ``init_anatcl_participant_wf`` for the discovered subjects (build), then what
  ``Workflow.run`` does before scheduling (flatten, expand), node count and the RSS after;
- run: ``anatcl-nipype <cat12> <out> participant`` with seeded random weights; the command's
  own process (the scheduler) is sampled every 0.2 s for its RSS, from the line announcing
  the encoding to the ``Done:`` line; its stdout gives the time of each phase;
- output tree: files and bytes under the output folder (and the work folder).

Overhead per participant: the run phase's wall time per participant, and the CPU seconds
the command's own process (the scheduler) spent in it per participant.

    .venv/bin/python benchmarks/scale_cohort.py --sizes 100 1000 --plugins Linear MultiProc
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from results import machine_line, write_section

HERE = Path(__file__).parent
STANDIN = HERE / "standin"

GRAPH = """
import json, sys, time
from anatcl_nipype.inputs import discover_cat12
from anatcl_nipype.workflows.base import init_anatcl_participant_wf
from nipype.pipeline.engine.utils import generate_expanded_graph
clock = lambda: (time.perf_counter(), time.process_time())
start = clock()
subjects = discover_cat12(sys.argv[1]).subjects
found = clock()
wf = init_anatcl_participant_wf(subjects=[s.as_inputs() for s in subjects],
                                output_dir=sys.argv[2], weights=sys.argv[3])
built = clock()
wf.base_dir = sys.argv[4]
flat = wf._create_flat_graph()
graph = generate_expanded_graph(flat)
expanded = clock()
rss = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 2 ** 20
print(json.dumps({"discovery": found[0] - start[0], "build": built[0] - found[0],
                  "flatten": expanded[0] - built[0], "build_cpu": built[1] - found[1],
                  "flatten_cpu": expanded[1] - built[1], "nodes": graph.number_of_nodes(),
                  "peak_gib": rss}))
"""


def make_cohort(real, n, folder):
    """``n`` subject folders of symbolic links to the ``real`` cohort's files."""
    folder.mkdir(parents=True)
    for index in range(n):
        source = real[index % len(real)]
        label = f"sub-{index + 1:05d}"
        for path in source:
            name = path.name.replace(path.parent.parent.name, label)
            link = folder / label / path.parent.name / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return folder


def real_subjects(root):
    """``[[mwp1, catROI, catROIs, cat_xml], ...]``: each subject's files in a synthetic cohort."""
    subjects = []
    for subject in sorted(root.glob("sub-*")):
        subjects.append([next((subject / kind).glob(pattern)) for kind, pattern in
                         (("mri", "mwp1*.nii"), ("label", "catROI_*.xml"),
                          ("label", "catROIs_*.xml"), ("report", "cat_*.xml"))])
    return subjects


def graph_figures(cohort, folder, weights):
    """Discovery, build and flatten seconds (wall and CPU), node count and peak RSS of the
    participant workflow of ``cohort``, in a fresh process."""
    output = subprocess.run([sys.executable, "-c", GRAPH, str(cohort), str(folder / "out"),
                             str(weights), str(folder / "graphwork")],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def rss_gib(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(status.split("VmRSS:")[1].split()[0]) / 2 ** 20


def run_cli(cohort, folder, weights, plugin, log):
    """Run the participant level; return its phases, node time and scheduler peak RSS."""
    out, work = folder / "out", folder / "work"
    command = [str(Path(sys.executable).parent / "anatcl-nipype"), str(cohort), str(out),
               "participant", "--weights", str(weights), "-w", str(work)]
    command += ["--nprocs", "2"] if plugin == "MultiProc" else ["--plugin", "Linear"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
        str(STANDIN), os.environ.get("PYTHONPATH")))), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    state = {"phase": "start-up", "peak": {}, "cpu": {}}

    def sample():
        while process.poll() is None:
            phase = state["phase"]
            state["peak"][phase] = max(state["peak"].get(phase, 0.0), rss_gib(process.pid))
            seconds = cpu_seconds(process.pid)
            if seconds is not None:
                first = state["cpu"].get(phase, (seconds, seconds))[0]
                state["cpu"][phase] = (first, seconds)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    with open(log, "w") as stream:
        for line in process.stdout:
            stream.write(line)
            stream.flush()
            lines.append(line)
            if line.startswith("Encoding "):
                state["phase"] = "run"
            elif line.startswith("Done:"):
                state["phase"] = "report"
    process.wait()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}); see {log}")
    text = "".join(lines)
    elapsed = re.search(r"^Elapsed: (.*); total", text, re.MULTILINE).group(1)
    phases = {name: float(seconds) for name, seconds in
              re.findall(r"([\w ,-]+?) ([\d.]+) s(?:,|$)", elapsed)}
    node_line = re.search(r"^  node time: (.*)$", text, re.MULTILINE).group(1)
    node_seconds = sum(float(s) for s in re.findall(r"([\d.]+) s", node_line))
    return {"phases": {k.strip(" ,"): v for k, v in phases.items()},
            "node_seconds": node_seconds, "peak_gib": state["peak"],
            "cpu_s": {phase: last - first for phase, (first, last) in state["cpu"].items()}}


def cpu_seconds(pid):
    """User + system CPU seconds of the process ``pid`` (its threads, not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_size(folder):
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(root, name)).st_size
    return files, size


def measure(real, n, plugin, weights, folder):
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's, in a reused --folder
    cohort = make_cohort(real, n, folder / "cat12")
    graph = graph_figures(cohort, folder, weights)
    run = run_cli(cohort, folder, weights, plugin, folder / "run.log")
    wall = run["phases"]["encoding, regional and sinks"]
    out_files, out_bytes = tree_size(folder / "out")
    work_files, work_bytes = tree_size(folder / "work")
    report_bytes = sum(p.stat().st_size for p in (folder / "out" / "anatcl").rglob("*.html"))
    return {"n": n, "plugin": plugin, "graph": graph, "run_s": wall,
            "per_participant_s": wall / n,
            "scheduler_cpu_per_participant_s": run["cpu_s"].get("run", 0.0) / n,
            "scheduler_peak_gib": run["peak_gib"].get("run", 0.0),
            "report_peak_gib": run["peak_gib"].get("report", 0.0),
            "report_s": run["phases"].get("report"), "report_bytes": report_bytes,
            "out_files": out_files, "out_bytes": out_bytes, "work_files": work_files,
            "work_bytes": work_bytes}


def row(result):
    g = result["graph"]
    cpu = result.get("scheduler_cpu_per_participant_s")
    return (f"| {result['n']:,} | {result['plugin']} | {g['nodes']:,} | "
            f"{g['build_cpu']:.1f} s + {g['flatten_cpu']:.1f} s "
            f"({g['build']:.0f} s + {g['flatten']:.0f} s) | "
            f"{result['per_participant_s'] * 1000:.0f} ms | "
            + (f"{cpu * 1000:.0f} ms | " if cpu is not None else "not sampled | ") +
            f"{result['scheduler_peak_gib']:.2f} GiB | "
            f"{result['out_files']:,} files, {result['out_bytes'] / 2 ** 20:.0f} MiB | "
            f"{result['work_bytes'] / 2 ** 20:.0f} MiB | "
            f"{result['report_s']:.0f} s ({result['report_bytes'] / 2 ** 20:.1f} MiB) |")


HEADER = ("| participants | plugin | nodes (expanded) | graph build + flatten, CPU (wall) | "
          "run wall time per participant | scheduler CPU per participant | scheduler peak "
          "RSS | output tree | work folder | report wall time (HTML size) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


NOTES = """\
What was stood in: the network only. `benchmarks/standin/sitecustomize.py`, on `PYTHONPATH`,
replaces `AnatCLNetwork.forward` by an 8x8x8 average pooling in the command's process and in
every worker (the real ResNet-18 takes about 1 s per map here); the seeded random checkpoint is
still loaded, and every map is still read, checked, cropped and hashed, every embedding,
sidecar, regional table and `dataset_description.json` written by the real sinks, and the real
report built. The cohort is symbolic links: {real} synthetic full-size CAT12 subjects
(`make_cat12_cohort`: mwp1 map, catROI/catROIs XML, cat report XML), participant k linked to
real subject k mod {real}, so discovery, graph and sinks see n distinct participants and every
map is still read from disk (from the page cache after the first {real}).

Columns: nodes after Nipype's expansion (11 per participant); graph build
(`init_anatcl_participant_wf`) and what `Workflow.run` does before scheduling (flatten, expand)
in a fresh process, CPU seconds (wall seconds in brackets); run wall time per participant (the
`encoding, regional and sinks` phase, which includes Workflow.run's own flatten and expand);
scheduler CPU per participant: CPU seconds of the command's process in that phase (all
threads, workers excluded; under Linear every node runs in it, under MultiProc the light
`run_without_submitting` nodes and Nipype's bookkeeping do), divided by the participants: the
load-independent figure; scheduler peak RSS: the command's process, sampled every 0.2 s in that
phase (workers excluded); output tree: files and bytes under the output folder; report: the
`report` phase and the HTML it wrote (index plus participant pages).
"""


def section(results, real):
    """The ``## Cohort scale`` section of RESULTS.md from ``results`` (latest per size and
    plugin)."""
    latest = {(r["n"], r["plugin"]): r for r in results}
    rows = [row(latest[key]) for key in sorted(latest, key=lambda k: (k[1], k[0]))]
    return "\n".join([
        "## Cohort scale", "",
        "`benchmarks/scale_cohort.py`: the participant level (`anatcl-nipype <cat12> <out> "
        "participant`, fp32, seeded random weights) at cohort sizes; each size and plugin in "
        "fresh processes.", "", f"{machine_line()}; shared with other engineers' test runs "
        "(load average 5 to 11 on 2 cores), so wall times are inflated and noisy.", "",
        HEADER, *rows, "", NOTES.format(real=real), "Re-run: `cd benchmarks && "
        "../.venv/bin/python scale_cohort.py --sizes 100 1000 --plugins Linear MultiProc "
        "--folder /tmp/anatcl-scale --write` (add 10000 where there are hours and 15 GB free "
        "under the folder: the work folder takes about 0.3 MB per participant).", ""])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--plugins", nargs="+", default=["Linear", "MultiProc"])
    parser.add_argument("--real", type=int, default=8, help="real synthetic subjects")
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help="write RESULTS.md's section")
    args = parser.parse_args()
    from anatcl_nipype.data import make_cat12_cohort
    from anatcl_nipype.encoder import write_random_checkpoint

    folder = args.folder or Path(tempfile.mkdtemp(prefix="anatcl-cohort-"))
    folder.mkdir(parents=True, exist_ok=True)
    real_root = folder / "real"
    if not real_root.is_dir():
        make_cat12_cohort(real_root, n_subjects=args.real, seed=0)
    weights = folder / "weights.pth"
    if not weights.is_file():
        write_random_checkpoint(weights)
    real = real_subjects(real_root)
    for n in args.sizes:
        for plugin in args.plugins:
            result = measure(real, n, plugin, weights, folder / f"{plugin}-{n}")
            print(json.dumps(result), flush=True)
            with open(folder / "results.jsonl", "a") as stream:
                stream.write(json.dumps(result) + "\n")
            print(row(result), flush=True)
    if args.write:
        earlier = [json.loads(line) for line in
                   (folder / "results.jsonl").read_text().splitlines() if line.strip()]
        write_section(section(earlier, args.real))


if __name__ == "__main__":
    main()
