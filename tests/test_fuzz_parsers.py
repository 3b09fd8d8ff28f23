"""Property-based fuzzing of every parser of untrusted files the science layer owns.

Each test feeds generated input (structured near-misses of the real formats, and raw
bytes) to one parser: it must return a value or raise its family's error
(:class:`~anatcl_nipype.errors.AnatCLError` subclasses), never another exception.
Example counts are bounded so that the whole file runs in well under a minute.
"""

import argparse
import json
import string

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anatcl_nipype.encoder.checkpoint import check_checkpoint_metadata
from anatcl_nipype.errors import PredictionError, RegionalError, WeightsError
from anatcl_nipype.prediction.persistence import load_probe, save_probe
from anatcl_nipype.prediction.probes import make_probe
from anatcl_nipype.regional import (
    parse_matlab_array,
    read_aparc_stats,
    read_cat12_report,
    read_cat12_roi_xml,
    read_label_table,
    read_measures_tsv,
)
from anatcl_nipype.regional.tables import merge_measures_tables, write_measures_tsv

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

MATLAB_TEXT = st.text(alphabet="0123456789.-+eE[];, \n\tNaInfint32()truefals", max_size=40)
TAGS = st.sampled_from(["S", "ROI", "lpba40", "data", "ids", "names", "item", "Vgm",
                        "subjectmeasures", "vol_TIV", "vol_abs_CGW", "qualityratings",
                        "IQR", "software", "version_cat"])


def _element(children):
    return st.tuples(TAGS, MATLAB_TEXT, children).map(
        lambda node: f"<{node[0]}>{_escape(node[1])}{''.join(node[2])}</{node[0]}>")


def _escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;")


XML_TREES = st.recursive(st.tuples(TAGS, MATLAB_TEXT).map(
    lambda node: f"<{node[0]}>{_escape(node[1])}</{node[0]}>"),
    lambda children: _element(st.lists(children, max_size=4)), max_leaves=20)
XML_FILES = st.one_of(
    XML_TREES.map(lambda tree: f"<S>{tree}</S>".encode()),
    st.tuples(st.sampled_from(["utf-8", "utf-16", "latin-1", "no-such-codec", ""]), XML_TREES)
    .map(lambda pair: f'<?xml version="1.0" encoding="{pair[0]}"?><S>{pair[1]}</S>'.encode()),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=st.one_of(MATLAB_TEXT, st.text(max_size=60)))
def test_matlab_array_text_gives_an_array_or_regional_error(text):
    try:
        values = parse_matlab_array(text)
    except RegionalError:
        return
    assert values.ndim == 2 and values.dtype == np.float64


@FUZZ
@given(content=XML_FILES)
def test_cat12_roi_xml_gives_measures_or_regional_error(folder, content):
    path = folder / "catROI_fuzz.xml"
    path.write_bytes(content)
    try:
        atlases = read_cat12_roi_xml(path)
    except RegionalError as error:
        assert str(path) in str(error)
        return
    for measures in atlases.values():
        assert not any(np.isinf(values).any() for values in measures.measures.values())


@FUZZ
@given(content=XML_FILES)
def test_cat12_report_gives_a_report_or_regional_error(folder, content):
    path = folder / "cat_fuzz.xml"
    path.write_bytes(content)
    try:
        report = read_cat12_report(path)
    except RegionalError as error:
        assert str(path) in str(error)
        return
    assert np.isfinite(report["tiv_cm3"])


STATS_LINES = st.one_of(
    st.just("# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg"),
    st.sampled_from(["# hemi lh", "# hemi rh", "# hemi xx", "# AnnotationFile ../x.annot",
                     "# TableCol 3 ColHeader SurfArea", "# TableCol 3 Units mm^2", "#", ""]),
    st.lists(st.one_of(st.sampled_from(["insula", "bankssts", "1e400", "nan", "-inf", "2.5"]),
                       st.text(alphabet=string.printable.replace("\n", ""), max_size=8)),
             min_size=1, max_size=6).map(" ".join),
)


@FUZZ
@given(lines=st.lists(STATS_LINES, max_size=8), raw=st.binary(max_size=40))
def test_aparc_stats_gives_measures_or_regional_error(folder, lines, raw):
    path = folder / "lh.aparc.stats"
    path.write_bytes("\n".join(lines).encode() + raw)
    try:
        stats = read_aparc_stats(path)
    except RegionalError as error:
        assert str(path) in str(error)
        return
    assert not any(np.isinf(values).any() for values in stats.measures.values())


TSV_FIELDS = st.one_of(st.sampled_from(["participant_id", "n/a", "1.5", "inf", "1e400",
                                        "nan", "sub-01", "", "9" * 140_000]),
                       st.text(alphabet=string.printable + "\x00é", max_size=10))
