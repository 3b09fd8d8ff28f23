"""The README's main job: ``anatcl-nipype demo`` end to end, and what it leaves behind."""

import csv
import json
import math
import subprocess
import sys

import pytest
from conftest import DEMO_SUBJECTS
from test_report import open_in_chromium

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def anatcl_nipype(*args):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=1200)
    return done.returncode, done.stdout, done.stderr


def read_tsv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture
def demo(demo_run):
    """The session's demo run (conftest.py): the README's and docs' snippets run there too."""
    return demo_run


def test_demo_says_its_data_and_weights_are_synthetic(demo):
    root, out = demo
    assert "SYNTHETIC" in out and "SEEDED RANDOM weights" in out
    n = DEMO_SUBJECTS
    assert f"[{n}/{n}]" in out and f"Done: {n} of {n} participant(s)" in out
    sidecar = json.loads((root / "derivatives" / "sub-01" / "anat" /
                          "sub-01_desc-anatclRandom_embedding.json").read_text())
    assert sidecar["weights"]["random"] is True


def test_demo_says_which_features_carry_its_scores(demo):
    root, out = demo
    lines = out[out.index("What carries the scores"):].splitlines()
    assert "both = the 512 embedding dimensions from SEEDED RANDOM weights + the CAT12 " \
           "regional measures" in lines[0]
    scores = {line.split()[0]: line for line in lines if line.startswith("  ")}
    alone = {}
    for target, metric in (("diagnosis", "balanced_accuracy"), ("age", "mae")):
        metrics = {row["fold"]: row for row in
                   read_tsv(root / "derivatives" / "group" / f"target-{target}" / "metrics.tsv")}
        both = float(metrics["mean"][metric])
        assert f"{metric}: both {both:.3f}; embeddings alone " in scores[target]
        alone[target] = float(scores[target].rsplit(" ", 1)[1])
    # the planted age effect is regional: the embeddings alone miss much of it
    assert alone["age"] > 2 * float(scores["age"].split("both ")[1].split(";")[0])
    assert 0.5 <= alone["diagnosis"] <= 1.0
    assert "the scores show that the pipeline works, not what AnatCL can do" in " ".join(lines)


def test_demo_participant_outputs(demo):
    root, _ = demo
    derivatives = root / "derivatives"
    subjects = sorted(p.name for p in derivatives.glob("sub-*"))
    assert len(subjects) == DEMO_SUBJECTS
    for subject in subjects:
        anat = derivatives / subject / "anat"
        assert (anat / f"{subject}_desc-anatclRandom_embedding.npy").is_file()
        regions = read_tsv(anat / f"{subject}_desc-cat12_regions.tsv")
        assert len(regions) == 1 and regions[0]["participant_id"] == subject


@pytest.mark.parametrize("target, metric", [("diagnosis", "balanced_accuracy"), ("age", "mae")])
def test_demo_group_outputs(demo, target, metric):
    root, _ = demo
    group = root / "derivatives" / "group" / f"target-{target}"
    embeddings = read_tsv(group / "embeddings.tsv")
    assert len(embeddings) == DEMO_SUBJECTS
    assert list(embeddings[0])[:2] == ["participant_id", "emb_000"] and len(embeddings[0]) == 513
    predictions = read_tsv(group / "predictions.tsv")
    assert len(predictions) == DEMO_SUBJECTS and list(predictions[0])[0] == "participant_id"
    metrics = {row["fold"]: row for row in read_tsv(group / "metrics.tsv")}
    assert math.isfinite(float(metrics["mean"][metric]))
    assert {p.suffix for p in group.glob("cv.*")} == {".svg", ".png"}
    card = json.loads((group / "probe.json").read_text())
    assert card["target"] == target and card["n_train"] == DEMO_SUBJECTS
    summary = json.loads((group / "summary.json").read_text())
    # provenance names files as the group folder holds them, never the work folder's
    assert card["model_file"] == "probe.skops"
    for record in (card, summary):
        assert record["feature_tables"] == ["embeddings.tsv", "regional.tsv"]
        assert all((group / name).is_file() for name in record["feature_tables"])
    assert "work" not in json.dumps(card)
    # CAT12 writes the medial wall of aparc_DK40 as NaN: no value, no feature
    assert "aparc_DK40_lunknown_thickness" in summary["dropped_columns"]
    assert "aparc_DK40_lunknown_thickness" not in card["feature_source"]["columns"]


