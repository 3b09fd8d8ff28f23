"""Grey-matter volume per atlas label and label tables: exact sums on a synthetic volume."""

import math

import nibabel as nib
import numpy as np
import pytest

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional import atlas_gm_volumes, read_label_table

VOXEL_MM3 = 1.5 ** 3
AFFINE = np.array([[-1.5, 0, 0, 7.5], [0, 1.5, 0, -9.0], [0, 0, 1.5, -6.0], [0, 0, 0, 1]])
SHAPE = (10, 12, 10)


def _synthetic():
    """Labels 1..3 with known GM content; background (0) holds GM that must not count."""
    labels = np.zeros(SHAPE, dtype=np.int16)
    gm = np.full(SHAPE, 0.9, dtype=np.float32)  # background GM, excluded
    labels[0:5] = 1
    gm[0:5, :6], gm[0:5, 6:] = 0.5, 1.0  # 300 voxels of 0.5 and 300 of 1.0: sum 450
    labels[5:10, 0:6] = 2
    gm[5:10, 0:6] = 0.25  # 300 voxels: sum 75
    labels[5:10, 6:12, 0:5] = 3
    gm[5:10, 6:12, 0:5] = 0.75  # 150 voxels: sum 112.5
    return nib.Nifti1Image(gm, AFFINE), nib.Nifti1Image(labels, AFFINE)


EXPECTED_VGM = [450 * VOXEL_MM3 / 1000, 75 * VOXEL_MM3 / 1000, 112.5 * VOXEL_MM3 / 1000]


def test_volumes_and_mean_density_per_label():
    gm, atlas = _synthetic()
    rm = atlas_gm_volumes(gm, atlas, atlas_name="toy")
    assert (rm.atlas, rm.ids, rm.names) == ("toy", (1, 2, 3), ("ROI001", "ROI002", "ROI003"))
    assert rm.measures["Vgm"].tolist() == pytest.approx(EXPECTED_VGM, rel=1e-12)
    assert rm.measures["Vgm"].tolist() == pytest.approx([1.51875, 0.253125, 0.3796875])
    assert rm.measures["mean_gm"].tolist() == pytest.approx([0.75, 0.25, 0.75], rel=1e-12)
    assert rm.units == {"Vgm": "cm3", "mean_gm": ""}


def test_label_table_order_and_label_absent_from_image(tmp_path):
    gm, atlas = _synthetic()
    table = tmp_path / "toy_dseg.tsv"
    table.write_text("index\tname\n3\tlAmy\n9\tlAbsent\n1\tlHip\n0\tbackground\n")
    rm = atlas_gm_volumes(gm, atlas, label_table=table, atlas_name="toy")
    assert rm.ids == (3, 9, 1)  # table order; background 0 left out; label 2 not listed
    assert rm.names == ("lAmy", "lAbsent", "lHip")
    vgm, mean_gm = rm.measures["Vgm"], rm.measures["mean_gm"]
    assert vgm.tolist() == pytest.approx([EXPECTED_VGM[2], 0.0, EXPECTED_VGM[0]], rel=1e-12)
    assert vgm[1] == 0.0 and math.isnan(mean_gm[1])
    assert mean_gm[[0, 2]].tolist() == pytest.approx([0.75, 0.75], rel=1e-12)


def test_paths_are_loaded_and_atlas_named_after_its_file(tmp_path):
    gm, atlas = _synthetic()
    nib.save(gm, tmp_path / "mwp1sub-01_T1w.nii")
    nib.save(atlas, tmp_path / "toyatlas.nii.gz")
    rm = atlas_gm_volumes(tmp_path / "mwp1sub-01_T1w.nii", str(tmp_path / "toyatlas.nii.gz"),
                          label_table=((2, 1), ("b", "a")))
    assert rm.atlas == "toyatlas"
    assert rm.source == str(tmp_path / "mwp1sub-01_T1w.nii")
    assert rm.measures["Vgm"].tolist() == pytest.approx(EXPECTED_VGM[1::-1], rel=1e-12)


def test_atlas_on_another_grid_is_refused_unless_resampled():
    gm, atlas = _synthetic()
    padded = np.pad(np.asarray(atlas.dataobj), 1)  # one more voxel on every side
    shifted_affine = AFFINE.copy()
    shifted_affine[:3, 3] -= AFFINE[:3, :3] @ np.ones(3)  # origin one voxel earlier
    other_grid = nib.Nifti1Image(padded, shifted_affine)
    with pytest.raises(RegionalError, match=r"the atlas is on another grid \(shape "
                       r"\(12, 14, 12\).*than the grey-matter map <in-memory grey-matter "
                       r"map> \(shape \(10, 12, 10\).*pass resample=True"):
        atlas_gm_volumes(gm, other_grid)
    rm = atlas_gm_volumes(gm, other_grid, resample=True)
    assert rm.ids == (1, 2, 3)
    assert rm.measures["Vgm"].tolist() == pytest.approx(EXPECTED_VGM, rel=1e-12)


def test_resampling_a_coarser_atlas_assigns_nearest_labels():
    gm, _ = _synthetic()
    coarse = np.zeros((5, 6, 5), dtype=np.int16)
    coarse[:, 3:] = 4  # 3 mm voxels: second half of axis 1 is label 4
    coarse_affine = AFFINE.copy()
    coarse_affine[:3, :3] *= 2
    coarse_affine[:3, 3] += AFFINE[:3, :3] @ np.full(3, 0.5)  # same field of view
    rm = atlas_gm_volumes(gm, nib.Nifti1Image(coarse, coarse_affine), resample=True)
    assert rm.ids == (4,)
    # label 4 covers GM voxels with j >= 6: 300 of 1.0 + 150 of 0.75 + 150 of 0.9 (bg)
    assert rm.measures["Vgm"][0] == pytest.approx((300 + 112.5 + 135) * VOXEL_MM3 / 1000)


