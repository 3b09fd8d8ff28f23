"""AnatCLEncoder: exact parity with the official package, determinism, precisions, streaming,
non-finite outputs refused."""

import numpy as np
import pytest
import torch
from conftest import brain_like_volume, write_map

from anatcl_nipype.encoder import AnatCLEncoder, load_cat12_volume
from anatcl_nipype.encoder.checkpoint import make_random_network, save_checkpoint
from anatcl_nipype.encoder.precision import PrecisionRefused
from anatcl_nipype.encoder.runner import cpu_has_fast_bf16, default_readers, load_network
from anatcl_nipype.errors import AnatCLError, VolumeError


def official_embeddings(weights, paths, use_head=False):
    """The official package's obvious loop: nibabel load, crop, forward."""
    import nibabel as nib
    from anatcl import AnatCL

    model = AnatCL(pretrained=False, use_head=use_head)
    model.backbone.load_state_dict(
        torch.load(weights, map_location="cpu", weights_only=False)["model"])
    model.eval()
    outputs = []
    with torch.no_grad():
        for path in paths:
            volume = np.asarray(nib.load(path).dataobj, dtype=np.float32)[:, 8:136, :]
            outputs.append(model(torch.from_numpy(volume.copy())[None, None]).numpy()[0])
    return np.stack(outputs)


@pytest.mark.slow
@pytest.mark.parametrize("use_head", [False, True])
def test_parity_with_official_package(random_weights, cat12_maps, use_head):
    expected = official_embeddings(random_weights, cat12_maps, use_head=use_head)
    ours = AnatCLEncoder(weights=random_weights, use_head=use_head).encode(cat12_maps)
    assert ours.shape == (3, 128 if use_head else 512) and ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= 1e-5
    assert np.abs(expected).max() > 1e-2  # the comparison is not between two zero vectors
    assert not np.allclose(ours[0], ours[1])  # different maps, different embeddings


def test_same_input_gives_bit_identical_embeddings(random_weights, cat12_maps):
    encoder = AnatCLEncoder(weights=random_weights)
    first = encoder.encode(cat12_maps[:1])
    second = AnatCLEncoder(weights=random_weights).encode(cat12_maps[:1])
    assert np.array_equal(first, second)


def test_bf16_is_close_to_fp32_on_small_volumes(random_weights):
    # 32^3 volumes: seconds even where bf16 is emulated (AVX2-only CPUs run it ~100x slower)
    volumes = torch.from_numpy(
        np.stack([brain_like_volume(seed, (32, 32, 32)) for seed in (1, 2, 3)]))
    fp32 = AnatCLEncoder(weights=random_weights).forward(volumes[:, None])
    bf16 = AnatCLEncoder(weights=random_weights, precision="bf16",
                         force_precision=True).forward(volumes[:, None])
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert fp32.shape == bf16.shape == (3, 512) and not np.array_equal(fp32, bf16)
    assert cosine.min() >= 0.999


@pytest.mark.slow
@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="full-size bf16 needs fast bf16 units (AMX or "
                    "AMD AVX512-BF16); elsewhere bf16 is slower than fp32, emulated on "
                    "AVX2-only CPUs")
def test_bf16_is_close_to_fp32_at_full_size(random_weights, cat12_maps):
    fp32 = AnatCLEncoder(weights=random_weights).encode(cat12_maps)
    bf16 = AnatCLEncoder(weights=random_weights, precision="bf16").encode(cat12_maps)
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.999


def test_batches_arrays_and_paths_agree(random_weights, cat12_maps):
    arrays = [load_cat12_volume(path) for path in cat12_maps]
    one_by_one = AnatCLEncoder(weights=random_weights).encode(cat12_maps)
    batched = AnatCLEncoder(weights=random_weights, batch_size=2).encode(arrays)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_a_bad_map_yields_its_error_in_place_and_the_rest_are_encoded(random_weights, cat12_maps,
                                                                      tmp_path):
    bad = write_map(tmp_path / "mwp1sub-bad.nii", np.zeros((121, 145, 121), np.float32))
    encoder = AnatCLEncoder(weights=random_weights, batch_size=2)
    results = list(encoder.iter_encode([cat12_maps[0], bad, cat12_maps[1]]))
    assert [r.source for r in results] == [cat12_maps[0], bad, cat12_maps[1]]
    assert isinstance(results[1].error, VolumeError) and results[1].embedding is None
    expected = encoder.encode([cat12_maps[0], cat12_maps[1]])
    np.testing.assert_allclose(np.stack([results[0].embedding, results[2].embedding]), expected,
                               atol=1e-5)
    with pytest.raises(VolumeError, match="mwp1sub-bad.nii: the map is empty"):
        encoder.encode([cat12_maps[0], bad])


def test_model_is_loaded_once_per_process(random_weights):
    first, identity = load_network(random_weights, torch.device("cpu"))
    second, _ = load_network(random_weights, torch.device("cpu"))
    assert first is second
    assert identity["random"] is True and identity["run_id"] == "random-seed7"
    assert AnatCLEncoder(weights=random_weights).network is first


def test_provenance_names_weights_precision_and_preprocessing(random_weights):
    provenance = AnatCLEncoder(weights=random_weights).provenance
    loaded = load_network(random_weights, torch.device("cpu"))[1]
    assert provenance["weights"]["sha256"] == loaded["sha256"]
    assert provenance["precision"] == "fp32" and provenance["device"] == "cpu"
    assert "indices 8..135" in provenance["preprocessing"]["crop"]


