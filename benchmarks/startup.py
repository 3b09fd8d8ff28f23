"""Start-up: how long the command line takes to report a user's mistake.

Target (issue 15): ``anatcl-nipype <missing_dir> <out> participant`` reports its error in at
most 1.5x the time of ``python -c "import nipype"`` on the same machine. Also timed: importing
the derivatives sink against importing niworkflows' (which indexes TemplateFlow). Each command runs
in a fresh process (what a user pays), median of ``--repeats`` runs after one warm-up, the
commands alternating so that a busy machine slows them alike.

    python benchmarks/startup.py [--repeats 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine_line, write_section

BIN = Path(sys.executable).parent


def commands(folder):
    """The commands to time: the reference import, then user mistakes on the command line."""
    cli = str(BIN / "anatcl-nipype")
    cohort = folder / "cat12"
    (cohort / "sub-01" / "mri").mkdir(parents=True)
    (cohort / "sub-01" / "mri" / "mwp1sub-01_T1w.nii").write_bytes(b"")
    return {
        'python -c "import nipype"': [sys.executable, "-c", "import nipype"],
        "missing CAT12 folder": [cli, str(folder / "missing"), str(folder / "out"), "participant",
                                 "-w", str(folder / "work")],
        "unknown --participant-label": [cli, str(cohort), str(folder / "out"), "participant",
                                        "--participant-label", "99", "-w", str(folder / "work")],
        "--help": [cli, "--help"],
        "import our derivatives sink (what a worker running one pays)":
            [sys.executable, "-c", "import anatcl_nipype.interfaces.bids"],
        "import niworkflows.interfaces.bids (the sink we no longer subclass)":
            [sys.executable, "-c", "import niworkflows.interfaces.bids"],
    }


def time_once(command):
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = commands(Path(tmp))
        times = {name: [] for name in runs}
        messages = {}
        for round_ in range(args.repeats + 1):
            for name, command in runs.items():
                elapsed, done = time_once(command)
                if round_:  # the first round warms the page cache
                    times[name].append(elapsed)
                messages[name] = (done.stderr or done.stdout).strip().splitlines()[-1:]
    reference = statistics.median(times['python -c "import nipype"'])
    lines = ["## Start-up", "",
             "`benchmarks/startup.py`: each command in a fresh process, median of "
             f"{args.repeats} alternating runs after one warm-up; load average at the end "
             f"{os.getloadavg()[0]:.1f} (only the ratios compare).", "", machine_line(), "",
             "| command | median time | time / import nipype | last line printed |",
             "|---|---|---|---|"]
    for name, values in times.items():
        median = statistics.median(values)
        shown = messages[name][0][:70] if messages[name] else ""
        lines.append(f"| {name} | {median:.2f} s | {median / reference:.2f} | `{shown}` |")
    print("\n".join(lines))
    write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
