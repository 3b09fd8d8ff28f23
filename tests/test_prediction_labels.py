"""Labels from participants.tsv: encodings, id matching and every refusal."""

import numpy as np
import pytest

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import load_labels


@pytest.fixture
def participants(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\tdiagnosis\tsite\n"
                    "sub-01\t61.5\tAD\tA\n"
                    "sub-02\tn/a\tCN\tA\n"
                    "sub-03\t70\tn/a\tB\n"
                    "sub-04\t55\tCN\tB\n")
    return path


def test_regression_labels_follow_feature_order_and_drop_na(participants):
    result = load_labels(participants, "age", ["sub-04", "sub-01", "sub-02", "sub-03"],
                         "regression")
    assert result.participant_ids == ["sub-04", "sub-01", "sub-03"]
    np.testing.assert_array_equal(result.labels, [55.0, 61.5, 70.0])
    assert result.labels.dtype == float
    assert result.dropped == [("sub-02", "age is n/a")]
    assert result.notes == []


def test_classification_labels_are_strings(participants):
    result = load_labels(participants, "diagnosis", ["sub-01", "sub-02", "sub-03"],
                         "classification")
    assert result.labels.tolist() == ["AD", "CN"]
    assert result.dropped == [("sub-03", "diagnosis is n/a")]


def test_participants_without_features_are_noted(participants):
    result = load_labels(participants, "age", ["sub-01"], "brain_age")
    assert result.participant_ids == ["sub-01"]
    assert len(result.notes) == 1
    assert "3 participant(s)" in result.notes[0] and "sub-02, sub-03, sub-04" in result.notes[0]


def test_bom_and_crlf(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_bytes("participant_id\tage\r\nsub-01\t20\r\nsub-02\t30\r\n"
                     .encode("utf-8-sig"))
    result = load_labels(path, "age", ["sub-01", "sub-02"], "regression")
    np.testing.assert_array_equal(result.labels, [20.0, 30.0])


@pytest.mark.parametrize(("file_ids", "feature_ids"), [
    (["01", "02"], ["sub-01", "sub-02"]),
    (["sub-01", "sub-02"], ["01", "02"]),
])
def test_ids_match_with_or_without_sub_prefix(tmp_path, file_ids, feature_ids):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\n" + "".join(f"{i}\t{n}\n"
                                                      for i, n in zip(file_ids, (40, 50))))
    result = load_labels(path, "age", feature_ids, "regression")
    assert result.participant_ids == feature_ids  # the features' spelling is kept
    np.testing.assert_array_equal(result.labels, [40.0, 50.0])


def test_duplicate_participant_refused(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\nsub-01\t40\n01\t41\n")
    with pytest.raises(PredictionError, match=r"line 3: participant '01' is listed twice"):
        load_labels(path, "age", ["sub-01"], "regression")


def test_duplicate_feature_ids_refused(participants):
    with pytest.raises(PredictionError, match="repeat a subject"):
        load_labels(participants, "age", ["sub-01", "01"], "regression")


def test_subjects_missing_from_participants_are_listed(participants):
    with pytest.raises(PredictionError, match=r"2 participant\(s\) with features have no "
                                              r"row: sub-07, sub-09") as error:
        load_labels(participants, "age", ["sub-01", "sub-07", "sub-09"], "regression")
    assert str(participants) in str(error.value)


def test_missing_column_lists_available_columns(participants):
    with pytest.raises(PredictionError, match="no column 'sex'; available columns: "
                                              "participant_id, age, diagnosis, site"):
        load_labels(participants, "sex", ["sub-01"], "classification")


def test_non_numeric_regression_label_refused(participants):
    with pytest.raises(PredictionError, match="diagnosis of sub-01 is 'AD', not a number"):
        load_labels(participants, "diagnosis", ["sub-01"], "regression")


def test_unknown_task_and_missing_file(participants, tmp_path):
    with pytest.raises(PredictionError, match="unknown task 'survival'"):
        load_labels(participants, "age", ["sub-01"], "survival")
    with pytest.raises(PredictionError, match="no such participants.tsv"):
        load_labels(tmp_path / "absent.tsv", "age", ["sub-01"], "regression")


def test_comma_separated_file_is_explained(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id,age\nsub-01,40\n")
    with pytest.raises(PredictionError, match="no 'participant_id' column.*tab-separated"):
        load_labels(path, "age", ["sub-01"], "regression")
