"""The group level without weights options: it finds the participant outputs that exist."""

import json

import numpy as np
import pytest

from anatcl_nipype.cli.group import find_embedding_kinds, plan_group_level
from anatcl_nipype.cli.parser import UsageError, parse_options


def write_outputs(root, desc, weights):
    """Two participants' embeddings named ``desc``, their sidecars naming ``weights``."""
    for label in ("01", "02"):
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        np.save(anat / f"sub-{label}_desc-{desc}_embedding.npy", np.zeros(512, np.float32))
        (anat / f"sub-{label}_desc-{desc}_embedding.json").write_text(
            json.dumps({"weights": weights}))


@pytest.fixture
def study(tmp_path):
    (tmp_path / "cat12").mkdir()
    (tmp_path / "cat12" / "participants.tsv").write_text(
        "participant_id\tdiagnosis\nsub-01\tAD\nsub-02\tCN\n")
    return tmp_path


def plan(study, *options):
    return plan_group_level(parse_options([str(study / "cat12"), str(study / "out"), "group",
                                           "--target", "diagnosis", *options]))


def test_custom_embeddings_are_found_and_their_weights_named(study, capsys):
    write_outputs(study / "out", "anatclRandom", {"path": "/w/random.pth", "random": True})
    assert plan(study)["desc"] == "anatclRandom"
    assert capsys.readouterr().out == ("Using the participant-level embeddings desc-anatclRandom, "
                                       "made with the checkpoint /w/random.pth (SEEDED RANDOM "
                                       "weights)\n")


def test_a_checkpoint_named_on_the_command_line_finds_its_random_or_custom_embeddings(study):
    """--weights FILE: desc-anatclRandom when the participant level wrote that file's
    embeddings as seeded random weights, else desc-anatclCustom (no checkpoint loaded)."""
    write_outputs(study / "out", "anatclRandom", {"path": "/w/random.pth", "random": True})
    write_outputs(study / "out", "anatclCustom", {"path": "/w/mine.pth"})
    assert plan(study, "--weights", "/w/random.pth")["desc"] == "anatclRandom"
    assert plan(study, "--weights", "/w/mine.pth")["desc"] == "anatclCustom"


def test_a_probe_fitted_on_random_embeddings_is_applied_to_them(study):
    """The card names a checkpoint by its sha256; the sidecars say which desc it got."""
    write_outputs(study / "out", "anatclRandom",
                  {"path": "/w/random.pth", "random": True, "sha256": "ab" * 32})
    (study / "probe.skops").write_bytes(b"")
    for sha256, desc in (("ab" * 32, "anatclRandom"), ("cd" * 32, "anatclCustom")):
        (study / "probe.json").write_text(json.dumps(
            {"target": "diagnosis", "task": "classification", "features": "embeddings",
             "feature_source": {"weights": {"descriptor": None, "fold": None,
                                            "sha256": sha256}}}))
        assert plan(study, "--model", str(study / "probe.skops"))["desc"] == desc


def test_released_weights_are_found_by_their_name(study):
    write_outputs(study / "out", "anatclLocalFold3", {"descriptor": "local", "fold": 3})
    assert find_embedding_kinds(study / "out") == {
        "anatclLocalFold3": "released local fold 3 weights"}
    assert plan(study)["desc"] == "anatclLocalFold3"


def test_several_kinds_ask_which_one(study):
    write_outputs(study / "out", "anatclGlobalFold0", {"descriptor": "global", "fold": 0})
    write_outputs(study / "out", "anatclCustom", {"path": "/w/mine.pth"})
    with pytest.raises(UsageError, match=r"holds embeddings from several weights: "
                       r"desc-anatclCustom \(the checkpoint /w/mine.pth\); desc-anatclGlobalFold0 "
                       r"\(released global fold 0 weights\)\. Choose with --descriptor/--fold"):
        plan(study)
    # a choice made on the command line is taken as it is
    assert plan(study, "--fold", "0")["desc"] == "anatclGlobalFold0"


def test_regional_features_need_no_embeddings(study):
    write_outputs(study / "out", "anatclGlobalFold0", {"descriptor": "global", "fold": 0})
    write_outputs(study / "out", "anatclCustom", {"path": "/w/mine.pth"})
    assert plan(study, "--features", "regional")["features"] == "regional"
