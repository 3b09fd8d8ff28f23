"""The group level as users run it: fit, then apply the saved probe beside the fitted results;
options contradicting the probe's card; the same factory called from Python."""

import csv
import json
import subprocess
import sys

import pytest

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.files import sha256_file

pytestmark = [pytest.mark.slow, pytest.mark.integration]
FIT_OPTIONS = ("--target", "age", "--task", "regression", "--features", "both", "--cv", "2")


def anatcl_nipype(*args):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


def snapshot(folder):
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def read_tsv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, random_weights):
    """An 8-participant cohort through the participant level and a fitted age probe."""
    root = tmp_path_factory.mktemp("group_level")
    cohort = make_cat12_cohort(root / "cat12", n_subjects=8, seed=2)
    out = root / "derivatives"
    code, _, err = anatcl_nipype(cohort.root, out, "participant", "--weights", random_weights,
                                 "--nprocs", "2", "-w", root / "work")
    assert code == 0, err
    code, stdout, err = anatcl_nipype(cohort.root, out, "group", *FIT_OPTIONS, "--weights",
                                      random_weights, "-w", root / "work")
    assert code == 0, err
    assert "Cross-validated mae" in stdout
    return cohort, out, root


def test_applying_the_probe_writes_beside_and_changes_no_fitted_file(fitted, tmp_path):
    cohort, out, _ = fitted
    folder = out / "group" / "target-age"
    before = snapshot(folder)
    assert {"probe.skops", "probe.json", "predictions.tsv", "metrics.tsv", "cv.svg", "cv.png",
            "summary.json", "embeddings.tsv", "regional.tsv"} <= set(before)
    # target, task, features and weights come from the card: none repeated
    code, stdout, err = anatcl_nipype(cohort.root, out, "group", "--model",
                                      folder / "probe.skops", "-w", tmp_path / "work")
    assert code == 0, err
    assert "Cross-validated" not in stdout and "not cross-validated" in stdout
    after = snapshot(folder)
    assert {name: after[name] for name in before} == before  # byte-identical
    assert sorted(set(after) - set(before)) == ["desc-applied_predictions.json",
                                                "desc-applied_predictions.tsv"]
    rows = read_tsv(folder / "desc-applied_predictions.tsv")
    assert [row["participant_id"] for row in rows] == list(cohort.subjects)
    sidecar = json.loads((folder / "desc-applied_predictions.json").read_text())
    assert sidecar["model"] == str(folder / "probe.skops")
    assert sidecar["model_sha256"] == sha256_file(folder / "probe.skops")
    assert sidecar["validation"].startswith("none: predictions of a saved probe, not cross")


@pytest.mark.parametrize("option, message", [
    (("--target", "diagnosis"), "was fitted for target 'age', not 'diagnosis'; pass --target age"),
    (("--features", "regional"), "was fitted on both features, not regional; pass --features both"),
    (("--task", "brain_age"), "is a regression probe, not brain_age; pass --task regression"),
])
def test_options_contradicting_the_card_exit_2_and_write_nothing(fitted, tmp_path, option,
                                                                 message):
    cohort, out, _ = fitted
    probe = out / "group" / "target-age" / "probe.skops"
    before = snapshot(out)
    code, stdout, err = anatcl_nipype(cohort.root, out, "group", "--model", probe, *option,
                                      "-w", tmp_path / "work")
    assert code == 2
    assert err == f"anatcl-nipype: error: {probe} {message} (or leave it out)\n"
    assert stdout == "" and snapshot(out) == before and not (tmp_path / "work").exists()


def test_group_workflow_from_python_in_a_parent_matches_the_command(fitted, tmp_path):
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from anatcl_nipype.workflows import init_anatcl_group_wf

    cohort, out, _ = fitted
    parent = Workflow(name="my_study_wf", base_dir=str(tmp_path / "work"))
    group_wf = init_anatcl_group_wf(target="age", task="regression", features="both", cv=2,
                                    output_dir=tmp_path / "mine")
    group_wf.inputs.inputnode.embeddings = [
        str(p) for p in sorted(out.glob("sub-*/anat/*_desc-anatclRandom_embedding.npy"))]
    group_wf.inputs.inputnode.regional_tsv = [
        str(p) for p in sorted(out.glob("sub-*/anat/*_desc-cat12_regions.tsv"))]
    group_wf.inputs.inputnode.participants_tsv = str(cohort.participants_tsv)
    parent.add_nodes([group_wf])
    parent.run(plugin="Linear")
    mine, theirs = tmp_path / "mine" / "group" / "target-age", out / "group" / "target-age"
    assert (mine / "predictions.tsv").read_bytes() == (theirs / "predictions.tsv").read_bytes()
    assert (mine / "metrics.tsv").read_bytes() == (theirs / "metrics.tsv").read_bytes()
    assert "predicted from the AnatCL embeddings, joined with" in parent.visit_desc()
