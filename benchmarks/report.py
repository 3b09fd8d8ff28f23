"""The report's time per participant (target, issue 15: at most 0.2 s).

A synthetic cohort of ``--n`` participants gets the participant level's outputs (an
embedding and its sidecar each; no group outputs), then ``build_report`` runs, each time in
a fresh Python process (so nothing is cached in memory), three ways:

- **cold**: an empty package home (the MNI GM prior is resampled and cached) and no
  work folder (every participant's figure and checks computed);
- **prior cached**: the home of the cold run, still no work folder;
- **warm**: the prior cached and a work folder whose figure cache an earlier run filled;

and once more with the prior cached, Nipype imported before the clock starts: so the
command line writes its report, in the process that ran the workflow (nireports imports
Nipype, about 0.5 s of a fresh process's total).

Reported: the seconds ``build_report`` takes (nireports and matplotlib, imported
lazily inside it, included) and those of its
per-participant part (each map read, checked against the prior, drawn), divided by ``--n``,
and the ratio to the cold run (same run, so the shared machine's load affects all alike).
The rest is paid once per report (imports of nireports and matplotlib, PCA, assembly).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report.py --n 24 --write
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from results import cores, machine_line, write_section

#: Run in a fresh process: prints the seconds of build_report and of its per-participant
#: part (participant_checks: each map read, checked and drawn), wrapped here to time it.
TIMED = """
import sys, time
if sys.argv[4] == "nipype":
    import nipype.pipeline.engine  # as on the command line, where the workflow ran first
from anatcl_nipype.reports import assemble
checks, spent = assemble.participant_checks, []
def timed(*args):
    start = time.perf_counter()
    result = checks(*args)
    spent.append(time.perf_counter() - start)
    return result
assemble.participant_checks = timed
start = time.perf_counter()
assemble.build_report(sys.argv[1], sys.argv[2], sys.argv[3] or None)
print(time.perf_counter() - start, sum(spent))
"""

#: What the table cannot show, written under it.
NOTE = ("The per-participant part reads each map (about 0.04 s of CPU), checks it against the "
        "prior (0.04 s; a reader thread does both while the main thread draws) and draws it "
        "with matplotlib (0.03 s); it includes, once, matplotlib's import and the first "
        "display. The rest of the total is paid once per report: the imports of nireports "
        "(with pybids and nipype: about 1.2 s) and matplotlib, the PCA figure, assembly.")


def make_outputs(root, n):
    """Participant outputs of ``n`` synthetic participants under ``root/out``."""
    from anatcl_nipype.data import make_cat12_cohort

    cohort = make_cat12_cohort(root / "cat12", n_subjects=n, seed=3)
    rng = np.random.default_rng(0)
    for subject in cohort.subjects:
        anat = root / "out" / subject / "anat"
        anat.mkdir(parents=True)
        stem = anat / f"{subject}_desc-anatclRandom_embedding"
        np.save(stem.with_suffix(".npy"), rng.normal(size=512).astype(np.float32))
        stem.with_suffix(".json").write_text(json.dumps(
            {"input": {"path": str(cohort.gm_map(subject))}, "precision": "fp32",
             "weights": {"random": True, "run_id": "random-seed0"}}))
    return root / "out", cohort.participants_tsv


def timed_report(out, participants_tsv, home, work_dir="", preload=""):
    """Seconds ``(build_report, its per-participant part)`` in a fresh process with
    package home ``home``; with ``preload="nipype"``, Nipype imported before the clock
    starts."""
    env = {**os.environ, "ANATCL_NIPYPE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", TIMED, str(out), str(participants_tsv),
                           str(work_dir), preload], env=env, capture_output=True, text=True,
                          check=True)
    total, participants = done.stdout.strip().splitlines()[-1].split()
    return float(total), float(participants)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out, tsv = make_outputs(root, args.n)
        cold = timed_report(out, tsv, root / "home")
        prior_cached = timed_report(out, tsv, root / "home")
        after_workflow = timed_report(out, tsv, root / "home", preload="nipype")
        timed_report(out, tsv, root / "home", root / "work")  # fills the figure cache
        warm = timed_report(out, tsv, root / "home", root / "work")
    rows = [("cold (no prior cache, no work folder)", cold),
            ("prior cached, no work folder", prior_cached),
            ("prior cached, no work folder, Nipype already imported (the command line)",
             after_workflow),
            ("prior and figures cached (work folder)", warm)]
    lines = [machine_line(), "",
             f"`build_report` on {args.n} participants, each run in a fresh process "
             "(`benchmarks/report.py`; the lazy imports of nireports and matplotlib "
             "included). Target: at most 0.2 s per participant. Load average during the runs: "
             f"{os.getloadavg()[0]:.1f} on {cores()} cores (shared machine).", "",
             "| run | total | total / participant | per-participant part / participant "
             "| ratio to cold (total) |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {total:.2f} s | {total / args.n:.3f} s | {part / args.n:.3f} s | "
              f"{total / cold[0]:.2f}x |" for name, (total, part) in rows]
    lines += ["", NOTE]
    print("\n".join(lines))
    if args.write:
        write_section("\n".join(["## Report", "", *lines]))


if __name__ == "__main__":
    main()
