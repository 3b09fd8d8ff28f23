"""The brain-age bias line's inner folds on small cohorts: ``--bias-cv`` from the command
line to FitProbe and the methods text, and a check that counts the groups it splits by."""

import json

import numpy as np
import pytest

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import BrainAgeRegressor, make_probe
from anatcl_nipype.prediction.study import fit_probe_study
from anatcl_nipype.reports.collect import TargetResults
from anatcl_nipype.reports.methods import probe_paragraph


def session_study(folder, n_subjects, n_sessions=2, seed=0):
    """Features tracking age for each session of ``n_subjects``, with participants.tsv and
    sessions.tsv (ages per visit); returns the feature table."""
    rng = np.random.default_rng(seed)
    lines, participants = ["participant_id\tsession_id\tf1\tf2"], ["participant_id"]
    for number in range(1, n_subjects + 1):
        subject = f"sub-{number:02d}"
        participants.append(subject)
        ages = 60 + 3 * number + 2 * np.arange(n_sessions)
        (folder / subject).mkdir(parents=True)
        (folder / subject / f"{subject}_sessions.tsv").write_text(
            "session_id\tage\n" + "".join(f"ses-{s + 1}\t{a}\n" for s, a in enumerate(ages)))
        for session, age in enumerate(ages, start=1):
            lines.append(f"{subject}\tses-{session}\t{age / 10 + rng.normal(0, 0.1):.4f}\t"
                         f"{rng.normal():.4f}")
    (folder / "participants.tsv").write_text("\n".join(participants) + "\n")
    (folder / "features.tsv").write_text("\n".join(lines) + "\n")
    return folder / "features.tsv"


def study(folder, n_subjects, **options):
    table = session_study(folder, n_subjects)
    written = fit_probe_study([str(table)], folder / "participants.tsv", "age", "auto",
                              str(folder / "age"), cv=2, **options)
    return json.loads(open(written["out_json"]).read())


def test_grouped_bias_check_counts_groups_not_rows():
    """4 rows of 4 participants: too few rows for 5 folds, but the split is by group."""
    rng = np.random.default_rng(0)
    age = np.array([60.0, 65.0, 70.0, 75.0])
    X = age[:, None] / 10 + rng.normal(0, 0.1, (4, 1))
    model = BrainAgeRegressor(make_probe("brain_age", alphas=[1.0]), bias_cv=5).fit(
        X, age, groups=["a", "b", "c", "d"])
    assert model.bias_folds_ == 4
    with pytest.raises(PredictionError, match=r"4 training participants are too few for "
                                              r"the brain-age bias correction's 5-fold .*"
                                              r"\(the command line's --bias-cv\), or pass none"):
        BrainAgeRegressor(make_probe("brain_age", alphas=[1.0]), bias_cv=5).fit(X, age)
    assert BrainAgeRegressor(bias_cv=None).fit(X, age).bias_folds_ is None


def test_four_participants_two_sessions_cv2_say_which_option_to_change(tmp_path):
    with pytest.raises(PredictionError) as error:
        study(tmp_path / "default", 4)
    message = str(error.value)
    assert message.startswith("the brain-age bias correction's 2-fold cross-validation over "
                              "the 2 groups of the training rows: the training rows hold 1 "
                              "group: too few for a grouped inner search")
    assert message.endswith("or lower bias_cv (the command line's --bias-cv), or pass none to "
                            "fit the bias line on in-sample training predictions, or add "
                            "participants")
    summary = study(tmp_path / "in_sample", 4, bias_cv=None)
    assert summary["validation"]["bias_cv"] is None
    text = probe_paragraph(TargetResults("age", tmp_path, summary=summary))
    assert ("fitted on the in-sample predictions of each training fold (--bias-cv none: "
            "too few participants to cross-validate within them), which under-corrects the "
            "bias, then applied to the test fold") in text


def test_fewer_bias_folds_than_asked_are_said_and_recorded(tmp_path, capsys):
    summary = study(tmp_path, 6)  # 3 participants in each training fold: 3 bias folds, not 5
    assert summary["validation"] == {"cv": 2, "n_repeats": 1, "seed": 0,
                                     "group_column": "participant_id", "bias_cv": 5,
                                     "bias_folds": [3]}
    assert ("brain-age bias line: 3-fold cross-validation within the training folds instead "
            "of 5 (at most one fold per participant or group in a training fold)"
            in capsys.readouterr().out)
    text = probe_paragraph(TargetResults("age", tmp_path, summary=summary))
    assert ("fitted on 5-fold cross-validated predictions within each training fold "
            "(GroupKFold by 'participant_id'; 3 folds where a training fold held fewer than 5 "
            "values of it), then applied to the test fold") in text


def test_bias_cv_goes_from_the_command_line_to_the_probe_node(tmp_path):
    from anatcl_nipype.cli.group import _study_options
    from anatcl_nipype.cli.parser import parse_options
    from anatcl_nipype.workflows.group import init_anatcl_group_wf

    for given, expected in (([], 5), (["--bias-cv", "3"], 3), (["--bias-cv", "none"], None)):
        options = parse_options(["cat12", "out", "group", "--target", "age", *given])
        assert options.bias_cv == expected
        workflow = init_anatcl_group_wf(target="age", **_study_options(options))
        assert workflow.get_node("fit_probe").inputs.bias_cv == expected
        said = "in-sample predictions" if expected is None else f"fitted on {expected}-fold"
        assert said in workflow.__desc__  # the workflow's methods text says the same
    with pytest.raises(SystemExit) as exit_:
        parse_options(["cat12", "out", "group", "--bias-cv", "1"])
    assert exit_.value.code == 2
