"""Checkpoints load safely in every format the field produces, and bad ones are refused."""

import argparse
import hashlib

import pytest
import torch

from anatcl_nipype.encoder.checkpoint import load_checkpoint, make_random_network, save_checkpoint
from anatcl_nipype.errors import CheckpointError


def test_official_format_loads_with_metadata_and_hash(random_weights):
    checkpoint = load_checkpoint(random_weights)
    assert checkpoint.sha256 == hashlib.sha256(random_weights.read_bytes()).hexdigest()
    assert checkpoint.epoch == 0
    assert checkpoint.run_id == "random-seed7"
    assert checkpoint.options["model"] == "resnet18"
    raw = torch.load(random_weights, weights_only=False)
    assert set(raw) == {"model", "opts", "optimizer", "epoch", "run_id"}
    assert isinstance(raw["opts"], argparse.Namespace)
    for key, value in raw["model"].items():
        assert torch.equal(checkpoint.state_dict[key], value)


def test_random_network_has_non_trivial_batchnorm_statistics():
    state = make_random_network(seed=3).state_dict()
    assert not torch.allclose(state["encoder.bn1.running_mean"], torch.zeros(64))
    assert not torch.allclose(state["encoder.bn1.running_var"], torch.ones(64))
    assert not torch.equal(make_random_network(4).state_dict()["head.0.weight"],
                           state["head.0.weight"])


@pytest.mark.parametrize("prefix", ["", "module.", "backbone.", "module.backbone."])
@pytest.mark.parametrize("wrapped", [True, False])
def test_bare_and_prefixed_state_dicts_load(tmp_path, prefix, wrapped):
    state = {prefix + key: value for key, value in make_random_network(1).state_dict().items()}
    path = tmp_path / "weights.pth"
    torch.save({"model": state} if wrapped else state, path)
    checkpoint = load_checkpoint(path)
    assert torch.equal(checkpoint.state_dict["head.2.bias"], state[prefix + "head.2.bias"])


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path):
    state = make_random_network(1).state_dict()
    del state["head.2.bias"]
    state["encoder.fc.weight"] = torch.zeros(2)
    state["encoder.conv1.weight"] = torch.zeros(64, 1, 3, 3, 3)
    path = tmp_path / "weights.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys (1): head.2.bias" in message
    assert "unexpected keys (1): encoder.fc.weight" in message
    assert "encoder.conv1.weight (64, 1, 3, 3, 3) (expected (64, 1, 7, 7, 7))" in message


class _Payload:
    """Pickles as a call that creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": make_random_network(0).state_dict(), "opts": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load.*Nothing from it was executed"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what the official loader does: the payload runs
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_checkpoint_of_wrong_content_is_refused(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        load_checkpoint(path)
    torch.save({"model": {"a": 1}}, path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path)


def test_saved_checkpoint_loads_in_the_official_package(tmp_path):
    from anatcl import AnatCL

    network = make_random_network(5)
    optimizer = torch.optim.Adam(network.parameters())
    path = save_checkpoint(tmp_path / "w.pth", network, {"lr": 0.1}, optimizer, epoch=4, run_id="r")
    official = AnatCL(pretrained=False)
    official.backbone.load_state_dict(torch.load(path, weights_only=False)["model"])
    assert torch.equal(official.backbone.encoder.conv1.weight, network.encoder.conv1.weight)
    assert load_checkpoint(path).epoch == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]  # no temporary left behind