TSV_FILES = st.lists(st.lists(TSV_FIELDS, min_size=1, max_size=4).map("\t".join),
                     max_size=5).map(lambda lines: "\n".join(lines).encode())


@FUZZ
@given(content=st.one_of(TSV_FILES, st.binary(max_size=100)))
def test_measures_tsv_gives_a_table_or_regional_error(folder, content):
    path = folder / "regional.tsv"
    path.write_bytes(content)
    try:
        _, columns, values = read_measures_tsv(path)
    except RegionalError as error:
        assert str(path) in str(error)
        return
    assert values.shape[1] == len(columns) and not np.isinf(values).any()


@FUZZ
@given(content=st.one_of(TSV_FILES, st.binary(max_size=100)))
def test_label_table_gives_regions_or_regional_error(folder, content):
    path = folder / "atlas.tsv"
    path.write_bytes(content.replace(b"participant_id", b"index\tname"))
    try:
        ids, names = read_label_table(path)
    except RegionalError as error:
        assert str(path) in str(error)
        return
    assert len(ids) == len(names) and all(region_id >= 0 for region_id in ids)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=30)
JSON_TEXTS = st.one_of(JSON_VALUES.map(json.dumps),
                       st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
                       st.text(alphabet='{}[]":,01 ', max_size=60))


@FUZZ
@given(sidecar=JSON_TEXTS)
def test_sidecar_merge_gives_a_table_or_regional_error(folder, sidecar):
    table, _ = write_measures_tsv({"sub-01": {"a_r1_Vgm": 1.5}}, folder / "a.tsv")
    sidecar_path = folder / "a_fuzz.json"
    sidecar_path.write_text(sidecar)
    try:
        merge_measures_tables([table], folder / "merged.tsv", sidecar_paths=[sidecar_path])
    except RegionalError as error:
        assert str(sidecar_path) in str(error)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    path = tmp_path_factory.mktemp("probe") / "age.skops"
    card = {"task": "regression", "target": "age", "n_train": 10,
            "feature_source": {"columns": ["emb_000", "emb_001"]}}
    save_probe(make_probe("regression", alphas=[1.0]).fit(X, y), path, card)
    return path, json.loads(path.with_suffix(".json").read_text())


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(["feature_source", "versions", "task", "classes",
                                              "cv_metrics", "n_train", "model_sha256"]),
                             JSON_VALUES, max_size=3),
       raw=st.one_of(st.none(), JSON_TEXTS),
       expected=st.one_of(st.none(), st.dictionaries(st.sampled_from(["columns", "weights"]),
                                                     JSON_VALUES, max_size=2)))
def test_probe_card_gives_a_probe_or_prediction_error(probe, extra, raw, expected):
    path, card = probe
    card_file = path.with_suffix(".json")
    card_file.write_text(raw if raw is not None else json.dumps({**card, **extra}))
    try:
        model, loaded = load_probe(path, expected_feature_source=expected)
    except PredictionError as error:
        assert str(path) in str(error) or str(card_file) in str(error)
        return
    finally:
        card_file.write_text(json.dumps(card))
    assert hasattr(model, "predict") and isinstance(loaded, dict)


PLAIN = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
ODD = st.one_of(st.binary(max_size=4), st.just(torch.zeros(2)), st.just(torch.tensor(3)),
                st.just(object()), st.just(argparse.Namespace(lr=1.0)), st.just({1: "a"}))
METADATA_VALUES = st.recursive(st.one_of(PLAIN, ODD),
                               lambda children: st.one_of(
                                   st.lists(children, max_size=3),
                                   st.tuples(children, children),
                                   st.dictionaries(st.text(max_size=4), children, max_size=3)),
                               max_leaves=20)


@FUZZ
@given(content=st.dictionaries(st.sampled_from(["opts", "epoch", "run_id", "optimizer"]),
                               st.one_of(METADATA_VALUES,
                                         st.dictionaries(st.text(max_size=4), METADATA_VALUES,
                                                         max_size=3).map(
                                             lambda d: argparse.Namespace(**d))),
                               max_size=4))
def test_checkpoint_metadata_gives_metadata_or_weights_error(content):
    try:
        metadata = check_checkpoint_metadata(content, "fuzz.pth")
    except WeightsError as error:
        assert str(error).startswith("fuzz.pth: metadata ")
        return
    assert metadata["run_id"] is None or isinstance(metadata["run_id"], str)
    assert metadata["epoch"] is None or type(metadata["epoch"]) is int
    assert isinstance(metadata["options"], dict)
