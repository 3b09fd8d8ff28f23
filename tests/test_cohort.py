"""The SYNTHETIC CAT12-like cohort: layout, grid, determinism, planted effects, XML."""

import csv
import json
import math
import xml.etree.ElementTree as ET

import nibabel as nib
import numpy as np
import pytest

from anatcl_nipype.data import (
    DIAGNOSIS_ATROPHY,
    load_gm_template,
    load_synthetic_atlas,
    make_cat12_cohort,
    make_synthetic_atlas,
    mat2str,
    region_table,
    struct_to_xml,
    synthesize_gm_map,
)
from anatcl_nipype.data import cohort as cohort_module
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import sha256_file

CAT12_AFFINE = np.array([
    [-1.5, 0.0, 0.0, 90.0],
    [0.0, 1.5, 0.0, -126.0],
    [0.0, 0.0, 1.5, -72.0],
    [0.0, 0.0, 0.0, 1.0],
])
VOXEL_CM3 = 1.5 ** 3 / 1000
REGION_INDEX = {name: index for index, name in region_table()}

# Tolerance on one subject's recovered regional factor. The multiplicative noise
# (sd 0.05, FWHM 6 mm) averaged over a region of ~10,000 voxels leaves a region-mean
# error with sd 0.005-0.007 (measured over 40 noise draws for these regions); dividing
# by the nuisance factor (0.8-1.2) inflates it to at most ~0.009, so 0.04 is > 4 sd.
SUBJECT_TOLERANCE = 0.04
# The group difference averages three subjects per group: sd ~0.006, 0.03 is 5 sd.
GROUP_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("plain"), n_subjects=6, seed=3)


@pytest.fixture(scope="module")
def bids_cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("bids"), n_subjects=4, seed=5,
                             layout="bids")


def _map(cohort, subject):
    return np.asarray(nib.load(cohort.gm_map(subject)).dataobj)


def _atlas(cohort):
    return np.asarray(nib.load(cohort.atlas_image).dataobj)


def _numbers(text):
    """Parse MATLAB mat2str text (``[1;2 NaN]``, ``3``) into a flat float array."""
    return np.array([float(token) for token in text.strip("[]").replace(";", " ").split()])


def _recovered_factor(cohort, subject, region, age_rate):
    """Regional GM factor with head size, site and age divided out (ground truth)."""
    truth = cohort.ground_truth
    person = truth["subjects"][subject]
    site = truth["sites"][person["site"]]
    in_region = _atlas(cohort) == REGION_INDEX[region]
    template = truth["gm_scale"] * load_gm_template()
    observed = _map(cohort, subject)[in_region].mean() / template[in_region].mean()
    nuisance = (site["scale"] * person["tiv"] / truth["tiv_reference_cm3"]
                * (1 - age_rate * (person["age"] - truth["age_reference"]) / 10))
    return (observed - site["offset"]) / nuisance


def _relative_files(root):
    return {str(path.relative_to(root)): sha256_file(path)
            for path in sorted(root.rglob("*")) if path.is_file()}


# -- layout and grid ----------------------------------------------------------------


def test_plain_layout_has_cat12_files(cohort):
    root = cohort.root
    assert cohort.subjects == ("sub-01", "sub-02", "sub-03", "sub-04", "sub-05", "sub-06")
    assert cohort.gm_map("sub-01") == root / "sub-01" / "mri" / "mwp1sub-01_T1w.nii"
    assert cohort.roi_xml("sub-01") == root / "sub-01" / "label" / "catROI_sub-01_T1w.xml"
    assert cohort.surface_roi_xml("sub-01") == root / "sub-01/label/catROIs_sub-01_T1w.xml"
    assert cohort.report_xml("sub-01") == root / "sub-01" / "report" / "cat_sub-01_T1w.xml"
    for subject in cohort.subjects:
        for path in (cohort.gm_map(subject), cohort.roi_xml(subject),
                     cohort.surface_roi_xml(subject), cohort.report_xml(subject)):
            assert path.is_file(), path
    for name in ("participants.tsv", "participants.json", "ground_truth.json",
                 "atlas/atlas-synthetic_dseg.nii.gz", "atlas/atlas-synthetic_dseg.tsv"):
        assert (root / name).is_file(), name
    assert not list(root.rglob("*.tmp"))