@pytest.mark.skipif(cpu_has_fast_bf16(), reason="checks the refusal where bf16 units are absent")
def test_bf16_is_refused_where_it_is_slower_than_fp32(random_weights):
    with pytest.raises(PrecisionRefused,
                       match=r"^bf16 on this CPU is (emulated, )?(~100x )?slower than "
                             r"fp32; use precision='auto' or 'fp32' .*force_precision=True"):
        AnatCLEncoder(weights=random_weights, precision="bf16")


def test_auto_records_its_pick_and_fp32_stays_exact(random_weights, cat12_maps, tmp_path,
                                                    monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))  # where a micro-benchmark is cached
    auto = AnatCLEncoder(weights=random_weights, precision="auto")
    choice = auto.provenance["precision_choice"]
    assert choice["requested"] == "auto" and choice["mode"] == auto.choice.mode and choice["reason"]
    assert (choice["mode"] == "bf16") == cpu_has_fast_bf16()
    assert auto.provenance["precision"] == ("bf16" if cpu_has_fast_bf16() else "fp32")
    fp32 = AnatCLEncoder(weights=random_weights)
    assert fp32.provenance["precision_choice"]["mode"] == "fp32"
    if choice["mode"] == "fp32":  # same network object, same arithmetic: identical bits
        assert auto.network is fp32.network
        assert np.array_equal(auto.encode(cat12_maps[:1]), fp32.encode(cat12_maps[:1]))


def huge_gain_weights(path):
    """Finite weights whose first BatchNorm scales by float32's maximum: outputs overflow."""
    network = make_random_network(seed=3)
    with torch.no_grad():
        network.encoder.bn1.weight.fill_(np.finfo(np.float32).max)
    return save_checkpoint(path, network, {"random": True}, run_id="overflowing")


def test_a_non_finite_output_is_that_inputs_error_not_a_result(cat12_maps, tmp_path):
    weights = huge_gain_weights(tmp_path / "overflow.pth")
    encoder = AnatCLEncoder(weights=weights)
    results = list(encoder.iter_encode(cat12_maps[:1]))
    assert results[0].embedding is None and isinstance(results[0].error, VolumeError)
    assert str(results[0].error).startswith(
        f"{cat12_maps[0]} (fold 0, precision fp32, weights {weights.resolve()}): the embedding "
        "has 512 of 512 values NaN or infinite; nothing was written for it")
    with pytest.raises(VolumeError, match="values NaN or infinite"):
        encoder.encode(cat12_maps[:1])


def test_a_non_finite_output_under_forced_bf16_is_refused_too(tmp_path):
    encoder = AnatCLEncoder(weights=huge_gain_weights(tmp_path / "overflow.pth"), precision="bf16",
                            force_precision=True)
    volume = torch.from_numpy(brain_like_volume(1, (32, 32, 32)))[None, None]
    with pytest.raises(VolumeError,
                       match=r"^input 0 \(array\) \(fold 0, precision bf16, .*NaN or inf"):
        encoder.forward(volume)


def test_one_overflowing_input_fails_alone(random_weights):
    good = brain_like_volume(1)
    overflowing = good.copy()  # finite voxels, but the network overflows on them
    overflowing[good > 0.5] *= np.float32(1e37)
    encoder = AnatCLEncoder(weights=random_weights, batch_size=2)
    results = list(encoder.iter_encode([good, overflowing]))
    assert results[0].error is None and np.isfinite(results[0].embedding).all()
    assert isinstance(results[1].error, VolumeError) and results[1].embedding is None
    assert str(results[1].error).startswith("input 1 (array) (fold 0, precision fp32, weights ")


def test_a_non_finite_fold_fails_the_input_naming_that_fold(random_weights, cat12_maps, tmp_path):
    weights = huge_gain_weights(tmp_path / "overflow.pth")
    results = list(AnatCLEncoder(weights=[random_weights, weights]).iter_encode(cat12_maps[:1]))
    assert results[0].embedding is None
    assert f"(fold 1, precision fp32, weights {weights.resolve()})" in str(results[0].error)


def test_readers_default_to_one_on_a_cpu_and_more_on_cuda():
    assert default_readers(torch.device("cpu")) == 1
    assert 1 <= default_readers(torch.device("cuda")) <= 8


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp16"}, "precision must be one of"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
])
def test_bad_options(random_weights, options, message):
    with pytest.raises(AnatCLError, match=message):
        AnatCLEncoder(weights=random_weights, **options)


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="checks the message given where CUDA is absent")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_requested_without_cuda(random_weights, device):
    with pytest.raises(AnatCLError, match=f"device '{device}' asked for, but CUDA is not available "
                                          "here; use device='auto' or 'cpu'"):
        AnatCLEncoder(weights=random_weights, device=device, precision="auto")
    assert AnatCLEncoder(weights=random_weights, device="auto").device == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA")
def test_cuda_matches_cpu(random_weights, cat12_maps):
    cpu = AnatCLEncoder(weights=random_weights, device="cpu").encode(cat12_maps)
    cuda = AnatCLEncoder(weights=random_weights, device="cuda", batch_size=3).encode(cat12_maps)
    assert np.abs(cuda - cpu).max() <= 1e-3
    bf16 = AnatCLEncoder(weights=random_weights, device="cuda", precision="bf16").encode(cat12_maps)
    cosine = (cpu * bf16).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.999
    auto = AnatCLEncoder(weights=random_weights, device="cuda", precision="auto")
    major, _ = torch.cuda.get_device_capability()
    assert auto.choice.mode == ("bf16" if major >= 8 else "fp32")
    assert "compute capability" in auto.provenance["precision_choice"]["reason"]
