"""The encoding interfaces: outputs, provenance, failures, as a Nipype user meets them."""

import json
import logging

import numpy as np
import pytest
from conftest import write_map
from nipype import Node

from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.encoder.embedding_files import read_embeddings_tsv
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.encoder import AnatCLEncode, AnatCLEncodeBatch


def test_encode_writes_embedding_and_provenance(random_weights, cat12_maps, tmp_path):
    node = Node(AnatCLEncode(weights=str(random_weights), in_file=str(cat12_maps[0])),
                name="encode", base_dir=str(tmp_path))
    result = node.run()
    embedding = np.load(result.outputs.out_file)
    assert result.outputs.out_file.endswith("sub-01_T1w_anatcl.npy")
    assert embedding.shape == (512,) and embedding.dtype == np.float32
    expected = AnatCLEncoder(weights=random_weights).encode(cat12_maps[:1])[0]
    np.testing.assert_array_equal(embedding, expected)
    sidecar = json.loads(open(result.outputs.out_json).read())
    assert sidecar["input"]["sha256"] == sha256_file(cat12_maps[0])
    assert sidecar["weights"]["sha256"] == sha256_file(random_weights)
    assert sidecar["precision"] == "fp32" and sidecar["device"] == "cpu"
    assert sidecar["shape"] == [512]


def test_encode_projection_head(random_weights, cat12_maps, tmp_path):
    result = Node(AnatCLEncode(weights=str(random_weights), in_file=str(cat12_maps[0]),
                               use_head=True), name="encode", base_dir=str(tmp_path)).run()
    projection = np.load(result.outputs.out_file)
    assert projection.shape == (128,)
    assert np.linalg.norm(projection) == pytest.approx(1.0, abs=1e-5)


def test_use_gpu_falls_back_to_cpu_with_a_warning(random_weights, cat12_maps, tmp_path, caplog):
    interface = AnatCLEncode(weights=str(random_weights), in_file=str(cat12_maps[0]), use_gpu=True)
    with caplog.at_level(logging.WARNING, logger="nipype.interface"):
        result = Node(interface, name="encode", base_dir=str(tmp_path)).run()
    assert "CUDA is not available" in caplog.text
    assert json.loads(open(result.outputs.out_json).read())["device"] == "cpu"


def test_bad_map_crashes_the_node_with_the_anatcl_message(random_weights, tmp_path):
    bad = write_map(tmp_path / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121), np.float32))
    node = Node(AnatCLEncode(weights=str(random_weights), in_file=str(bad)), name="encode",
                base_dir=str(tmp_path / "work"))
    with pytest.raises(Exception) as error:
        node.run()
    assert f"{bad}: the map is empty (all voxels are 0)" in str(error.value)


def test_batch_table_files_and_failures(random_weights, cat12_maps, tmp_path):
    bad = write_map(tmp_path / "mwp1sub-09_T1w.nii", np.full((91, 109, 91), 0.5, np.float32))
    in_files = [str(cat12_maps[0]), str(bad), str(cat12_maps[1])]
    node = Node(AnatCLEncodeBatch(weights=str(random_weights), in_files=in_files, batch_size=2,
                                  on_error="skip"), name="batch", base_dir=str(tmp_path / "work"))
    outputs = node.run().outputs
    ids, table = read_embeddings_tsv(outputs.out_tsv)
    assert ids == outputs.participant_ids == ["sub-01", "sub-02"]
    header = open(outputs.out_tsv).readline().rstrip("\n").split("\t")
    assert header[0] == "participant_id" and header[1] == "emb_000" and header[-1] == "emb_511"
    expected = AnatCLEncoder(weights=random_weights).encode(cat12_maps[:2])
    np.testing.assert_allclose(table, expected, atol=1e-5)
    np.testing.assert_array_equal(np.stack([np.load(f) for f in outputs.out_files]), table)
    failed = open(outputs.failed_tsv).read().splitlines()
    assert failed[0] == "participant_id\tpath\treason\ttraceback"
    assert failed[1].startswith(f"sub-09\t{bad}\t")
    assert "not on the CAT12 1.5 mm MNI grid" in failed[1]
    sidecar = json.loads(open(outputs.out_json).read())
    assert sidecar["failed"][0]["participant_id"] == "sub-09"