def test_bids_layout_writes_derivatives(bids_cohort):
    root = bids_cohort.root
    anat = root / "derivatives" / "CAT12.9" / "sub-02" / "anat"
    assert bids_cohort.gm_map("sub-02") == anat / "mri" / "mwp1sub-02_T1w.nii"
    for path in (anat / "mri" / "mwp1sub-02_T1w.nii", anat / "label" / "catROI_sub-02_T1w.xml",
                 anat / "label" / "catROIs_sub-02_T1w.xml",
                 anat / "report" / "cat_sub-02_T1w.xml", root / "participants.tsv",
                 root / "ground_truth.json", root / "dataset_description.json"):
        assert path.is_file(), path
    description = json.loads((root / "derivatives/CAT12.9/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert "SYNTHETIC" in description["GeneratedBy"][0]["Description"]
    assert not (root / "sub-01").exists()
    assert len(bids_cohort.gm_maps) == 4


def test_gm_maps_are_on_the_cat12_grid(cohort, bids_cohort):
    for subject_cohort in (cohort, bids_cohort):
        for path in subject_cohort.gm_maps:
            image = nib.load(path)
            assert image.shape == (121, 145, 121)
            np.testing.assert_array_equal(image.affine, CAT12_AFFINE)
            assert image.get_data_dtype() == np.float32
            data = np.asarray(image.dataobj)
            assert data.dtype == np.float32
            assert np.isfinite(data).all()
            assert data.min() == 0.0  # background stays exactly 0
            assert 0.5 < data.max() < 1.5


# -- determinism --------------------------------------------------------------------


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path):
    first = make_cat12_cohort(tmp_path / "a", n_subjects=3, seed=11)
    again = make_cat12_cohort(tmp_path / "b", n_subjects=3, seed=11)
    other = make_cat12_cohort(tmp_path / "c", n_subjects=3, seed=12)
    first_hashes = _relative_files(first.root)
    assert len(first_hashes) == 5 + 3 * 4
    assert first_hashes == _relative_files(again.root)
    other_hashes = _relative_files(other.root)
    for subject in first.subjects:
        name = f"{subject}/mri/mwp1{subject}_T1w.nii"
        assert first_hashes[name] != other_hashes[name]
    assert first_hashes["participants.tsv"] != other_hashes["participants.tsv"]
    # The atlas does not depend on the seed.
    atlas = "atlas/atlas-synthetic_dseg.nii.gz"
    assert first_hashes[atlas] == other_hashes[atlas]


# -- the planted signal -------------------------------------------------------------


def test_noise_free_map_follows_the_documented_model():
    participant = {"age": 60.0, "tiv": 1650.0, "severity": 0.8}
    site = {"scale": 1.05, "offset": 0.02}
    gm = synthesize_gm_map(participant, site, 0.0, np.random.default_rng(0))
    template = load_gm_template()
    labels = load_synthetic_atlas()
    brain = template > 0.05
    factor = gm[brain] / (0.7 * template[brain])
    in_region = labels[brain] == REGION_INDEX["lMedialTemporal"]
    # 1.05 * 1650/1500 * (1 - 0.02 * 4) * (1 - 0.20 * 0.8) + 0.02
    np.testing.assert_allclose(factor[in_region], 1.05 * 1.1 * 0.92 * 0.84 + 0.02, rtol=1e-5)
    in_frontal = labels[brain] == REGION_INDEX["rSuperiorFrontal"]
    np.testing.assert_allclose(factor[in_frontal], 1.05 * 1.1 * (1 - 0.045 * 4) + 0.02,
                               rtol=1e-5)
    outside = labels[brain] == 0
    np.testing.assert_allclose(factor[outside], 1.05 * 1.1 * 0.92 + 0.02, rtol=1e-5)


@pytest.mark.parametrize("region", sorted(DIAGNOSIS_ATROPHY))
def test_patients_lose_the_planted_fraction_in_diagnosis_regions(cohort, region):
    planted = DIAGNOSIS_ATROPHY[region]
    subjects = cohort.ground_truth["subjects"]
    factors = {s: _recovered_factor(cohort, s, region, 0.02) for s in cohort.subjects}
    for subject, factor in factors.items():
        expected = 1 - planted * subjects[subject]["severity"]
        assert factor == pytest.approx(expected, abs=SUBJECT_TOLERANCE), subject
    patients = [s for s in cohort.subjects if subjects[s]["diagnosis"] == "AD"]
    controls = [s for s in cohort.subjects if subjects[s]["diagnosis"] == "CN"]
    loss = np.mean([factors[s] for s in controls]) - np.mean([factors[s] for s in patients])
    mean_severity = np.mean([subjects[s]["severity"] for s in patients])
    assert loss == pytest.approx(planted * mean_severity, abs=GROUP_TOLERANCE)
    assert 0.75 * planted - GROUP_TOLERANCE < loss < 1.25 * planted + GROUP_TOLERANCE


def test_unaffected_region_shows_no_diagnosis_effect(cohort):
    for subject in cohort.subjects:
        factor = _recovered_factor(cohort, subject, "lOccipital", 0.02)
        assert factor == pytest.approx(1.0, abs=SUBJECT_TOLERANCE)


@pytest.mark.parametrize("region, rate", [("lSuperiorFrontal", 0.045),
                                          ("rInferiorFrontal", 0.045),
                                          ("lOccipital", 0.02)])
def test_age_slope_is_recovered(cohort, region, rate):
    ages = [cohort.ground_truth["subjects"][s]["age"] for s in cohort.subjects]
    factors = [_recovered_factor(cohort, s, region, 0.0) for s in cohort.subjects]
    fit = np.polyfit(ages, factors, 1)
    # Noise sd ~0.007 per subject over ages spanning ~45 years: slope sd ~0.002/decade.
    assert 10 * fit[0] == pytest.approx(-rate, abs=0.01)
    assert np.polyval(fit, 20.0) == pytest.approx(1.0, abs=0.03)  # no loss at age 20


def test_grey_matter_falls_with_age_without_using_the_ground_truth(cohort):
    atlas = _atlas(cohort)
    frontal = atlas == REGION_INDEX["lSuperiorFrontal"]
    occipital = atlas == REGION_INDEX["lOccipital"]
    ratios, ages = [], []
    with open(cohort.participants_tsv) as stream:
        for row in csv.DictReader(stream, delimiter="\t"):
            gm = _map(cohort, row["participant_id"])
            ratios.append(gm[frontal].mean() / gm[occipital].mean())
            ages.append(float(row["age"]))
    assert np.corrcoef(ages, ratios)[0, 1] < -0.9


# -- XML files ----------------------------------------------------------------------


def test_volume_roi_xml_matches_the_written_map_and_atlas(cohort):
    atlas = _atlas(cohort)
    with open(cohort.atlas_table) as stream:
        table = list(csv.DictReader(stream, delimiter="\t"))
    assert list(table[0]) == ["index", "name"]
    for subject in cohort.subjects:
        root = ET.parse(cohort.roi_xml(subject)).getroot()
        assert root.tag == "S"
        assert [child.tag for child in root] == ["synthetic"]
        roi = root.find("synthetic")
        assert [child.tag for child in roi] == ["ids", "names", "comments", "version", "data"]
        ids = _numbers(roi.findtext("ids"))
        names = [item.text for item in roi.find("names")]
        assert ids.tolist() == [float(row["index"]) for row in table]
        assert names == [row["name"] for row in table]
        vgm = _numbers(roi.findtext("data/Vgm"))
        gm = _map(cohort, subject).astype(np.float64)
        expected = [gm[atlas == index].sum() * VOXEL_CM3 for index in ids]
        np.testing.assert_allclose(vgm, expected, rtol=1e-12)
        for measure in ("Vwm", "Vcsf"):
            values = _numbers(roi.findtext(f"data/{measure}"))
            assert values.shape == ids.shape
            assert (values >= 0).all() and values.sum() > 0


def test_report_xml_holds_tiv_and_tissue_volumes(cohort):
    for subject in cohort.subjects:
        root = ET.parse(cohort.report_xml(subject)).getroot()
        assert [child.tag for child in root] == sorted(child.tag for child in root)
        tiv = float(root.findtext("subjectmeasures/vol_TIV"))
        assert tiv == pytest.approx(cohort.ground_truth["subjects"][subject]["tiv"], rel=1e-14)
        absolute = _numbers(root.findtext("subjectmeasures/vol_abs_CGW"))
        relative = _numbers(root.findtext("subjectmeasures/vol_rel_CGW"))
        assert absolute.shape == relative.shape == (5,)
        gm_cm3 = _map(cohort, subject).sum(dtype=np.float64) * VOXEL_CM3
        assert absolute[1] == pytest.approx(gm_cm3, rel=1e-12)
        assert absolute.sum() == pytest.approx(tiv, rel=1e-12)
        np.testing.assert_allclose(relative, absolute / tiv, rtol=1e-12)
        assert (absolute[:4] > 0).all()
        assert 1.0 <= float(root.findtext("qualityratings/IQR")) <= 3.0


def test_surface_roi_xml_has_desikan_thickness_with_planted_thinning(cohort):
    truth = cohort.ground_truth
    bases = {name: base for name, _rgb, base in cohort_module.DK40_REGIONS}
    for subject in cohort.subjects:
        atlas = ET.parse(cohort.surface_roi_xml(subject)).getroot().find("aparc_DK40")
        names = [item.text for item in atlas.find("names")]
        assert names[:4] == ["lunknown", "runknown", "lbankssts", "rbankssts"]
        assert names[-2:] == ["linsula", "rinsula"]
        assert len(names) == 72
        assert _numbers(atlas.findtext("ids"))[2] == 25 + 100 * 256 + 40 * 65536  # bankssts
        text = atlas.findtext("data/thickness")
        assert ";" not in text  # a row vector, as CAT12 writes thickness
        thickness = dict(zip(names, _numbers(text)))
        for hemisphere in "lr":
            assert math.isnan(thickness[f"{hemisphere}unknown"])
            assert math.isnan(thickness[f"{hemisphere}corpuscallosum"])
        finite = [value for value in thickness.values() if not math.isnan(value)]
        assert len(finite) == 68 and 1.0 < min(finite) and max(finite) < 4.5
        person = truth["subjects"][subject]
        aging = 1 - 0.02 * (person["age"] - 20) / 10
        for region, thinning in truth["thickness"]["diagnosis_thinning"].items():
            expected = bases[region] * aging * (1 - thinning * person["severity"])
            # noise sd 0.05 mm: 0.25 mm is 5 sd
            assert thickness[f"l{region}"] == pytest.approx(expected, abs=0.25)


# -- participants -------------------------------------------------------------------


def test_participants_table_is_balanced_and_described(cohort):
    with open(cohort.participants_tsv) as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    assert list(rows[0]) == ["participant_id", "age", "sex", "site", "diagnosis", "mmse"]
    assert [row["participant_id"] for row in rows] == list(cohort.subjects)
    assert sorted(row["diagnosis"] for row in rows) == ["AD"] * 3 + ["CN"] * 3
    assert sorted(row["site"] for row in rows) == ["site1"] * 3 + ["site2"] * 3
    assert {row["sex"] for row in rows} <= {"F", "M"}
    assert all(20 <= float(row["age"]) <= 85 for row in rows)
    for row in rows:
        person = cohort.ground_truth["subjects"][row["participant_id"]]
        mmse = int(row["mmse"])
        assert mmse == person["mmse"]
        # MMSE = 29 - 10 * severity + noise (sd 1.5), rounded and clipped to 0..30
        assert mmse == pytest.approx(29 - 10 * person["severity"], abs=6)
        assert (person["severity"] > 0) == (row["diagnosis"] == "AD")
    sidecar = json.loads((cohort.root / "participants.json").read_text())
    assert sorted(sidecar) == ["age", "diagnosis", "mmse", "sex", "site"]
    on_disk = json.loads(cohort.ground_truth_json.read_text())
    assert on_disk == cohort.ground_truth
    assert "SYNTHETIC" in on_disk["description"]


@pytest.mark.parametrize("options, message", [
    ({"layout": "flat"}, "layout='flat' is not known"),
    ({"n_subjects": 1}, "at least 2 subjects"),
    ({"n_sites": 0}, "n_sites=0"),
    ({"noise_sd": 0.5}, "noise_sd=0.5"),
])
def test_bad_options_are_refused(tmp_path, options, message):
    with pytest.raises(AnatCLError, match=message):
        make_cat12_cohort(tmp_path, **{"n_subjects": 4, **options})
    assert not list(tmp_path.iterdir())


# -- the synthetic atlas ------------------------------------------------------------


def test_synthetic_atlas_labels_grey_matter_by_hemisphere():
    labels = load_synthetic_atlas()
    template = load_gm_template()
    table = region_table()
    assert len(table) == 34 and len({name for _, name in table}) == 34
    assert sorted(np.unique(labels).tolist()) == list(range(35))
    assert (template[labels > 0] > 0.1).all()
    x_mm = 90 - 1.5 * np.arange(121)  # first axis of the CAT12 grid runs right to left
    left_columns = np.nonzero(np.isin(labels, [i for i, n in table if n[0] == "l"]))[0]
    right_columns = np.nonzero(np.isin(labels, [i for i, n in table if n[0] == "r"]))[0]
    assert (x_mm[left_columns] < 0).all() and (x_mm[right_columns] >= 0).all()
    assert (labels == REGION_INDEX["lMedialTemporal"]).sum() > 5000


def test_synthetic_atlas_respects_box_priority():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-30.0, -30.0, -30.0]
    labels = make_synthetic_atlas(np.ones((3, 3, 3)), affine)
    # (-30, -30, -30) lies in the medial-temporal box, listed before the deep-grey box.
    assert labels[0, 0, 0] == REGION_INDEX["lMedialTemporal"]
    assert make_synthetic_atlas(np.zeros((3, 3, 3)), affine).max() == 0


