"""Pipeline overhead: the command line's levels against the bare pieces they wrap, same run.

Targets (issue 15), on N >= 24 full-size synthetic CAT12 participants, seeded random weights:

- participant level (encoding + regional + derivatives + report, the command line as a user
  runs it, Linear plugin, all threads) at most 1.3x the bare ``AnatCLEncoder`` loop per
  subject (torch already imported, model loaded: what the encoder alone costs);
- the report at most 0.2 s per participant (the ``report`` phase of the run record);
- cross-validation (penalty search included) at most 2x the equivalent plain scikit-learn
  code on the same table: ``cross_validate_probe`` against ``cross_val_predict`` of the same
  estimator and folds on the group feature table (permutation test and figures are not in
  either).

Rounds alternate the pieces, so a busy machine slows them alike; the ratios are per round.
``--device`` runs the bare loop and the command line (``--device``) there; the section is
written unless ``--no-write``; ``--json-dir`` also writes ``pipeline.json`` (throughput,
fraction of peak and memory of the bare loop and of the participant level: see ``device.py``).

    python benchmarks/pipeline.py [--n 24] [--rounds 2] [--device cpu|cuda|cuda:N]
"""

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

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

#: ``python -m anatcl_nipype ARGS``, printing its peak resident memory last on stderr.
CLI_WITH_PEAK = f"""
import atexit, runpy, sys
atexit.register(lambda: print("peak resident GiB", {PEAK_RESIDENT_GIB}, file=sys.stderr))
sys.argv[0] = "anatcl-nipype"
runpy.run_module("anatcl_nipype", run_name="__main__")
"""


def bare_encoder_seconds(maps, weights, device):
    """``(seconds per map, peak memory)`` of the bare encoder loop (model loaded and warmed
    up first)."""
    from anatcl_nipype.encoder import AnatCLEncoder

    encoder = AnatCLEncoder(weights=weights, device=device)
    encoder.encode([maps[0]])
    reset_peak_memory(device)
    seconds, _ = timed(lambda: [encoder.encode([path]) for path in maps], device)
    return seconds / len(maps), peak_memory(device)


def participant_level(cat12, output, work, weights, device):
    """Run the participant level in a fresh process; return (wall s, phases from its record,
    its peak resident GiB)."""
    import subprocess

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, str(cat12), str(output),
                           "participant", "--weights", str(weights), "-w", str(work),
                           "--device", str(device)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    record = json.loads((Path(output) / "anatcl" / "run-participant.json").read_text())
    phases = {phase["name"]: phase["seconds"] for phase in record["phases"]}
    phases["report"] = float(done.stdout.split(" report ")[1].split(" s")[0])
    return wall, phases, float(re.findall(r"^peak resident GiB (\S+)$", done.stderr, re.M)[-1])


def cv_seconds(features, participants_tsv, repeats=3):
    """(cross_validate_probe, plain scikit-learn) median seconds on the same table."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from anatcl_nipype.prediction import cross_validate_probe, load_labels
    from anatcl_nipype.prediction.validation import default_estimator

    labels = load_labels(participants_tsv, "diagnosis", list(features.index), "classification")
    features = features.loc[labels.participant_ids]
    y, X = np.asarray(labels.labels), features.to_numpy()

    def ours():
        cross_validate_probe(features, y, "classification", cv=5, seed=0)

    def plain():
        cross_val_predict(default_estimator("classification", seed=0), X, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=0),
                          method="predict_proba")

    times = {ours: [], plain: []}
    for _ in range(repeats):
        for function in times:
            start = time.perf_counter()
            function()
            times[function].append(time.perf_counter() - start)
    return statistics.median(times[ours]), statistics.median(times[plain])


def embeddings_table(output):
    """The participant level's embeddings as one table (participants x 512)."""
    import numpy as np
    import pandas as pd

    paths = sorted(Path(output).glob("sub-*/anat/*_embedding.npy"))
    return pd.DataFrame(np.stack([np.load(path) for path in paths]),
                        index=[path.name.split("_")[0] for path in paths])


def json_rows(rounds, device):
    """The bare loop and the participant level per subject, medians over rounds, fp32."""
    bare = statistics.median(r["bare"] for r in rounds)
    wall = statistics.median(r["wall"] for r in rounds)
    return [row("bare encoder loop", device, "fp32", bare, max(r["memory"] for r in rounds)),
            row("participant level (command line)", device, "fp32", wall,
                (max(r["resident"] for r in rounds), "its process's peak resident")
                if device.type == "cpu" else (None, "GPU memory of another process"))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    args = add_device_options(parser).parse_args()
    device = args.device
    from anatcl_nipype.data import make_cat12_cohort
    from anatcl_nipype.encoder import write_random_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cohort = make_cat12_cohort(tmp / "cat12", n_subjects=args.n, seed=0)
        weights = write_random_checkpoint(tmp / "random.pth", seed=0)
        maps = [cohort.gm_map(subject) for subject in cohort.subjects]
        for number in range(args.rounds):
            bare, memory = bare_encoder_seconds(maps, weights, device)
            output = tmp / f"out{number}"
            wall, phases, resident = participant_level(cohort.root, output,
                                                       tmp / f"work{number}", weights, device)
            ours, plain = cv_seconds(embeddings_table(output), cohort.participants_tsv)
            rows.append(dict(bare=bare, wall=wall / args.n, phases=phases, ours=ours,
                             plain=plain, memory=memory, resident=resident))
            print(rows[-1], flush=True)
    lines = ["## Pipeline overhead", "",
             f"`benchmarks/pipeline.py`: {args.n} full-size synthetic CAT12 participants, "
             f"seeded random weights, fp32, on {device}, Linear plugin, all threads; the "
             "participant level in a fresh process as a user runs it (its phases from "
             "`run-participant.json`); the bare encoder loop and the cross-validations in this "
             "process. Same-round ratios.", "", f"{machine_line()} {device_line(device)}".rstrip(),
             "",
             "| round | bare encoder / subject | participant level / subject (ratio) | "
             "workflow phase / subject (ratio) | report / participant | CV ours / plain "
             "sklearn |", "|---|---|---|---|---|---|"]
    for number, entry in enumerate(rows):
        workflow = entry["phases"]["encoding, regional and sinks"] / args.n
        lines.append(
            f"| {number} | {entry['bare']:.2f} s | {entry['wall']:.2f} s "
            f"({entry['wall'] / entry['bare']:.2f}x) | {workflow:.2f} s "
            f"({workflow / entry['bare']:.2f}x) | {entry['phases']['report'] / args.n:.2f} s | "
            f"{entry['ours']:.2f} s / {entry['plain']:.2f} s "
            f"({entry['ours'] / entry['plain']:.2f}x) |")
    print("\n".join(lines))
    write_rows(args.json_dir, "pipeline", device, json_rows(rows, device),
               dict(n=args.n, rounds=args.rounds))
    if args.write:
        write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