def test_batch_raise_mode_and_duplicate_ids(random_weights, cat12_maps, tmp_path):
    bad = write_map(tmp_path / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121), np.float32))
    node = Node(AnatCLEncodeBatch(weights=str(random_weights),
                                  in_files=[str(cat12_maps[0]), str(bad)]),
                name="batch", base_dir=str(tmp_path / "work"))
    with pytest.raises(Exception, match="the map is empty"):
        node.run()
    twice = Node(AnatCLEncodeBatch(weights=str(random_weights),
                                   in_files=[str(cat12_maps[0]), str(cat12_maps[0])]),
                 name="twice", base_dir=str(tmp_path / "work"))
    with pytest.raises(Exception, match="several maps belong to sub-01; pass participant_ids"):
        twice.run()


def test_fold_ensemble_writes_one_embedding_and_sidecar_per_fold(cat12_maps, tmp_path,
                                                                 monkeypatch):
    from anatcl_nipype.encoder import write_random_checkpoint
    from anatcl_nipype.encoder.weights import cached_weights_path

    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path / "home"))
    for fold in (1, 3):
        path = cached_weights_path("global", fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(path, seed=20 + fold)
    node = Node(AnatCLEncode(in_file=cat12_maps[0], folds=[1, 3]), name="encode",
                base_dir=str(tmp_path / "work"))
    outputs = node.run().outputs
    assert [p.rsplit("_", 1)[1] for p in outputs.out_files] == ["anatclFold1.npy",
                                                               "anatclFold3.npy"]
    assert outputs.fold_labels == [1, 3] and outputs.out_file == outputs.out_files[0]
    for fold, npy, sidecar in zip((1, 3), outputs.out_files, outputs.out_jsons):
        provenance = json.loads(open(sidecar).read())
        assert provenance["weights"]["fold"] == fold
        assert provenance["input"]["sha256"] == sha256_file(cat12_maps[0])
        alone = AnatCLEncoder(fold=fold).encode([cat12_maps[0]])[0]
        assert np.array_equal(np.load(npy), alone)


def test_batch_refuses_a_fold_ensemble(random_weights, cat12_maps, tmp_path):
    node = Node(AnatCLEncodeBatch(in_files=cat12_maps[:1], folds=[0, 1]), name="batch",
                base_dir=str(tmp_path))
    with pytest.raises(Exception, match="one AnatCLEncodeBatch per fold"):
        node.run()


def test_explicit_bf16_is_refused_once_before_any_work_on_a_cpu_without_bf16_units(
        monkeypatch, tmp_path):
    from anatcl_nipype.cli.parser import parse_options
    from anatcl_nipype.encoder.precision import CPUFeatures, PrecisionRefused

    avx2_only = CPUFeatures("Test CPU", "AuthenticAMD", "x86_64", avx2=True, avx512=False,
                            avx512_bf16=False, amx=False)
    monkeypatch.setattr(CPUFeatures, "of_this_machine", classmethod(lambda cls: avx2_only))
    options = parse_options([str(tmp_path), str(tmp_path / "out"), "participant",
                             "--precision", "bf16"])
    with pytest.raises(PrecisionRefused, match="Test CPU, AVX2 only"):
        options.check_precision()
    forced = parse_options([str(tmp_path), str(tmp_path / "out"), "participant",
                            "--precision", "bf16", "--force-precision"])
    forced.check_precision()  # runs anyway when forced
    assert forced.encoder_options().force_precision is True
    assert parse_options([str(tmp_path), "o", "participant", "--fold", "all"]
                         ).encoder_options().folds == (0, 1, 2, 3, 4)
