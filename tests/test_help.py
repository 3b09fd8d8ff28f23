"""Every subcommand and option of ``anatcl-nipype`` says in one line what it does."""

import argparse

import pytest

from anatcl_nipype.cli.demo import _demo_parser
from anatcl_nipype.cli.main import main
from anatcl_nipype.cli.parser import build_parser
from anatcl_nipype.cli.weights import weights_parser

PARSERS = {"anatcl-nipype": build_parser, "anatcl-nipype demo": _demo_parser,
           "anatcl-nipype weights": weights_parser}


def actions_without_help(parser):
    return [action.dest for action in parser._actions
            if not (action.help and action.help.strip()) or action.help == argparse.SUPPRESS]


@pytest.mark.parametrize("command", PARSERS)
def test_every_option_has_a_one_line_help(command):
    parser = PARSERS[command]()
    assert actions_without_help(parser) == []
    assert parser.description


@pytest.mark.parametrize("argv, expected", [
    (["weights", "--help"], ["list    per descriptor and fold: the download URL, the exact path",
                             "fetch   download", "verify  re-check"]),
    (["demo", "--help"], ["--n-subjects N_SUBJECTS", "participants in the synthetic cohort",
                          "--seed SEED", "seed of the synthetic cohort"]),
    (["--help"], ["anatcl-nipype demo", "anatcl-nipype weights list|fetch|verify",
                  "--resample", "participant: encode each participant"]),
])
def test_help_describes_the_subcommands(argv, expected, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in expected:
        assert " ".join(text.split()) in out


def test_resample_on_the_command_line_reaches_the_encoder(tmp_path):
    from anatcl_nipype.cli.parser import parse_options
    from anatcl_nipype.workflows.base import init_single_subject_wf

    options = parse_options(["cat12", "out", "participant", "--resample"])
    encoder = options.encoder_options()
    assert encoder.resample is True
    assert parse_options(["cat12", "out", "participant"]).encoder_options().resample is False
    workflow = init_single_subject_wf(
        subject={"participant_id": "sub-01", "gm_modulated": str(tmp_path / "mwp1sub-01.nii")},
        output_dir=tmp_path, encoder=encoder)
    assert workflow.get_node("anatcl_encoding_wf.anatcl_encode").inputs.resample is True