# -- the CAT12 XML writer -----------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (1523.4, "1523.4"),
    (4.0, "4"),
    (-0.0, "0"),
    (1 / 3, "0.333333333333333"),
    (1.44319485407323e-05, "1.44319485407323e-05"),
    (float("nan"), "NaN"),
    (float("inf"), "Inf"),
    (np.array([4, 11, 23]), "[4;11;23]"),
    (np.array([[2.5, np.nan, 3]]), "[2.5 NaN 3]"),
    (np.array([[1, 2, 3], [4, 5, 6]]), "[1 2 3;4 5 6]"),
    (np.array([7.0]), "7"),
    (False, "[false]"),
])
def test_mat2str_follows_matlab(value, text):
    assert mat2str(value) == text


def test_struct_to_xml_sorts_top_level_keeps_nested_order_and_skips_empty():
    text = struct_to_xml({
        "zeta": {"ids": np.array([1, 2]), "names": ["a & b", "tab\there  x"], "data": {}},
        "alpha": "",
        "Beta": [np.array([[1.0, 2.0]]), {"inner": 1}],
    })
    assert text == (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<S>\n"
        "   <Beta>\n"
        "      <item>[1 2]</item>\n"
        "      <item>\n"
        "         <inner>1</inner>\n"
        "      </item>\n"
        "   </Beta>\n"
        "   <zeta>\n"
        "      <ids>[1;2]</ids>\n"
        "      <names>\n"
        "         <item>a &amp; b</item>\n"
        "         <item>tab here x</item>\n"
        "      </names>\n"
        "   </zeta>\n"
        "</S>\n"
    )


@pytest.mark.parametrize("struct, message", [
    ({"a": object()}, "cannot write a value of type object"),
    ({"a": np.zeros((2, 2, 2))}, "3-D array"),
    (["not", "a", "struct"], "holds a struct"),
])
def test_struct_to_xml_refuses_what_matlab_structs_cannot_hold(struct, message):
    with pytest.raises(AnatCLError, match=message):
        struct_to_xml(struct)
