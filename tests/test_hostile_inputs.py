"""Hostile inputs, class by class: each gives its family's error naming the file, nothing else.

Checkpoints (meta, sparse, quantised, complex, integer, non-finite and mis-shaped tensors,
odd metadata), NIfTI headers that declare more than the file holds or inflate without
end, XML that nests, grows or overflows, and JSON nested without end. The checkpoints
share one storage between their tensors, so each file is about 30 MB, not 130 MB.
"""

import argparse
import gzip
import json
import re
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch

from anatcl_nipype.encoder.checkpoint import load_checkpoint
from anatcl_nipype.encoder.model import AnatCLNetwork
from anatcl_nipype.encoder.volumes import (
    CAT12_AFFINE,
    CAT12_SHAPE,
    MAX_VOXELS,
    load_cat12_volume,
    read_nifti,
)
from anatcl_nipype.errors import (
    CheckpointError,
    PredictionError,
    RegionalError,
    VolumeError,
    WeightsError,
)
from anatcl_nipype.files import sha256_file
from anatcl_nipype.prediction.persistence import load_probe, save_probe
from anatcl_nipype.prediction.probes import make_probe
from anatcl_nipype.regional import (
    atlas_gm_volumes,
    measures_to_row,
    read_aparc_stats,
    read_cat12_report,
    read_cat12_roi_xml,
    read_label_table,
    read_measures_tsv,
)
from anatcl_nipype.regional.measures import MAX_FILE_BYTES
from anatcl_nipype.regional.tables import merge_measures_tables, write_measures_tsv

# --- checkpoints -------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_dict():
    """A valid AnatCL state dict whose float tensors are views of one shared storage."""
    reference = AnatCLNetwork().state_dict()
    largest = max(value.numel() for value in reference.values())
    shared = torch.rand(largest, generator=torch.Generator().manual_seed(0)) * 0.01 + 0.5
    return {key: shared[:value.numel()].view(value.shape) if value.is_floating_point()
            else torch.tensor(1000) for key, value in reference.items()}


def _with(state_dict, key, tensor):
    return {**state_dict, key: tensor}


def _nan(tensor):
    tensor = tensor.clone()
    tensor.view(-1)[0] = float("nan")
    return tensor


def _inf(tensor):
    tensor = tensor.clone()
    tensor.view(-1)[-1] = -float("inf")
    return tensor


TENSOR_CASES = {
    "meta": ("encoder.conv1.weight", lambda t: torch.empty(t.shape, device="meta"),
             "a meta tensor"),
    "sparse COO": ("head.0.weight", lambda t: t.clone().to_sparse(), "torch.sparse_coo tensor"),
    "sparse CSR": ("head.2.weight", lambda t: t.clone().to_sparse_csr(),
                   "torch.sparse_csr tensor"),
    "NaN weight": ("encoder.layer2.0.conv1.weight", _nan, "1 of 221184 values are NaN"),
    "-inf bias": ("head.0.bias", _inf, "1 of 512 values are NaN or infinite"),
    "NaN BatchNorm variance": ("encoder.layer1.0.bn1.running_var", _nan, "1 of 64 values"),
    "integer weights": ("head.2.bias", lambda t: torch.zeros(t.shape, dtype=torch.int64),
                        "torch.int64 where the network holds floating-point"),
    "boolean weights": ("head.0.bias", lambda t: torch.ones(t.shape, dtype=torch.bool),
                        "torch.bool where the network holds floating-point"),
    "complex weights": ("head.0.bias", lambda t: t.clone().to(torch.complex64),
                        "torch.complex64 where the network holds floating-point"),
    "float counter": ("encoder.bn1.num_batches_tracked", lambda t: torch.tensor(1000.0),
                      "torch.float32 where the network holds an integer counter"),
    "quantised": ("head.0.bias", lambda t: torch.quantize_per_tensor(
        t.clone(), 0.1, 0, torch.qint8), "a quantised tensor"),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", TENSOR_CASES)
def test_checkpoint_tensor_that_is_not_a_weight_is_refused_naming_key(state_dict, tmp_path,
                                                                     case):
    key, make, problem = TENSOR_CASES[case]
    path = tmp_path / "weights.pth"
    torch.save({"model": _with(state_dict, key, make(state_dict[key]))}, path)
    with pytest.raises(WeightsError) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(f"{path}: {key}: ")
    assert problem in str(error.value)


@pytest.mark.parametrize("shape", [(512,), (128, 512, 1), ()])
def test_checkpoint_tensor_of_wrong_shape_is_refused_naming_key(state_dict, tmp_path, shape):
    path = tmp_path / "weights.pth"
    torch.save(_with(state_dict, "head.2.weight", torch.zeros(shape)), path)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: not an AnatCL ResNet-18 checkpoint: wrong shapes (1): head.2.weight "
            f"{tuple(shape)} (expected (128, 512))")):
        load_checkpoint(path)