def test_non_integer_atlas_is_refused():
    gm, atlas = _synthetic()
    fractional = np.asarray(atlas.dataobj).astype(np.float32) * 1.5
    with pytest.raises(RegionalError, match="the atlas has non-integer values"):
        atlas_gm_volumes(gm, nib.Nifti1Image(fractional, AFFINE))


def test_float_atlas_with_whole_numbers_is_accepted():
    gm, atlas = _synthetic()
    whole = np.asarray(atlas.dataobj).astype(np.float32)
    rm = atlas_gm_volumes(gm, nib.Nifti1Image(whole, AFFINE))
    assert rm.measures["Vgm"].tolist() == pytest.approx(EXPECTED_VGM, rel=1e-12)


def test_negative_labels_are_refused():
    gm, atlas = _synthetic()
    negative = np.asarray(atlas.dataobj).copy()
    negative[0, 0, 0] = -1
    with pytest.raises(RegionalError, match="the atlas has negative labels"):
        atlas_gm_volumes(gm, nib.Nifti1Image(negative, AFFINE))


def test_very_large_label_values_are_counted():
    gm, atlas = _synthetic()
    big = np.asarray(atlas.dataobj).astype(np.int32)
    big[big == 3] = 5_000_000
    rm = atlas_gm_volumes(gm, nib.Nifti1Image(big, AFFINE), label_table=((5_000_000, 7),
                                                                          ("big", "none")))
    assert rm.ids == (5_000_000, 7)
    assert rm.measures["Vgm"].tolist() == pytest.approx([EXPECTED_VGM[2], 0.0], rel=1e-12)


def test_gm_map_with_nan_is_refused():
    gm, atlas = _synthetic()
    data = np.asarray(gm.dataobj).copy()
    data[3, 3, 3] = np.nan
    with pytest.raises(RegionalError, match="the grey-matter map has NaN voxels"):
        atlas_gm_volumes(nib.Nifti1Image(data, AFFINE), atlas)


def test_4d_gm_map_with_one_volume_is_accepted():
    gm, atlas = _synthetic()
    one_volume = nib.Nifti1Image(np.asarray(gm.dataobj)[..., np.newaxis], AFFINE)
    rm = atlas_gm_volumes(one_volume, atlas)
    assert rm.measures["Vgm"].tolist() == pytest.approx(EXPECTED_VGM, rel=1e-12)


def test_4d_gm_map_is_refused():
    _, atlas = _synthetic()
    four_d = nib.Nifti1Image(np.zeros(SHAPE + (2,), dtype=np.float32), AFFINE)
    with pytest.raises(RegionalError, match=r"a 4D image of shape \(10, 12, 10, 2\)"):
        atlas_gm_volumes(four_d, atlas)


def test_unreadable_file_is_named(tmp_path):
    _, atlas = _synthetic()
    with pytest.raises(RegionalError, match="missing.nii: cannot read the grey-matter map"):
        atlas_gm_volumes(tmp_path / "missing.nii", atlas)


def test_label_table_formats(tmp_path):
    tables = {
        "dseg.tsv": "index\tname\tabbreviation\n1\tLeft Hippocampus\tlHip\n2\tRight Hip\trHip\n",
        "cat12.csv": "ROIid;ROIabbr;ROIname;Vgm;Vwm;Vcsf;ROIbase\n"
                     "165;lHip;Left Hippocampus;1;0;0;\n166;rHip;Right Hippocampus;1;0;0;\n",
        "fsl.txt": "# FSL-style\n1 Left Hippocampus\n\n2 Right Hippocampus\n",
        "fsleyes.lut": "1 0.86 0.85 0.08 Left Hippocampus\n2 0.86 0.85 0.08 Right Hip\n",
        "FreeSurferColorLUT.txt": "#No. Label Name:    R   G   B   A\n\n"
                                  "17  Left-Hippocampus  220 216  20   0\n"
                                  "53  Right-Hippocampus 220 216  20   0\n",
    }
    expected = {
        "dseg.tsv": ((1, 2), ("Left Hippocampus", "Right Hip")),
        "cat12.csv": ((165, 166), ("lHip", "rHip")),
        "fsl.txt": ((1, 2), ("Left Hippocampus", "Right Hippocampus")),
        "fsleyes.lut": ((1, 2), ("Left Hippocampus", "Right Hip")),
        "FreeSurferColorLUT.txt": ((17, 53), ("Left-Hippocampus", "Right-Hippocampus")),
    }
    for name, text in tables.items():
        (tmp_path / name).write_text(text)
        assert read_label_table(tmp_path / name) == expected[name], name


@pytest.mark.parametrize("text, message", [
    ("1 lHip\n1 rHip\n", r"label id\(s\) \[1\] listed more than once"),
    ("1.5 lHip\n", "label id '1.5' is not a non-negative integer"),
    ("lHip 1\n", "label id 'lHip' is not a non-negative integer"),
    ("index\tlabel\n1\tlHip\n", "has no 'name' \\(or CAT12 'ROIabbr'\\) column"),
    ("# only a comment\n", "no regions in the label table"),
    ("7\n", "line '7' has an id but no name"),
])
def test_bad_label_tables_are_refused(tmp_path, text, message):
    table = tmp_path / "labels.txt"
    table.write_text(text)
    with pytest.raises(RegionalError, match=message):
        read_label_table(table)


def test_missing_label_table_is_named(tmp_path):
    with pytest.raises(RegionalError, match="none.tsv: cannot read the label table"):
        read_label_table(tmp_path / "none.tsv")
