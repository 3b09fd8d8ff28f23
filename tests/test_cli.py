"""The anatcl-nipype command as a user runs it: outputs, summaries, errors and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_map

from anatcl_nipype.data import make_cat12_cohort

pytestmark = pytest.mark.slow


def anatcl_nipype(*args, cwd=None):
    """Run the command in a fresh process; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=4, seed=3)


def test_participant_level_writes_bids_derivatives_and_a_summary(cohort, random_weights, tmp_path):
    """Relative folders on the command line; every path it prints is absolute."""
    code, out, err = anatcl_nipype(cohort.root, "out", "participant", "--weights",
                                   random_weights, "--nprocs", "2", "-w", "work",
                                   "--participant-label", "01", "sub-03", cwd=tmp_path)
    assert code == 0, err
    assert "[2/2] sub-03: anatcl_encode done" in out or "[2/2] sub-01: anatcl_encode done" in out
    assert f"Done: 2 of 2 participant(s) written to {tmp_path / 'out'}\n" in out
    assert f"\nReport: {tmp_path / 'out' / 'anatcl' / 'report.html'}\n" in out
    assert f"Encoding 2 participant(s) from {cohort.root} into {tmp_path / 'out'}\n" in out
    anat = tmp_path / "out" / "sub-01" / "anat"
    assert sorted(p.name for p in anat.iterdir()) == [
        "sub-01_desc-anatclRandom_embedding.json", "sub-01_desc-anatclRandom_embedding.npy",
        "sub-01_desc-cat12_regions.json", "sub-01_desc-cat12_regions.tsv"]
    regions = (anat / "sub-01_desc-cat12_regions.tsv").read_text().splitlines()
    assert len(regions) == 2 and regions[1].startswith("sub-01\t")
    assert "synthetic_lMedialTemporal_Vgm" in regions[0] and "cat12_TIV" in regions[0]
    assert np.load(anat / "sub-01_desc-anatclRandom_embedding.npy").shape == (512,)
    assert not (tmp_path / "out" / "sub-02").exists()
    assert json.loads((tmp_path / "out" / "dataset_description.json").read_text())[
        "GeneratedBy"][0]["Name"] == "anatcl-nipype"
    assert (tmp_path / "out" / "anatcl" / "report.html").is_file()
    assert "AnatCL" in (tmp_path / "out" / "anatcl" / "methods.md").read_text()


def test_bids_derivatives_layout_is_found(random_weights, tmp_path):
    cohort = make_cat12_cohort(tmp_path / "bids", n_subjects=2, seed=1, layout="bids")
    code, out, err = anatcl_nipype(cohort.root, tmp_path / "out", "participant", "--weights",
                                   random_weights, "-w", tmp_path / "work")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("sub-*")) == ["sub-01", "sub-02"]


def test_one_bad_participant_gives_exit_code_3_and_is_listed(cohort, random_weights, tmp_path):
    cat12 = tmp_path / "cat12"
    for subject in ("sub-01", "sub-02"):
        (cat12 / subject / "mri").mkdir(parents=True)
        (cat12 / subject / "mri" / f"mwp1{subject}_T1w.nii").symlink_to(cohort.gm_map(subject))
    (cat12 / "sub-09" / "mri").mkdir(parents=True)
    write_map(cat12 / "sub-09" / "mri" / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121)))
    code, out, err = anatcl_nipype(cat12, tmp_path / "out", "participant", "--weights",
                                   random_weights, "--nprocs", "2", "-w", tmp_path / "work")
    assert code == 3, err
    assert "Done: 2 of 3 participant(s)" in out
    assert "sub-09: " in out and "the map is empty (all voxels are 0)" in out
    failed = (tmp_path / "out" / "anatcl" / "failed.tsv").read_text().splitlines()
    assert failed[1].startswith("sub-09\t")
    assert failed[1].split("\t")[2].endswith("the map is empty (all voxels are 0)")
    assert (tmp_path / "out" / "sub-01" / "anat").is_dir()
    assert not (tmp_path / "out" / "sub-09").exists()
    assert "Traceback" not in out + err


@pytest.mark.parametrize("case, message", [
    ("missing input", "no such folder"),
    ("no maps", "no CAT12 grey-matter maps (mri/mwp1*.nii) found"),
    ("unknown label", "no CAT12 maps for sub-77; found: sub-01, sub-02, sub-03, sub-04"),
    ("unwritable output", "cannot create the output folder"),
    ("bad weights", "not a readable PyTorch checkpoint"),
])
def test_user_errors_are_one_line_with_exit_code_1(cohort, random_weights, tmp_path, case, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "bad.pth").write_text("not weights")
    cat12, output, extra = cohort.root, tmp_path / "out", ["--weights", random_weights]
    if case == "missing input":
        cat12 = tmp_path / "absent"
    elif case == "no maps":
        cat12 = tmp_path / "empty"
    elif case == "unknown label":
        extra += ["--participant-label", "77"]
    elif case == "unwritable output":
        output = tmp_path / "a_file" / "out"
    elif case == "bad weights":
        extra = ["--weights", tmp_path / "bad.pth"]
    code, out, err = anatcl_nipype(cat12, output, "participant", *extra, "-w", tmp_path / "w")
    assert code == 1
    assert err.startswith("anatcl-nipype: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_usage_exits_2(tmp_path):
    code, _, err = anatcl_nipype(tmp_path, tmp_path / "out", "everything")
    assert code == 2 and "invalid choice: 'everything'" in err


def test_verbose_shows_the_traceback(tmp_path):
    code, _, err = anatcl_nipype(tmp_path / "absent", tmp_path / "out", "participant", "-v")
    assert code == 1 and "Traceback" in err and "no such folder" in err


def test_weights_list_shows_cache_and_urls(tmp_path):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", "weights", "list",
                           "--descriptor", "local", "--fold", "2"], capture_output=True, text=True,
                          env={"ANATCL_NIPYPE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert f"Weights cache: {tmp_path / 'weights'}" in done.stdout
    assert "local fold 2: not present" in done.stdout
    assert f"place at: {tmp_path / 'weights' / 'anatcl-local-fold2.pth'}" in done.stdout
    assert "_local_lambd1.0_fold2_splits5_trial0/weights.pth" in done.stdout