def test_checkpoint_key_that_is_not_a_name_is_refused(state_dict, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({**state_dict, 7: torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match=rf"^{path}: state dict key 7 is a int"):
        load_checkpoint(path)


METADATA_CASES = {
    "tensor option": ({"opts": {"lr": torch.tensor(1e-4)}}, "'opts.lr' is Tensor"),
    "tensor option in a Namespace": ({"opts": argparse.Namespace(temp=torch.ones(1))},
                                     "'opts.temp' is Tensor"),
    "bytes option nested in a list": ({"opts": {"views": [1, b"2"]}}, "'opts.views' is list"),
    "options nested too deep": ({"opts": {"deep": [[[[[[[[[[1]]]]]]]]]]}},
                                "'opts.deep' is list"),
    "option with a non-str name": ({"opts": {3: "x"}}, "'opts.3' is str"),
    "options as a list": ({"opts": ["lr", 1e-4]}, "'opts' is list"),
    "bytes run id": ({"run_id": b"run-1"}, "'run_id' is bytes, expected a str"),
    "int run id": ({"run_id": 17}, "'run_id' is int, expected a str"),
    "tensor epoch": ({"epoch": torch.tensor(3)}, "'epoch' is Tensor"),
    "float epoch": ({"epoch": 3.0}, "'epoch' is float"),
    "bool epoch": ({"epoch": True}, "'epoch' is bool"),
    "negative epoch": ({"epoch": -1}, "'epoch' is int, expected a non-negative int"),
}


@pytest.mark.parametrize("case", METADATA_CASES)
def test_checkpoint_metadata_of_odd_type_is_refused_at_load(state_dict, tmp_path, case):
    metadata, problem = METADATA_CASES[case]
    path = tmp_path / "weights.pth"
    torch.save({"model": state_dict, **metadata}, path)
    with pytest.raises(WeightsError) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(f"{path}: metadata ")
    assert problem in str(error.value)


def test_checkpoint_with_plain_metadata_loads_exactly(state_dict, tmp_path):
    path = tmp_path / "weights.pth"
    options = argparse.Namespace(lr=1e-4, views=[2, 2], kernel={"name": "rbf", "sigma": 2.0},
                                 resume=None, amp=True)
    torch.save({"model": {f"module.{k}": v for k, v in state_dict.items()}, "opts": options,
                "epoch": 49, "run_id": "0_obhn64_resnet18"}, path)
    checkpoint = load_checkpoint(path)
    assert (checkpoint.epoch, checkpoint.run_id) == (49, "0_obhn64_resnet18")
    assert checkpoint.options == vars(options)
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in state_dict.items())


# --- NIfTI -------------------------------------------------------------------------


def _header_bytes(shape, dtype=np.float32, header_class=nib.Nifti1Header, offset=None):
    header = header_class()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header.set_qform(CAT12_AFFINE, code=1)
    header.set_sform(CAT12_AFFINE, code=1)
    if offset is not None:
        header["vox_offset"] = offset
    return header.binaryblock + b"\0" * 4


def _write(path, content):
    if path.name.endswith(".gz"):
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


HEADER_CASES = {
    "huge 3D shape": (lambda: _header_bytes((2000, 2000, 2000)), "declares shape (2000, 2000, "
                      "2000) (8000000000 voxels)"),
    "CAT12 grid times 100 volumes": (lambda: _header_bytes(CAT12_SHAPE + (100,)),
                                     "declares shape (121, 145, 121, 100)"),
    "NIfTI-2 with 10^15 voxels": (lambda: _header_bytes((10 ** 5,) * 3, header_class=
                                                        nib.Nifti2Header), "declares shape"),
    "complex voxels": (lambda: _header_bytes(CAT12_SHAPE, np.complex64),
                       "voxels of type complex64"),
    "RGB voxels": (lambda: _header_bytes(CAT12_SHAPE, np.dtype([("R", "u1"), ("G", "u1"),
                                                                ("B", "u1")])),
                   "not real numbers"),
    "data 1 GB past the header": (lambda: _header_bytes(CAT12_SHAPE, offset=2 ** 30),
                                  "puts the data at byte 1073741824"),
    "CAT12 header, no data": (lambda: _header_bytes(CAT12_SHAPE), "truncated"),
    "not NIfTI": (lambda: b"<html>not found</html>" * 30, "cannot read it as NIfTI"),
}


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("case", HEADER_CASES)
def test_nifti_header_is_checked_before_any_data_is_read(tmp_path, case, suffix):
    make, problem = HEADER_CASES[case]
    path = _write(tmp_path / f"mwp1sub-01{suffix}", make())
    for read in (load_cat12_volume, read_nifti):
        with pytest.raises(VolumeError) as error:
            read(path)
        assert str(error.value).startswith(f"{path}: ")
        assert problem in str(error.value) or read is load_cat12_volume


def _gzip_bomb(path, header, inflated_bytes, chunk=1 << 24):
    """A .nii.gz whose header is valid but whose stream inflates to ``inflated_bytes``.

    gzip members may follow each other in one file: one compressed member of ``chunk``
    zeros, repeated, makes gigabytes of stream from a few megabytes of file.
    """
    zeros = gzip.compress(bytes(chunk), compresslevel=9)
    with open(path, "wb") as stream:
        stream.write(gzip.compress(header))
        for _ in range(inflated_bytes // chunk):
            stream.write(zeros)
    return path


@pytest.mark.parametrize("declared", [CAT12_SHAPE, (64, 64, 64)])
def test_gzip_bomb_is_refused_without_inflating_it(tmp_path, declared):
    path = _gzip_bomb(tmp_path / "mwp1sub-01.nii.gz", _header_bytes(declared), 2 ** 31)
    assert path.stat().st_size < 4 * 1024 ** 2  # 2 GiB of zeros in a few MB
    with pytest.raises(VolumeError, match=rf"^{path}: decompresses to more than \d+ bytes "
                       "although its header declares"):
        read_nifti(path)


def test_map_on_cat12_grid_declared_but_off_grid_shape_is_refused_before_reading(tmp_path):
    path = _write(tmp_path / "mwp1sub-01.nii", _header_bytes((121, 145, 120)))
    with pytest.raises(VolumeError, match=rf"^{path}: not on the CAT12 1.5 mm MNI grid"):
        load_cat12_volume(path)  # the file holds no data: refused on its header alone


def test_resampling_still_caps_the_declared_size(tmp_path):
    side = int(round(MAX_VOXELS ** (1 / 3))) + 2
    path = _write(tmp_path / "mwp1sub-01.nii.gz", _header_bytes((side, side, side)))
    with pytest.raises(VolumeError, match=rf"^{path}: the header declares shape"):
        load_cat12_volume(path, resample=True)


@pytest.mark.parametrize("role", ["gm_map", "atlas"])
def test_atlas_measures_refuse_a_huge_header_naming_the_file(tmp_path, role):
    good = nib.Nifti1Image(np.ones((4, 4, 4), dtype=np.float32), np.eye(4))
    bomb = _write(tmp_path / f"{role}.nii.gz", _header_bytes((4000, 4000, 4000)))
    images = {"gm_map": good, "atlas": good, role: bomb}
    with pytest.raises(RegionalError, match=rf"^{bomb}: cannot read the .*declares shape"):
        atlas_gm_volumes(images["gm_map"], images["atlas"])


# --- XML ---------------------------------------------------------------------------

XML_READERS = {"ROI file": read_cat12_roi_xml, "report": read_cat12_report}


def _roi(values="[30.2;30.4]", ids="[21;22]"):
    return (f"<S><lpba40><data><Vgm>{values}</Vgm></data><ids>{ids}</ids><names><item>a"
            "</item><item>b</item></names></lpba40></S>")


XML_CASES = {
    "100000 nested elements": ("<a>" * 100_000 + "</a>" * 100_000, "nested more than 32"),
    "40 nested ROI elements": ("<S>" + "<ROI>" * 40 + "</ROI>" * 40 + "</S>",
                               "nested more than 32"),
    "300000 sibling elements": ("<S>" + "<i/>" * 300_000 + "</S>", "more than 200000 elements"),
    "unknown encoding": ('<?xml version="1.0" encoding="x-no-such"?><S/>',
                         "cannot decode the XML (LookupError"),
    "declared UTF-16, written UTF-8": ('<?xml version="1.0" encoding="utf-16"?><S/>',
                                       "malformed XML"),
    "2 MB number text": ("<S><subjectmeasures><vol_TIV>[" + "1;" * 1_000_000 + "1]</vol_TIV>"
                         "</subjectmeasures>" + _roi(values="[" + "1;" * 1_000_000 + "1]")[3:],
                         "characters (at most"),
    "billion laughs": ('<?xml version="1.0"?><!DOCTYPE S [<!ENTITY a "aaaa">'
                       '<!ENTITY b "&a;&a;&a;">]><S>&b;</S>', "declares a DTD"),
    "invalid UTF-8": (b"<S>\xff\xfe</S>", "malformed XML"),
    "truncated": ("<S><lpba40><data>", "malformed XML"),
}


@pytest.mark.parametrize("reader", XML_READERS)
@pytest.mark.parametrize("case", XML_CASES)
def test_hostile_xml_is_refused_naming_the_file(tmp_path, case, reader):
    content, problem = XML_CASES[case]
    path = tmp_path / "catROI_sub-01_T1w.xml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RegionalError) as error:
        XML_READERS[reader](path)
    assert str(error.value).startswith(f"{path}")
    assert problem in str(error.value)


def _write_sized(path, head, filler, tail, size):
    with open(path, "wb") as stream:
        stream.write(head)
        for _ in range((size - len(head) - len(tail)) // len(filler)):
            stream.write(filler)
        stream.write(tail)
    return path


@pytest.mark.parametrize("reader", XML_READERS)
def test_200_mb_text_node_is_refused_unread(tmp_path, reader):
    path = _write_sized(tmp_path / "catROI_sub-01_T1w.xml", b"<S><lpba40><data><Vgm>[",
                        b"1;" * (1 << 19), b"1]</Vgm></data></lpba40></S>", 200 * 1024 ** 2)
    with pytest.raises(RegionalError, match=rf"^{path}: the file is larger than "
                       rf"{MAX_FILE_BYTES} bytes"):
        XML_READERS[reader](path)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "Inf", "-Inf"])
def test_overflowing_region_value_becomes_n_a_with_a_warning(tmp_path, number):
    path = tmp_path / "catROI_sub-01_T1w.xml"
    path.write_text(_roi(values=f"[30.2;{number}]"))
    lpba = read_cat12_roi_xml(path)["lpba40"]
    assert lpba.measures["Vgm"][0] == 30.2 and np.isnan(lpba.measures["Vgm"][1])
    assert lpba.warnings == (f"{path}: atlas lpba40, measure Vgm: 1 infinite value(s) "
                             "(regions b) written as n/a",)
    table, sidecar = write_measures_tsv({"sub-01": measures_to_row([lpba])},
                                        tmp_path / "regional.tsv", measures={"sub-01": [lpba]})
    assert table.read_text().splitlines()[1] == "sub-01\t30.2\tn/a"
    assert json.loads(sidecar.read_text())["participant_id"]["Warnings"] == {
        "sub-01": list(lpba.warnings)}


@pytest.mark.parametrize("field, content", [
    ("TIV", "<vol_TIV>1e400</vol_TIV>"),
    ("tissue volumes", "<vol_TIV>1400</vol_TIV><vol_abs_CGW>[200 -1e400 500]</vol_abs_CGW>"),
    ("quality rating", "<vol_TIV>1400</vol_TIV></subjectmeasures><qualityratings><IQR>Inf"
                       "</IQR></qualityratings><subjectmeasures>"),
])
def test_overflowing_report_value_is_refused(tmp_path, field, content):
    path = tmp_path / "cat_sub-01_T1w.xml"
    path.write_text(f"<S><subjectmeasures>{content}</subjectmeasures></S>")
    with pytest.raises(RegionalError, match=rf"^{path}: .*(infinite|not one finite number)"):
        read_cat12_report(path)


def test_overflowing_region_ids_are_refused(tmp_path):
    path = tmp_path / "catROI_sub-01_T1w.xml"
    path.write_text(_roi(ids="[21;1e400]"))
    with pytest.raises(RegionalError, match=rf"^{path}: atlas 'lpba40': region ids are not"):
        read_cat12_roi_xml(path)


# --- text tables -------------------------------------------------------------------

STATS = ("# hemi lh\n# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg\n"
         "bankssts 1472 982 2377 {thickness}\ninsula 2200 2100 6900 2.9\n")


def test_overflowing_aparc_value_becomes_n_a_with_a_warning(tmp_path):
    path = tmp_path / "lh.aparc.stats"
    path.write_text(STATS.format(thickness="1e400"))
    stats = read_aparc_stats(path)
    assert np.isnan(stats.measures["ThickAvg"][0]) and stats.measures["ThickAvg"][1] == 2.9
    assert stats.warnings == (f"{path}: atlas aparc, measure ThickAvg: 1 infinite value(s) "
                              "(regions lh_bankssts) written as n/a",)


OVERSIZED = {
    "aparc.stats": (read_aparc_stats, "lh.aparc.stats"),
    "measures table": (read_measures_tsv, "regional.tsv"),
    "label table": (read_label_table, "atlas_dseg.tsv"),
}


@pytest.mark.parametrize("case", OVERSIZED)
def test_oversized_text_file_is_refused_unread(tmp_path, case):
    reader, name = OVERSIZED[case]
    path = tmp_path / name
    with open(path, "wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(RegionalError, match=rf"^{path}: the .* is larger than {MAX_FILE_BYTES}"):
        reader(path)


@pytest.mark.parametrize("content, problem", [
    ("participant_id\ta_r1_Vgm\nsub-01\tinf\n", "'inf' is infinite"),
    ("participant_id\ta_r1_Vgm\nsub-01\t1e400\n", "'1e400' is infinite"),
    ("participant_id\ta_r1_Vgm\nsub-01\t" + "1" * 200_000 + "\n", "not a tab-separated table"),
    ("participant_id\ta_r1_Vgm\nsub-01\t\xe9\n".encode("latin-1"), "is not UTF-8 text"),
])
def test_measures_table_with_hostile_values_is_refused(tmp_path, content, problem):
    path = tmp_path / "regional.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RegionalError) as error:
        read_measures_tsv(path)
    assert str(error.value).startswith(f"{path}")
    assert problem in str(error.value)


def test_label_table_with_a_huge_field_is_refused(tmp_path):
    path = tmp_path / "atlas_dseg.tsv"
    path.write_text("index\tname\n1\t" + "x" * 200_000 + "\n")
    with pytest.raises(RegionalError, match=rf"^{path}: not a readable label table"):
        read_label_table(path)


def test_infinite_value_given_to_the_table_writer_is_refused(tmp_path):
    path = tmp_path / "regional.tsv"
    with pytest.raises(RegionalError, match=rf"^{path}: cat12_TIV of sub-01 is inf"):
        write_measures_tsv({"sub-01": {"cat12_TIV": float("inf")}}, path)
    assert not path.exists()


# --- JSON --------------------------------------------------------------------------

DEEP_JSON = {
    "100000 nested lists": "[" * 100_000 + "]" * 100_000,
    "100000 nested objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "40 nested objects": '{"a":' * 40 + "1" + "}" * 40,
}


@pytest.mark.parametrize("case", DEEP_JSON)
def test_deep_sidecar_is_refused_naming_it(tmp_path, case):
    table, _ = write_measures_tsv({"sub-01": {"a_r1_Vgm": 1.5}}, tmp_path / "a.tsv")
    sidecar = tmp_path / "a_deep.json"
    sidecar.write_text(DEEP_JSON[case])
    with pytest.raises(RegionalError, match=rf"^{sidecar}: "):
        merge_measures_tables([table], tmp_path / "group.tsv", sidecar_paths=[sidecar])


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    path = tmp_path_factory.mktemp("probe") / "age.skops"
    card = {"task": "regression", "target": "age", "n_train": 10,
            "feature_source": {"columns": ["emb_000", "emb_001"]}}
    save_probe(make_probe("regression", alphas=[1.0]).fit(X, y), path, card)
    return path


CARD_CASES = {
    **{case: (text, "is not valid JSON|nests more than 32") for case, text in DEEP_JSON.items()},
    "feature source as text": ('{"feature_source": "columns"}', "no feature_source dict"),
    "versions as a list": ('{"feature_source": {}, "versions": [1]}', "'versions' is not"),
    "a list": ("[1, 2]", "not a probe card"),
    "invalid UTF-8": (b'{"feature_source": "\xff"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", CARD_CASES)
def test_hostile_probe_card_is_refused_naming_it(probe, tmp_path, case):
    content, problem = CARD_CASES[case]
    path = tmp_path / probe.name
    path.write_bytes(probe.read_bytes())
    card = path.with_suffix(".json")
    card.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PredictionError, match=rf"^{card}: .*({problem})"):
        load_probe(path)


def test_oversized_probe_card_is_refused_unread(probe, tmp_path):
    path = tmp_path / probe.name
    path.write_bytes(probe.read_bytes())
    with open(path.with_suffix(".json"), "wb") as stream:
        stream.truncate(16 * 1024 ** 2 + 1)
    with pytest.raises(PredictionError, match=rf"^{path.with_suffix('.json')}: larger than"):
        load_probe(path)


def _rewrite_model(probe, path, member, content):
    """Copy ``probe`` to ``path`` with ``member`` replaced; give it a card that matches."""
    with zipfile.ZipFile(probe) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            if item.filename != member:
                target.writestr(item, source.read(item))
        writer = target.open(member, "w", force_zip64=True)
        with writer:
            for chunk in content:
                writer.write(chunk)
    card = json.loads(probe.with_suffix(".json").read_text())
    card["model_sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("depth", [100_000, 70])
def test_deep_skops_schema_is_refused_naming_the_model(probe, tmp_path, depth):
    nested = '{"__class__": "dict", "content": ' * depth + "1" + "}" * depth
    path = _rewrite_model(probe, tmp_path / "age.skops", "schema.json", [nested.encode()])
    with pytest.raises(PredictionError, match=rf"^{path}: the model schema "
                       "(is not valid JSON|nests more than 64)"):
        load_probe(path)


def test_skops_member_that_inflates_to_gigabytes_is_refused(probe, tmp_path):
    zeros = bytes(1 << 24)
    path = _rewrite_model(probe, tmp_path / "age.skops", "bomb.npy",
                          (zeros for _ in range(40)))  # 640 MiB of zeros
    with pytest.raises(PredictionError, match=rf"^{path}: its members inflate to \d+ bytes"):
        load_probe(path)


def test_skops_file_that_is_not_a_zip_is_refused(probe, tmp_path):
    path = tmp_path / "age.skops"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    card = json.loads(probe.with_suffix(".json").read_text())
    card["model_sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(PredictionError, match=rf"^{path}: not a skops model file"):
        load_probe(path)
