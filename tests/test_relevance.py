"""Relevance maps: the probe composed on the encoder, captum attribution, files, memory.

Small volumes (24^3) go through the network directly so that the science tests take
seconds; one slow test runs the full CAT12 grid through the Nipype interface in a
subprocess and measures its peak memory.
"""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anatcl_nipype.encoder.runner import load_network
from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE, CROP_OFFSET
from anatcl_nipype.errors import AnatCLError, PredictionError
from anatcl_nipype.files import sha256_file
from anatcl_nipype.prediction import make_probe, save_probe
from anatcl_nipype.prediction.brain_age import BrainAgeRegressor
from anatcl_nipype.relevance import (
    GroupRelevance,
    attribute_volume,
    load_probe_score,
    probe_affine_map,
    region_relevance,
    select_score,
    write_relevance_map,
)

SIDE = 24
#: Maps whose relevance is averaged, and integrated-gradients steps, in the group tests.
N_GROUP, STEPS = 12, 4
N_SUBJECTS = 48
#: Patients lose this fraction of grey matter in the planted region (times a severity).
ATROPHY = 0.3
PLANTED_LABEL = 9
EMBEDDING_COLUMNS = [f"emb_{i:03d}" for i in range(512)]


@pytest.fixture(scope="module")
def cohort():
    """Small seeded maps where the diagnosis is driven only by atrophy in one cube."""
    rng = np.random.default_rng(0)
    shape = (SIDE,) * 3
    centred = np.indices(shape) - (SIDE - 1) / 2
    brain = np.sqrt((centred ** 2).sum(0)) < SIDE * 0.42
    template = gaussian_filter(brain.astype(float), 1.0) * (
        0.5 + 0.6 * gaussian_filter(rng.random(shape), 2))
    region = np.zeros(shape, bool)
    start, size = SIDE // 2, SIDE // 4  # a cube off the centre, inside the brain
    middle = slice(SIDE // 2 - size // 2, SIDE // 2 + size // 2)
    region[start:start + size, start:start + size, middle] = True
    diagnosis = np.array(["CN", "AD"] * (N_SUBJECTS // 2))
    maps = np.stack([_subject_map(template, region, dx == "AD", rng) for dx in diagnosis])
    atlas = np.where(brain, 1 + (centred[0] > 0) + 2 * (centred[1] > 0) + 4 * (centred[2] > 0), 0)
    atlas[region] = PLANTED_LABEL
    return {"maps": maps, "diagnosis": diagnosis, "brain": brain, "region": region,
            "atlas": atlas.astype(np.int16)}


def _subject_map(template, region, patient, rng):
    severity = rng.uniform(0.75, 1.25) if patient else 0.0
    noise = gaussian_filter(rng.normal(size=template.shape), 1.5)
    noise *= 0.05 / noise.std()
    volume = template * (1 - ATROPHY * severity * region) * (1 + noise) * rng.uniform(0.95, 1.05)
    return volume.astype(np.float32)


@pytest.fixture(scope="module")
def probe_file(cohort, random_weights, tmp_path_factory):
    """A diagnosis probe fitted with the package's code on the small maps' embeddings."""
    network, identity = load_network(random_weights, torch.device("cpu"))
    with torch.no_grad():
        embeddings = network(torch.from_numpy(cohort["maps"])[:, None]).numpy()
    probe = make_probe("classification").fit(embeddings, cohort["diagnosis"])
    path = tmp_path_factory.mktemp("probe") / "diagnosis.skops"
    save_probe(probe, path, {"task": "classification", "target": "diagnosis",
                             "n_train": N_SUBJECTS, "feature_source": {
                                 "columns": EMBEDDING_COLUMNS,
                                 "weights": {"descriptor": None, "fold": None,
                                             "sha256": identity["sha256"]}}})
    return path, probe, embeddings


@pytest.fixture(scope="module")
def score(probe_file, random_weights):
    return load_probe_score(probe_file[0], random_weights, target_class="AD")[0]


def group_relevance(score, maps, baseline):
    group = GroupRelevance()
    for volume in maps:
        group.add(attribute_volume(score, volume, baseline, steps=STEPS, internal_batch_size=STEPS))
    return group.mean()


@pytest.fixture(scope="module")
def relevance_from_mean(cohort, score):
    """Integrated gradients from the group mean map, averaged over N_GROUP participants."""
    maps = cohort["maps"]
    return group_relevance(score, maps[:N_GROUP], maps.mean(0))


def inside_over_outside(relevance, cohort):
    """Mean relevance in the planted region over the mean absolute relevance elsewhere in
    the brain (stricter than over the whole volume, whose background is 0)."""
    outside = cohort["brain"] & ~cohort["region"]
    return relevance[cohort["region"]].mean() / np.abs(relevance[outside]).mean()


def test_probe_score_equals_the_probes_decision_function(cohort, probe_file, score):
    _, probe, embeddings = probe_file
    with torch.no_grad():
        scores = score(torch.from_numpy(cohort["maps"][:6])[:, None]).numpy()[:, 0]
    # the probe's classes are sorted (AD, CN): the logit of AD is minus its decision function
    np.testing.assert_allclose(scores, -probe.decision_function(embeddings[:6]), rtol=1e-4,
                               atol=1e-4)


def test_affine_map_of_multiclass_and_brain_age_probes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5))
    multiclass = make_probe("classification", cs=[1.0], inner_cv=3).fit(
        X, np.array(["a", "b", "c"] * 20))
    weight, bias = probe_affine_map(multiclass)
    np.testing.assert_allclose(X @ weight.T + bias, multiclass.decision_function(X), atol=1e-10)
    age = 50 + 10 * X[:, 0] + rng.normal(0, 1, 60)
    brain_age = BrainAgeRegressor(make_probe("brain_age", alphas=[1.0])).fit(X, age)
    weight, bias = probe_affine_map(brain_age)
    np.testing.assert_allclose((X @ weight.T + bias)[:, 0], brain_age.predict(X), atol=1e-10)


def test_relevance_concentrates_in_the_planted_region(cohort, relevance_from_mean):
    assert inside_over_outside(relevance_from_mean, cohort) >= 3


def test_zero_baseline_does_not_single_out_the_planted_region(cohort, score,
                                                              relevance_from_mean):
    """Why the group mean map is the default baseline: from zeros, integrated gradients
    explain the whole brain against no brain."""
    maps = cohort["maps"]
    from_zeros = group_relevance(score, maps[:N_GROUP], np.zeros_like(maps[0]))
    assert inside_over_outside(from_zeros, cohort) < 1 < 3 <= inside_over_outside(
        relevance_from_mean, cohort)


def test_occlusion_with_a_region_sized_window_finds_the_region(cohort, score):
    maps = cohort["maps"]
    group = GroupRelevance()
    for volume in maps[:2]:
        group.add(attribute_volume(score, volume, maps.mean(0), method="occlusion",
                                   window=SIDE // 4, internal_batch_size=16))
    assert inside_over_outside(group.mean(), cohort) >= 3


def test_integrated_gradients_sum_to_the_score_difference(cohort, score):
    maps = cohort["maps"]
    result = attribute_volume(score, maps[1], maps.mean(0), steps=32, internal_batch_size=32)
    difference = result.score - result.baseline_score
    assert abs(difference) > 1
    assert abs(result.delta) < 0.05 * abs(difference)


def test_relevance_is_deterministic(cohort, score):
    maps = cohort["maps"]
    first = attribute_volume(score, maps[3], maps.mean(0), steps=4, internal_batch_size=2)
    second = attribute_volume(score, maps[3], maps.mean(0), steps=4, internal_batch_size=2)
    np.testing.assert_array_equal(first.relevance, second.relevance)


def test_region_table_ranks_the_planted_region_first(cohort, relevance_from_mean):
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    relevance = nib.Nifti1Image(relevance_from_mean, affine)
    rows = region_relevance(relevance, nib.Nifti1Image(cohort["atlas"], affine))
    assert [row[1] for row in rows[:1]] == [PLANTED_LABEL]
    assert [row[3] for row in rows] == list(range(1, 10))
    assert rows[0][0] == f"ROI{PLANTED_LABEL:03d}"


def test_relevance_map_is_written_on_the_cat12_grid(tmp_path):
    cropped = np.arange(np.prod((121, 128, 121)), dtype=np.float32).reshape(121, 128, 121)
    image, sidecar = write_relevance_map(tmp_path / "sub-01_desc-relevance_statmap", cropped,
                                         {"method": "integrated_gradients"})
    loaded = nib.load(image)
    assert loaded.shape == CAT12_SHAPE
    np.testing.assert_allclose(loaded.affine, CAT12_AFFINE)
    data = np.asarray(loaded.dataobj)
    np.testing.assert_array_equal(data[:, CROP_OFFSET:CROP_OFFSET + 128], cropped)
    assert not data[:, :CROP_OFFSET].any() and not data[:, CROP_OFFSET + 128:].any()
    assert json.loads(sidecar.read_text()) == {"method": "integrated_gradients"}


def test_a_probe_for_other_weights_is_refused(probe_file, tmp_path):
    from anatcl_nipype.encoder.checkpoint import write_random_checkpoint

    other = write_random_checkpoint(tmp_path / "other.pth", seed=99)
    with pytest.raises(PredictionError, match="sha256"):
        load_probe_score(probe_file[0], other)


def test_a_probe_on_other_features_is_refused(probe_file, random_weights, tmp_path):
    _, probe, embeddings = probe_file
    path = tmp_path / "mixed.skops"
    network, identity = load_network(random_weights, torch.device("cpu"))
    save_probe(probe, path, {"task": "classification", "target": "diagnosis", "n_train": 48,
                             "feature_source": {"columns": EMBEDDING_COLUMNS[:-1] + ["Vgm"],
                                                "weights": {"sha256": identity["sha256"]}}})
    with pytest.raises(PredictionError, match="not on exactly the AnatCL embedding"):
        load_probe_score(path, random_weights)


def test_unknown_method_is_refused(cohort, score):
    with pytest.raises(AnatCLError, match="unknown relevance method 'saliency'"):
        attribute_volume(score, cohort["maps"][0], cohort["maps"][1], method="saliency")


#: Run in a fresh interpreter: the interface on full-size maps, then its peak memory.
FULL_GRID_SCRIPT = """
import json, resource, sys
from nipype import Node
from anatcl_nipype.interfaces.relevance import ProbeRelevanceMaps
in_files, model, weights, atlas, table, out = json.loads(sys.argv[1])
node = Node(ProbeRelevanceMaps(in_files=in_files, model=model, weights=weights, atlas=atlas,
                               label_table=table, steps=2), name="relevance", base_dir=out)
outputs = node.run().outputs.get()
outputs["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(outputs))
"""


@pytest.mark.slow
def test_full_grid_maps_through_the_interface_in_under_3_gib(random_weights, tmp_path):
    from anatcl_nipype.data.cohort import make_cat12_cohort
    from anatcl_nipype.encoder import AnatCLEncoder

    cohort = make_cat12_cohort(tmp_path / "cohort", n_subjects=4, seed=1)
    embeddings = AnatCLEncoder(weights=random_weights, device="cpu").encode(cohort.gm_maps)
    ages = [cohort.ground_truth["subjects"][s]["age"] for s in cohort.subjects]
    identity = load_network(random_weights, torch.device("cpu"))[1]
    model = tmp_path / "age.skops"
    save_probe(make_probe("regression", alphas=[1.0]).fit(embeddings, ages), model,
               {"task": "regression", "target": "age", "n_train": 4, "feature_source": {
                   "columns": EMBEDDING_COLUMNS, "weights": {"sha256": identity["sha256"]}}})
    arguments = json.dumps([[str(p) for p in cohort.gm_maps[:2]], str(model), str(random_weights),
                            str(cohort.atlas_image), str(cohort.atlas_table), str(tmp_path)])
    run = subprocess.run([sys.executable, "-c", FULL_GRID_SCRIPT, arguments], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    outputs = json.loads(run.stdout.strip().splitlines()[-1])
    assert outputs["peak_rss_kib"] < 3 * 1024 ** 2
    assert outputs["participant_ids"] == ["sub-01", "sub-02"]
    image = nib.load(outputs["out_files"][0])
    assert image.shape == CAT12_SHAPE and np.allclose(image.affine, CAT12_AFFINE)
    assert image.get_filename().endswith("sub-01_desc-relevance_statmap.nii.gz")
    data = np.asarray(image.dataobj)
    assert data[:, CROP_OFFSET:CROP_OFFSET + 128].any() and not data[:, :CROP_OFFSET].any()
    sidecar = json.loads(open(outputs["out_jsons"][0]).read())
    assert sidecar["method"] == "integrated_gradients" and sidecar["steps"] == 2
    assert sidecar["baseline"] == {"kind": "group_mean", "n_maps": 2}
    assert sidecar["probe"]["file"] == str(model.resolve())
    assert sidecar["probe"]["sha256"] == sha256_file(model)
    assert sidecar["weights"]["sha256"] == identity["sha256"]
    assert sidecar["passes_per_map"] == {"forward": 3, "backward": 2}
    assert sidecar["score"] == pytest.approx(sidecar["baseline_score"] + data.sum(dtype=np.float64)
                                             - sidecar["completeness_delta"], abs=1e-3)
    group = json.loads(open(outputs["group_json"]).read())
    assert group["participants"] == ["sub-01", "sub-02"]
    header, *rows = open(outputs["region_tsv"]).read().splitlines()
    assert header == "region\tindex\tmean_relevance\trank"
    assert [int(row.split("\t")[3]) for row in rows] == list(range(1, len(rows) + 1))


def test_probes_that_are_not_affine_on_the_embedding_are_refused():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    X = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(PredictionError, match="has a PCA step"):
        probe_affine_map(make_pipeline(PCA(2), Ridge()).fit(X, X[:, 0]))


def test_a_multiclass_probe_needs_the_class_to_explain():
    card = {"task": "classification", "classes": ["CN", "MCI", "AD"], "target": "dx"}
    with pytest.raises(PredictionError, match="say which class's logit"):
        select_score(np.eye(3), np.zeros(3), card)
    weight, bias, what = select_score(np.eye(3), np.arange(3.0), card, target_class="MCI")
    assert weight.tolist() == [[0.0, 1.0, 0.0]] and bias.tolist() == [1.0]
    assert what == "logit of class 'MCI' (vs the others) of dx"
