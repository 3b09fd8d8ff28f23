"""Relevance maps through the command line: the group level explains its fitted probe."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import CAT12_SHAPE

pytestmark = pytest.mark.slow


def anatcl_nipype(*args):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, random_weights):
    """A 10-participant synthetic cohort through the participant level."""
    root = tmp_path_factory.mktemp("relevance")
    cohort = make_cat12_cohort(root / "cat12", n_subjects=10, seed=5)
    code, _, stderr = anatcl_nipype(cohort.root, root / "out", "participant", "--weights",
                                    random_weights, "-w", root / "work")
    assert code == 0, stderr
    return cohort, root / "out"


def test_group_level_writes_the_relevance_map_region_table_and_report(encoded, random_weights,
                                                                      tmp_path):
    cohort, out = encoded
    code, stdout, stderr = anatcl_nipype(
        cohort.root, out, "group", "--target", "age", "--cv", "2", "--weights", random_weights,
        "--relevance-maps", "--relevance-steps", "1", "--participant-label", "01", "02",
        "--relevance-atlas", cohort.atlas_image, "--relevance-labels", cohort.atlas_table,
        "-w", tmp_path / "work", "--nprocs", "2", "--omp-nthreads", "2")  # hung when forked
    assert code == 0, stderr
    assert "Relevance maps: 2 map(s), integrated_gradients, 1 steps" in stdout
    target = out / "group" / "target-age"
    image = nib.load(target / "desc-relevance_statmap.nii.gz")
    assert image.shape == CAT12_SHAPE and np.isfinite(image.get_fdata()).all()
    assert np.abs(image.get_fdata()).max() > 0
    sidecar = json.loads((target / "desc-relevance_statmap.json").read_text())
    assert sidecar["method"] == "integrated_gradients" and sidecar["steps"] == 1
    # two maps: the group-mean baseline differs from each (one map alone is its own baseline)
    assert sidecar["participants"] == ["sub-01", "sub-02"]
    for subject in ("sub-01", "sub-02"):  # each participant's map, as a BIDS derivative
        stem = out / subject / "anat" / f"{subject}_desc-relevanceAge_statmap"
        own = nib.load(f"{stem}.nii.gz")
        assert own.shape == CAT12_SHAPE and np.abs(own.get_fdata()).max() > 0
        assert json.loads(Path(f"{stem}.json").read_text())["method"] == "integrated_gradients"
    assert len(list(out.glob("sub-*/anat/*_statmap.nii.gz"))) == 2  # only those explained
    regions = (target / "desc-relevance_regions.tsv").read_text().splitlines()
    assert regions[0].split("\t") == ["region", "index", "mean_relevance", "rank"]
    assert len(regions) == 1 + 34 and regions[1].split("\t")[3] == "1"
    report = (out / "anatcl" / "report.html").read_text()
    assert "age: relevance map" in report and "regions of highest mean relevance" in report


@pytest.mark.parametrize("options, why", [
    (["--features", "both"], "fitted on both features"),
    (["--harmonize", "combat"], "has a ComBat step"),
])
def test_probes_relevance_cannot_explain_are_refused(encoded, random_weights, tmp_path,
                                                     options, why):
    cohort, out = encoded
    code, stdout, stderr = anatcl_nipype(cohort.root, out, "group", "--target", "age",
                                         "--weights", random_weights, "--relevance-maps",
                                         *options, "-w", tmp_path / "work")
    assert code == 1
    assert why in stderr and "Fit such a probe (features 'embeddings')" in stderr
    assert "Fitting" not in stdout  # refused before the workflow runs
