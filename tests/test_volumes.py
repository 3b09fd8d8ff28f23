"""CAT12 maps are checked, cropped exactly, and every bad input is refused by name."""

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import brain_like_volume, write_map

from anatcl_nipype.encoder.volumes import (
    ANATCL_SHAPE,
    CAT12_AFFINE,
    CAT12_SHAPE,
    CROP_OFFSET,
    check_finite_output,
    load_cat12_volume,
)
from anatcl_nipype.errors import VolumeError


def test_crop_keeps_axis1_indices_8_to_135(tmp_path):
    volume = brain_like_volume(1)
    volume[:, :, :] += np.arange(145, dtype=np.float32)[None, :, None] * 1e-3
    loaded = load_cat12_volume(write_map(tmp_path / "mwp1.nii", volume))
    assert CROP_OFFSET == 8
    assert loaded.shape == ANATCL_SHAPE and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, volume[:, 8:136, :])


def test_gzipped_and_precropped_maps(tmp_path):
    volume = brain_like_volume(2)
    gz = load_cat12_volume(write_map(tmp_path / "mwp1.nii.gz", volume))
    np.testing.assert_array_equal(gz, volume[:, 8:136, :])
    cropped_affine = CAT12_AFFINE.copy()
    cropped_affine[1, 3] += 8 * 1.5
    cropped = load_cat12_volume(write_map(tmp_path / "crop.nii", volume[:, 8:136], cropped_affine))
    np.testing.assert_array_equal(cropped, gz)


def test_scaled_integer_storage_is_read_with_its_scale_factor(tmp_path):
    volume = brain_like_volume(3)
    image = nib.Nifti1Image(volume, CAT12_AFFINE)
    image.set_data_dtype(np.uint8)  # nibabel stores uint8 values plus a scale factor
    nib.save(image, tmp_path / "mwp1.nii")
    slope = nib.load(tmp_path / "mwp1.nii").dataobj.slope
    assert 0 < slope < 0.01
    loaded = load_cat12_volume(tmp_path / "mwp1.nii")
    np.testing.assert_allclose(loaded, volume[:, 8:136], atol=slope / 2 + 1e-6)


def test_singleton_fourth_dimension_is_squeezed(tmp_path):
    volume = brain_like_volume(4)
    path = write_map(tmp_path / "mwp1.nii", volume[..., None])
    np.testing.assert_array_equal(load_cat12_volume(path), volume[:, 8:136])


def _bad(tmp_path, name):
    """Bad inputs a real study produces, each with the message it must give."""
    good = brain_like_volume(5)
    shifted = CAT12_AFFINE.copy()
    shifted[0, 3] += 2.0
    native = np.diag([1.0, 1.0, 1.0, 1.0])
    with_nan = good.copy()
    with_nan[60, 60, 60] = np.nan
    with_inf = good.copy()
    with_inf[1, 2, 3] = np.inf
    labels = (np.arange(good.size).reshape(CAT12_SHAPE) % 50).astype(np.float32)
    off_grid = "not on the CAT12 1.5 mm MNI grid"
    cases = {
        "4d": (lambda p: write_map(p, np.stack([good, good], -1)), "4D image"),
        "other grid": (lambda p: write_map(p, good[:, :, :100]), off_grid),
        "shifted affine": (lambda p: write_map(p, good, shifted), off_grid),
        "native p1": (lambda p: write_map(p, good[:100, :110, :90], native), "native-space p1"),
        "nan": (lambda p: write_map(p, with_nan), "1 voxel is NaN or infinite"),
        "inf": (lambda p: write_map(p, with_inf), "1 voxel is NaN or infinite"),
        "all zero": (lambda p: write_map(p, np.zeros(CAT12_SHAPE)), "empty"),
        "int labels": (lambda p: write_map(p, labels, dtype=np.int16), "label/atlas image"),
        "float labels": (lambda p: write_map(p, labels), "label/atlas image"),
        "garbage": (lambda p: p.write_bytes(b"\x00" * 10), "cannot read it as NIfTI"),
        "zero bytes": (lambda p: p.write_bytes(b""), "cannot read it as NIfTI"),
        "directory": (lambda p: p.mkdir(), "is a directory"),
        "missing": (lambda p: None, "no such file"),
    }
    make, message = cases[name]
    path = tmp_path / f"mwp1 {name}.nii"
    make(path)
    return path, message


@pytest.mark.parametrize("name", [
    "4d", "other grid", "shifted affine", "native p1", "nan", "inf", "all zero", "int labels",
    "float labels", "garbage", "zero bytes", "directory", "missing",
])
def test_bad_inputs_are_refused_naming_file_and_problem(tmp_path, name):
    path, message = _bad(tmp_path, name)
    with pytest.raises(VolumeError) as error:
        load_cat12_volume(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_truncated_gzip_is_refused(tmp_path):
    path = write_map(tmp_path / "mwp1.nii.gz")
    path.write_bytes(path.read_bytes()[:50_000])
    with pytest.raises(VolumeError, match="cannot read it as NIfTI"):
        load_cat12_volume(path)


def test_resample_puts_a_2mm_mni_map_on_the_cat12_grid(tmp_path):
    affine_2mm = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine_2mm[:3, 3] = (90, -126, -72)
    path = write_map(tmp_path / "mwp1_2mm.nii", np.full((91, 109, 91), 0.5, np.float32), affine_2mm)
    with pytest.raises(VolumeError, match="resample=True"):
        load_cat12_volume(path)
    resampled = load_cat12_volume(path, resample=True)
    assert resampled.shape == ANATCL_SHAPE
    # inside the 2 mm field of view, a constant map stays constant
    assert resampled[60, 60, 60] == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_check_finite_output_counts_non_finite_values_in_every_precision(dtype):
    embedding = torch.ones(2, 512, dtype=getattr(torch, dtype))
    assert check_finite_output(embedding, "sub-01.nii") is embedding
    embedding[1, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    with pytest.raises(VolumeError, match=r"^sub-01.nii: the embedding has 3 of 1024 values "
                       "NaN or infinite; nothing was written for it"):
        check_finite_output(embedding, "sub-01.nii")
    with pytest.raises(VolumeError, match="has 3 of 1024 values"):
        check_finite_output(embedding.float().numpy(), "sub-01.nii")
