"""The runnable examples in examples/: all build and draw; the ones without MATLAB run."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.data import make_cat12_cohort

EXAMPLES = Path(__file__).parents[1] / "examples"
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """16 participants: 8 per class, enough for the group study's 5-fold probe (with its inner
    search of the penalty) to recover the planted atrophy; each one more is another encoding."""
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=16, seed=4)


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    """4 participants: two per MultiProc worker, enough to show every branch runs and sinks;
    each one more is another full-size encoding."""
    return make_cat12_cohort(tmp_path_factory.mktemp("small_cohort"), n_subjects=4, seed=4)


def test_cat12_example_builds_and_draws(tmp_path):
    (tmp_path / "sub-01_T1w.nii").write_bytes(b"")
    wf = load_example("cat12_to_anatcl").main([str(tmp_path / "sub-01_T1w.nii"), "--draw-only",
                                              "--work-dir", str(tmp_path / "work")])
    assert "cat12_anatcl_wf.cat12_segment" in wf.list_node_names()
    assert list((tmp_path / "work" / "cat12_to_anatcl").glob("graph*.svg"))


def test_fmriprep_style_parent_runs_with_multiproc(small_cohort, random_weights, tmp_path):
    module = load_example("fmriprep_style_parent")
    out = tmp_path / "derivatives"
    module.main([str(small_cohort.root), str(out), "--weights", str(random_weights),
                 "--work-dir", str(tmp_path / "work"), "--nprocs", "2"])
    anat = out / "sub-04" / "anat"
    assert (anat / "sub-04_desc-totalgm_features.tsv").read_text().startswith("total_gm_cm3\n")
    assert np.load(anat / "sub-04_desc-anatclRandom_embedding.npy").shape == (512,)
    assert len(list(out.glob("sub-*/anat/*_embedding.npy"))) == 4


def test_group_study_runs_with_multiproc(cohort, random_weights, tmp_path):
    module = load_example("group_study")
    module.main([str(cohort.root), str(cohort.participants_tsv), "diagnosis", "--out",
                 str(tmp_path / "results"), "--weights", str(random_weights), "--work-dir",
                 str(tmp_path / "work"), "--nprocs", "2"])
    card = json.loads((tmp_path / "results" / "group" / "target-diagnosis" / "probe.json")
                      .read_text())
    assert card["n_train"] == 16 and card["task"] == "classification"
    columns = card["feature_source"]["columns"]
    assert "emb_511" in columns and "synthetic_lMedialTemporal_Vgm" in columns
    # the planted 20% medial-temporal atrophy is recovered from embeddings + regions
    assert card["cv_metrics"]["balanced_accuracy"]["mean"] >= 0.75


def test_fmriprep_style_parent_keeps_sessions_apart(random_weights, tmp_path):
    from conftest import write_map

    maps = {("01", "bl"): "sub-01_ses-bl/mri/mwp1sub-01_ses-bl_T1w.nii",
            ("01", "m12"): "sub-01_ses-m12/mri/mwp1sub-01_ses-m12_T1w.nii",
            ("02", "1"): "sub-02/ses-1/mri/mwp1scan.nii",  # sessions as folders only
            ("02", "2"): "sub-02/ses-2/mri/mwp1scan.nii"}
    for seed, relative in enumerate(maps.values()):
        (tmp_path / "cat12" / relative).parent.mkdir(parents=True)
        write_map(tmp_path / "cat12" / relative, seed=seed)
    out = tmp_path / "derivatives"
    wf = load_example("fmriprep_style_parent").main([
        str(tmp_path / "cat12"), str(out), "--weights", str(random_weights),
        "--work-dir", str(tmp_path / "work"), "--nprocs", "2"])
    assert sorted(n for n in wf.list_node_names() if n.endswith("anatcl_encode")) == [
        f"single_subject_{s}_ses_{t}_wf.anatcl_encoding_wf.anatcl_encode" for s, t in maps]
    embeddings = {}
    for subject, session in maps:
        stem = out / f"sub-{subject}" / f"ses-{session}" / "anat" / f"sub-{subject}_ses-{session}"
        assert Path(f"{stem}_desc-totalgm_features.tsv").is_file()
        embeddings[subject, session] = np.load(f"{stem}_desc-anatclRandom_embedding.npy")
    assert len(list(out.rglob("*_embedding.npy"))) == 4
    assert not np.allclose(embeddings["02", "1"], embeddings["02", "2"])  # not overwritten
