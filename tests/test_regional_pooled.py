"""Region-pooled AnatCL features: exact weighted means of the feature maps, NaN, errors."""

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import brain_like_volume, write_map

from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.encoder.checkpoint import make_random_network
from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE, CROP_OFFSET, crop_to_anatcl
from anatcl_nipype.errors import RegionalError, VolumeError
from anatcl_nipype.regional.pooled import (
    region_coverage,
    region_pooled_features,
    write_pooled_features,
)

pytestmark = pytest.mark.slow

# Boxes in CAT12-grid voxel indices (x, y, z), half-open. Layer3 units have stride 16 and
# cells [16i - 8, 16i + 8); layer4 units stride 32 and cells [32i - 16, 32i + 16), on the
# cropped grid whose axis 1 starts at CAT12 index 8.
LAYER3_BOX = ((8, 40), (32, 64), (40, 72))              # layer3 units x 1-2, y 2-3, z 3-4
LAYER4_BOX = ((16, 48), (56, 120), (80, 112))           # layer4 units x 1, y 2-3, z 3
CROPPED_AWAY_BOX = ((40, 80), (0, 8), (40, 80))         # CAT12 rows the crop removes
BEYOND_LAYER4_BOX = ((113, 121), (60, 90), (40, 72))    # past the last layer4 cell along x
TABLE = ((3, 5, 7, 9, 11), ("layer3Box", "layer4Box", "croppedAway", "beyondLayer4",
                            "absent"))


def _box_atlas():
    labels = np.zeros(CAT12_SHAPE, dtype=np.int16)
    for label, box in zip((3, 5, 7, 9), (LAYER3_BOX, LAYER4_BOX, CROPPED_AWAY_BOX,
                                         BEYOND_LAYER4_BOX)):
        labels[tuple(slice(*bounds) for bounds in box)] = label
    return nib.Nifti1Image(labels, CAT12_AFFINE)


def _cell_weights(bounds, stride, n_units, crop=0):
    """Covered fraction of each unit's cell along one axis, computed cell by cell."""
    low, high = bounds[0] - crop, bounds[1] - crop
    weights = np.zeros(n_units)
    for unit in range(n_units):
        cell_low, cell_high = unit * stride - stride // 2, unit * stride + stride // 2
        weights[unit] = max(0, min(high, cell_high) - max(low, cell_low)) / stride
    return weights


@pytest.fixture(scope="module")
def encoder(random_weights):
    return AnatCLEncoder(weights=random_weights, device="cpu")


@pytest.fixture(scope="module")
def volume():
    return brain_like_volume(seed=3)


@pytest.fixture(scope="module")
def feature_maps(encoder, volume):
    tensor = torch.from_numpy(np.ascontiguousarray(crop_to_anatcl(volume)))[None, None]
    with torch.inference_mode():
        maps = encoder.network.encoder.feature_maps(tensor)
    return {layer: maps[layer][0].double().numpy() for layer in ("layer3", "layer4")}


@pytest.fixture(scope="module")
def pooled(encoder, volume):
    return region_pooled_features(encoder, volume, _box_atlas(), label_table=TABLE,
                                  atlas_name="boxes")


def test_aligned_region_is_the_plain_mean_of_its_units(pooled, feature_maps):
    layer3, layer4 = feature_maps["layer3"], feature_maps["layer4"]
    assert layer3.shape[1:] == (8, 8, 8) and layer4.shape[1:] == (4, 4, 4)
    np.testing.assert_allclose(pooled.features["layer3"][0],
                               layer3[:, 1:3, 2:4, 3:5].mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(pooled.features["layer4"][1],
                               layer4[:, 1:2, 2:4, 3:4].mean(axis=(1, 2, 3)), rtol=1e-5)
    assert pooled.coverage["layer3"][0] == 8.0 and pooled.coverage["layer4"][1] == 2.0


def test_partly_covered_units_weigh_by_covered_fraction(pooled, feature_maps):
    # The layer4-aligned box covers layer3 cells by halves at its edges: weights 0.5, 1, 0.5.
    axes = [_cell_weights(bounds, 16, 8, crop) for bounds, crop
            in zip(LAYER4_BOX, (0, CROP_OFFSET, 0))]
    assert axes[0].tolist() == [0, 0.5, 1, 0.5, 0, 0, 0, 0]
    weights = np.einsum("i,j,k->ijk", *axes)
    expected = np.einsum("cijk,ijk->c", feature_maps["layer3"], weights) / weights.sum()
    np.testing.assert_allclose(pooled.features["layer3"][1], expected, rtol=1e-5)
    assert pooled.coverage["layer3"][1] == weights.sum() == 2 * 4 * 2


def test_regions_without_units_are_nan(pooled):
    names = pooled.names
    assert pooled.ids == (3, 5, 7, 9, 11) and names == TABLE[1]
    for layer in ("layer3", "layer4"):
        assert np.isnan(pooled.features[layer][names.index("croppedAway")]).all()
        assert np.isnan(pooled.features[layer][names.index("absent")]).all()
        assert np.isfinite(pooled.features[layer][:2]).all()
    beyond = names.index("beyondLayer4")
    assert np.isnan(pooled.features["layer4"][beyond]).all()  # x 113..120: no layer4 cell
    assert np.isfinite(pooled.features["layer3"][beyond]).all()  # x 113..119: layer3 unit 7
    assert pooled.n_voxels.tolist() == [32 * 32 * 32, 32 * 64 * 32, 0, 8 * 30 * 32, 0]
    summary = pooled.summary()
    assert np.isnan(summary.measures["anatcl_layer4"][[2, 3, 4]]).all()
    np.testing.assert_allclose(summary.measures["anatcl_layer3"][0],
                               pooled.features["layer3"][0].mean(dtype=np.float64))


def test_a_bare_network_and_no_label_table(encoder, volume, pooled):
    bare = region_pooled_features(encoder.network, volume, _box_atlas(), layers=["layer4"])
    assert bare.ids == (3, 5, 7, 9)  # every label of the uncropped atlas, the cropped one too
    assert bare.names == ("ROI003", "ROI005", "ROI007", "ROI009")
    assert bare.atlas == "atlas" and list(bare.features) == ["layer4"]
    np.testing.assert_array_equal(bare.features["layer4"], pooled.features["layer4"][:4])


def test_files_hold_the_matrices_and_the_region_table(pooled, tmp_path):
    feature_files, regions = write_pooled_features(pooled, tmp_path, "sub-01_atlas-boxes")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "sub-01_atlas-boxes_layer3.npy", "sub-01_atlas-boxes_layer4.npy",
        "sub-01_atlas-boxes_regions.tsv"]
    layer4 = np.load(feature_files["layer4"])
    assert layer4.shape == (5, 512) and layer4.dtype == np.float32
    np.testing.assert_array_equal(layer4, pooled.features["layer4"])
    lines = [line.split("\t") for line in regions.read_text().splitlines()]
    assert lines[0] == ["index", "name", "voxels", "layer3_units", "layer4_units"]
    assert lines[1] == ["3", "layer3Box", "32768", "8.0", "1.0"]  # 32**3 voxels: one layer4 cell
    assert lines[5] == ["11", "absent", "0", "0.0", "0.0"]


