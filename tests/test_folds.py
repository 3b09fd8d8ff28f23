"""Fold ensembles: each map read and cropped once, run through every fold's model."""

import numpy as np
import pytest
import torch
from conftest import write_map

from anatcl_nipype.encoder import AnatCLEncoder, load_network, write_random_checkpoint
from anatcl_nipype.encoder import runner as runner_module
from anatcl_nipype.encoder.weights import cached_weights_path
from anatcl_nipype.errors import AnatCLError, VolumeError

FOLDS = (0, 2, 4)


@pytest.fixture(scope="module")
def released_home(tmp_path_factory):
    """A weights cache holding seeded random checkpoints as released folds 0, 2 and 4."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANATCL_NIPYPE_HOME", str(home))
        for fold in FOLDS:
            path = cached_weights_path("global", fold)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_random_checkpoint(path, seed=10 + fold)
    return home


@pytest.fixture()
def released(released_home, monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(released_home))
    return {fold: cached_weights_path("global", fold) for fold in FOLDS}


@pytest.fixture()
def counted_reads(monkeypatch):
    """Paths read by the encoder, in order (the real reader, counted)."""
    reads = []
    real = runner_module.load_cat12_volume

    def counting(path, resample=False):
        reads.append(path)
        return real(path, resample=resample)

    monkeypatch.setattr(runner_module, "load_cat12_volume", counting)
    return reads


def test_each_map_is_read_once_and_fold_embeddings_equal_single_fold_encodings(
        released, cat12_maps, counted_reads):
    maps = cat12_maps[:2]
    ensemble = AnatCLEncoder(folds=FOLDS)
    embeddings = ensemble.encode(maps)
    assert counted_reads == maps  # read once each, not once per fold
    assert embeddings.shape == (3, 2, 512) and embeddings.dtype == np.float32
    for index, fold in enumerate(FOLDS):
        alone = AnatCLEncoder(fold=fold).encode(maps)
        assert np.array_equal(embeddings[index], alone)
    assert not np.allclose(embeddings[0], embeddings[1])  # different folds, different models


def test_each_fold_has_its_provenance(released):
    ensemble = AnatCLEncoder(folds=FOLDS)
    assert ensemble.folds == FOLDS and ensemble.ensemble
    for index, fold in enumerate(FOLDS):
        provenance = ensemble.fold_provenance(index)
        _, identity = load_network(released[fold], torch.device("cpu"))
        assert provenance["weights"] == {"descriptor": "global", "fold": fold, **identity}
        assert provenance["precision"] == "fp32"
    assert ensemble.provenance["folds"] == list(FOLDS)
    assert [w["fold"] for w in ensemble.provenance["fold_weights"]] == list(FOLDS)
    assert len({w["sha256"] for w in ensemble.provenance["fold_weights"]}) == 3
    assert "weights" not in ensemble.provenance  # no single identity for several models


def test_one_model_load_per_fold_per_process(released):
    first = AnatCLEncoder(folds=FOLDS)
    second = AnatCLEncoder(folds=FOLDS[::-1])
    assert [m.network for m in first.models] == [m.network for m in second.models][::-1]
    assert AnatCLEncoder(fold=2).network is first.models[1].network


def test_weight_files_make_an_ensemble_labelled_by_position(released, cat12_maps):
    files = [released[4], released[0]]
    ensemble = AnatCLEncoder(weights=files)
    assert ensemble.folds == (0, 1)
    assert ([w["path"] for w in ensemble.provenance["fold_weights"]]
            == [str(f.resolve()) for f in files])
    results = list(ensemble.iter_encode(cat12_maps[:1]))
    assert results[0].embedding.shape == (2, 512)
    np.testing.assert_array_equal(results[0].embedding[1],
                                  AnatCLEncoder(weights=released[0]).encode(cat12_maps[:1])[0])


def test_a_bad_map_fails_once_for_all_folds(released, cat12_maps, tmp_path):
    bad = write_map(tmp_path / "mwp1sub-bad.nii", np.zeros((121, 145, 121), np.float32))
    results = list(AnatCLEncoder(folds=FOLDS[:2]).iter_encode([bad, cat12_maps[0]]))
    assert isinstance(results[0].error, VolumeError) and results[0].embedding is None
    assert results[1].error is None and results[1].embedding.shape == (2, 512)


@pytest.mark.parametrize("options, message", [
    ({"folds": (0, 0)}, r"folds must be distinct released folds \(0-4\), not \(0, 0\)"),
    ({"folds": ()}, "folds must be distinct released folds"),
    ({"folds": (7,)}, "no released weights for descriptor='global', fold=7"),
    ({"weights": []}, "weights is an empty list"),
])
def test_bad_ensembles_are_refused(released, options, message):
    with pytest.raises(AnatCLError, match=message):
        AnatCLEncoder(**options)


def test_folds_with_a_weights_file_is_refused(released, random_weights):
    with pytest.raises(AnatCLError, match="folds selects released weights; to ensemble your own "
                                          r"files pass weights=\[file, file, ...\] without folds"):
        AnatCLEncoder(weights=random_weights, folds=(0, 1))