def test_demo_report_renders(demo, tmp_path):
    root, _ = demo
    errors, images, svgs, _ = open_in_chromium(root / "derivatives" / "anatcl" / "report.html",
                                               tmp_path / "demo_report.png")
    # one grey-matter map per participant; the PCA, the prediction figures and the workflow
    # graph are inline SVG
    assert errors == [] and len(images) == DEMO_SUBJECTS and all(ok for _, ok in images)
    assert svgs >= 4


def test_saved_probe_applies_to_the_same_features(demo, tmp_path):
    root, _ = demo
    folder = root / "derivatives" / "group" / "target-diagnosis"
    fitted = (folder / "predictions.tsv").read_bytes()
    weights = root / "random-weights-seed0.pth"
    code, out, err = anatcl_nipype(root / "cat12", root / "derivatives", "group", "--target",
                                   "diagnosis", "--features", "both", "--model",
                                   folder / "probe.skops", "--weights", weights,
                                   "-w", tmp_path / "work")
    assert code == 0, err
    assert "Cross-validated" not in out
    assert len(read_tsv(folder / "desc-applied_predictions.tsv")) == DEMO_SUBJECTS
    assert (folder / "predictions.tsv").read_bytes() == fitted  # out-of-fold ones kept


def test_probe_refuses_other_features(demo, tmp_path):
    root, _ = demo
    probe = root / "derivatives" / "group" / "target-diagnosis" / "probe.skops"
    code, _, err = anatcl_nipype(root / "cat12", root / "derivatives", "group", "--target",
                                 "diagnosis", "--features", "regional", "--model", probe,
                                 "-w", tmp_path / "work")
    assert code == 2
    assert err == (f"anatcl-nipype: error: {probe} was fitted on both features, not regional; "
                   "pass --features both (or leave it out)\n")


def test_missing_target_column_lists_the_columns(demo, tmp_path):
    root, _ = demo
    code, _, err = anatcl_nipype(root / "cat12", root / "derivatives", "group", "--target",
                                 "handedness", "-w", tmp_path / "work")
    assert code == 1
    assert "no column 'handedness'; columns are participant_id, age, sex, site" in err


def test_a_failed_apply_is_said_once(demo, tmp_path):
    root, _ = demo
    folder = root / "derivatives" / "group" / "target-diagnosis"
    probe = tmp_path / "probe.skops"
    probe.write_bytes(folder.joinpath("probe.skops").read_bytes() + b"changed")
    (tmp_path / "probe.json").write_bytes(folder.joinpath("probe.json").read_bytes())
    code, out, err = anatcl_nipype(root / "cat12", root / "derivatives", "group", "--model",
                                   probe, "-w", tmp_path / "work")
    assert code == 1
    assert (out + err).count("SHA-256") == 1 and err.startswith("anatcl-nipype: error: ")


def test_running_the_demo_again_reuses_its_cohort_checkpoint_and_results(demo):
    root, first = demo
    embedding = root / "derivatives" / "sub-01" / "anat" / "sub-01_desc-anatclRandom_embedding.npy"
    before = embedding.read_bytes(), embedding.stat().st_mtime_ns
    checkpoint = (root / "random-weights-seed0.pth").stat().st_mtime_ns
    code, out, err = anatcl_nipype("demo", root, "--n-subjects", DEMO_SUBJECTS)
    assert code == 0, out + err
    assert (f"Reusing the synthetic cohort in {root / 'cat12'} ({DEMO_SUBJECTS} participants, "
            "seed 0)") in out
    assert f"Reusing the seeded random checkpoint {root / 'random-weights-seed0.pth'}" in out
    assert (root / "random-weights-seed0.pth").stat().st_mtime_ns == checkpoint
    assert (embedding.read_bytes(), embedding.stat().st_mtime_ns) == before  # not recomputed
    assert "finished: its results are reused" in out
    assert out[out.index("What carries the scores"):] == first[first.index("What carries"):]