def test_coverage_sums_to_the_voxels_inside_cells():
    labels = np.zeros((10, 12, 9), dtype=np.intp)
    labels[0:3, 4:12, 2:5] = 2
    labels[9, 0, 0] = 1  # x = 9 lies in the cell of unit (9 + 2) // 4 = 2: beyond 2 units
    weights = region_coverage(labels, [1, 2], feature_shape=(2, 3, 2), stride=4)
    assert weights.shape == (2, 12)
    assert weights[0].sum() == 0.0
    # region 2: x 0, 1 -> cell 0 and x 2 -> cell 1; y 4, 5 -> cell 1, y 6..9 -> cell 2,
    # y 10, 11 -> cell 3 (no such unit); z 2..4 -> cell 1. Voxels in existing cells: 3 * 6 * 3
    assert weights[1].sum() * 4 ** 3 == 3 * 6 * 3
    assert weights[1].reshape(2, 3, 2)[0, 1, 1] == 2 * 2 * 3 / 4 ** 3


def test_atlas_on_another_grid_is_refused_unless_resampled(encoder, volume, tmp_path):
    off_grid = tmp_path / "atlas-mni2mm_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((91, 109, 91), dtype=np.int16),
                             np.diag([-2.0, 2.0, 2.0, 1.0])), off_grid)
    with pytest.raises(RegionalError, match=rf"^{off_grid}: the atlas is on another grid "
                                            r"\(shape \(91, 109, 91\)"):
        region_pooled_features(encoder, volume, off_grid)
    shifted = tmp_path / "atlas-shifted_dseg.nii.gz"
    affine = CAT12_AFFINE.copy()
    affine[0, 3] += 1.5  # one voxel along x: label k of the shifted file is CAT12 voxel k - 1
    nib.save(nib.Nifti1Image(np.asarray(_box_atlas().dataobj), affine), shifted)
    with pytest.raises(RegionalError, match="pass resample=True"):
        region_pooled_features(encoder, volume, shifted, layers=["layer4"])
    resampled = region_pooled_features(encoder, volume, shifted, layers=["layer4"],
                                       resample=True)
    assert resampled.atlas == "atlas-shifted_dseg"
    assert resampled.n_voxels[0] == 32 * 32 * 32


def test_bad_options_are_refused(encoder, volume):
    with pytest.raises(RegionalError, match=r"unknown layer\(s\) \['layer5'\]"):
        region_pooled_features(encoder, volume, _box_atlas(), layers=["layer5"])
    with pytest.raises(RegionalError, match="lists a region id more than once"):
        region_pooled_features(encoder, volume, _box_atlas(), label_table=((3, 3), ("a", "b")))
    from anatcl_nipype.encoder.model import AnatCLNetwork

    with pytest.raises(ValueError, match=r"training mode .* call network.eval\(\)"):
        region_pooled_features(AnatCLNetwork(), volume, _box_atlas())


def test_non_finite_feature_maps_are_refused_naming_the_map(tmp_path, volume):
    network = make_random_network(seed=1).eval()
    with torch.no_grad():
        network.encoder.layer4[1].bn2.weight[0] = float("inf")  # layer4 channel 0: inf/NaN
    path = write_map(tmp_path / "mwp1sub-01_T1w.nii", volume)
    with pytest.raises(VolumeError, match=rf"^{path}: the layer4 feature map has \d+ of "
                       r"\d+ values NaN or infinite; nothing was written"):
        region_pooled_features(network, path, _box_atlas(), layers=("layer3", "layer4"))
