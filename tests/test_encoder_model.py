"""The network matches the official architecture, name for name and shape for shape."""

import torch
from anatcl.models import SupConResNet

from anatcl_nipype.encoder.model import AnatCLNetwork


def test_state_dict_names_and_shapes_match_official_package():
    ours = {key: tuple(value.shape) for key, value in AnatCLNetwork().state_dict().items()}
    official = {key: tuple(value.shape)
                for key, value in SupConResNet("resnet18", feat_dim=128).state_dict().items()}
    assert list(ours.items()) == list(official.items())
    assert len(ours) == 124
    assert ours["encoder.conv1.weight"] == (64, 1, 7, 7, 7)
    assert ours["encoder.layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert ours["head.2.weight"] == (128, 512)


def test_projection_head_output_is_unit_norm():
    network = AnatCLNetwork().eval()
    with torch.no_grad():
        projection = network(torch.rand(3, 1, 24, 24, 24), use_head=True)
    assert projection.shape == (3, 128)
    torch.testing.assert_close(projection.norm(dim=1), torch.ones(3))


def test_feature_maps_strides():
    network = AnatCLNetwork().eval()
    with torch.no_grad():
        maps = network.encoder.feature_maps(torch.zeros(1, 1, 64, 64, 64))
    assert {name: tuple(m.shape[1:]) for name, m in maps.items()} == {
        "layer1": (64, 16, 16, 16),
        "layer2": (128, 8, 8, 8),
        "layer3": (256, 4, 4, 4),
        "layer4": (512, 2, 2, 2),
    }
