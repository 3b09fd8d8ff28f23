"""The synthetic cohort's CAT12-like XML, read back by the regional readers, gives its numbers."""

import math

import nibabel as nib
import numpy as np
import pytest

from anatcl_nipype.data import cohort as cohort_module
from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.regional import (
    atlas_gm_volumes,
    read_cat12_report,
    read_cat12_roi_xml,
    read_label_table,
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=4)


def test_volume_rois_equal_the_written_maps(cohort):
    table_ids, table_names = read_label_table(cohort.atlas_table)
    labels = np.asarray(nib.load(cohort.atlas_image).dataobj)
    counts = np.bincount(labels.ravel(), minlength=len(table_ids) + 1)[1:]
    for subject in cohort.subjects:
        rois = read_cat12_roi_xml(cohort.roi_xml(subject))
        assert list(rois) == ["synthetic"]
        synthetic = rois["synthetic"]
        assert synthetic.ids == table_ids == tuple(range(1, 35))
        assert synthetic.names == table_names
        assert list(synthetic.measures) == ["Vcsf", "Vgm", "Vwm"]
        assert synthetic.units == {"Vcsf": "cm3", "Vgm": "cm3", "Vwm": "cm3"}
        recomputed = atlas_gm_volumes(cohort.gm_map(subject), cohort.atlas_image,
                                      cohort.atlas_table)
        np.testing.assert_allclose(synthetic.measures["Vgm"], recomputed.measures["Vgm"],
                                   rtol=1e-13)
        tiv = cohort.ground_truth["subjects"][subject]["tiv"]
        region_cm3 = counts * 1.5 ** 3 / 1000 * tiv / cohort_module.TIV_REFERENCE_CM3
        np.testing.assert_allclose(synthetic.measures["Vwm"], 0.25 * region_cm3, rtol=1e-13)
        expected_csf = np.clip(region_cm3 - recomputed.measures["Vgm"] - 0.25 * region_cm3, 0,
                               None)
        np.testing.assert_allclose(synthetic.measures["Vcsf"], expected_csf, rtol=1e-12,
                                   atol=1e-12)
        assert synthetic.measures["Vgm"].min() > 1.0  # every box holds grey matter


def test_report_equals_the_cohort_numbers(cohort):
    for subject in cohort.subjects:
        truth = cohort.ground_truth["subjects"][subject]
        report = read_cat12_report(cohort.report_xml(subject))
        gm = nib.load(cohort.gm_map(subject)).get_fdata(dtype=np.float64)
        assert report["tiv_cm3"] == pytest.approx(truth["tiv"], rel=1e-14)
        assert report["quality_ratings"]["IQR"] == pytest.approx(
            (1.5 + truth["noise_rating"]) / 2, rel=1e-14)
        assert report["abs_volumes_cm3"]["GM"] == pytest.approx(gm.sum() * 1.5 ** 3 / 1000,
                                                                rel=1e-12)
        assert sum(report["abs_volumes_cm3"].values()) == pytest.approx(truth["tiv"], rel=1e-12)
        assert report["rel_volumes"]["GM"] == pytest.approx(
            report["abs_volumes_cm3"]["GM"] / truth["tiv"], rel=1e-13)
        assert report["cat_version"] == "CAT12.9"


def test_surface_rois_parse_with_the_medial_wall_as_nan(cohort):
    expected_names = tuple(hemi + name for name, _, _ in cohort_module.DK40_REGIONS
                           for hemi in "lr")
    for subject in cohort.subjects:
        truth = cohort.ground_truth["subjects"][subject]
        dk40 = read_cat12_roi_xml(cohort.surface_roi_xml(subject))["aparc_DK40"]
        assert dk40.n_regions == 72 and dk40.names == expected_names
        red, green, blue = cohort_module.DK40_REGIONS[35][1]  # insula, both hemispheres
        assert dk40.ids[70:] == (red + 256 * green + 65536 * blue,) * 2
        assert dk40.units == {"thickness": "mm"}
        thickness = dk40.measures["thickness"]
        nan_names = [name for name, value in zip(dk40.names, thickness) if math.isnan(value)]
        assert nan_names == ["lunknown", "runknown", "lcorpuscallosum", "rcorpuscallosum"]
        decades = (truth["age"] - cohort_module.AGE_REFERENCE) / 10
        for name, value in zip(dk40.names, thickness):
            base = dict((n, b) for n, _, b in cohort_module.DK40_REGIONS)[name[1:]]
            if base is None:
                continue
            thinning = cohort_module.DIAGNOSIS_THINNING.get(name[1:], 0) * truth["severity"]
            expected = base * (1 - cohort_module.THICKNESS_AGE_LOSS_PER_DECADE * decades) \
                * (1 - thinning)
            assert abs(value - expected) < 5 * cohort_module.THICKNESS_NOISE_SD_MM
