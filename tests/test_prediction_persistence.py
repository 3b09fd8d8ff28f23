"""Probe files: skops round trip, the card, and every refusal."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline

import anatcl_nipype
from anatcl_nipype.errors import PredictionError
from anatcl_nipype.files import sha256_file
from anatcl_nipype.prediction import (
    BrainAgeRegressor,
    card_path,
    load_probe,
    make_probe,
    save_probe,
)

COLUMNS = ["emb_000", "emb_001", "emb_002"]
SOURCE = {"weights": {"descriptor": "global", "fold": 0, "sha256": "ab" * 32},
          "columns": COLUMNS}


class Sneaky(TransformerMixin, BaseEstimator):
    """A harmless stand-in for a class nobody allowed in a probe file."""

    def fit(self, X, y=None):
        self.seen_ = True
        return self

    def transform(self, X):
        return X


def features(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 3)), columns=COLUMNS)


def card(task="classification", **changes):
    return {"task": task, "target": "diagnosis", "n_train": 40, "feature_source": SOURCE,
            "cv_metrics": {"balanced_accuracy": {"mean": 0.9, "sd": 0.05}}, **changes}


@pytest.fixture
def classifier():
    X = features()
    y = np.where(X["emb_000"] > 0, "AD", "CN")
    return make_probe("classification", cs=[1.0], inner_cv=2).fit(X, y), X


def test_round_trip_predicts_identically_and_writes_the_card(tmp_path, classifier):
    model, X = classifier
    model_path, card_file = save_probe(model, tmp_path / "dx.skops", card())
    assert card_file == tmp_path / "dx.json" == card_path(model_path)
    loaded, loaded_card = load_probe(model_path, expected_feature_source=SOURCE)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded_card == json.loads(card_file.read_text())
    assert loaded_card["task"] == "classification"
    assert loaded_card["target"] == "diagnosis"
    assert loaded_card["classes"] == ["AD", "CN"]
    assert loaded_card["n_train"] == 40
    assert loaded_card["feature_source"] == SOURCE
    assert loaded_card["cv_metrics"] == {"balanced_accuracy": {"mean": 0.9, "sd": 0.05}}
    assert loaded_card["model_file"] == "dx.skops"
    assert loaded_card["model_sha256"] == sha256_file(model_path)
    assert loaded_card["versions"]["anatcl_nipype"] == anatcl_nipype.__version__
    assert set(loaded_card["versions"]) == {"anatcl_nipype", "scikit-learn", "skops", "numpy"}


def test_brain_age_regressor_round_trip(tmp_path):
    X = features(60)
    age = 50 + 10 * X["emb_001"].to_numpy()
    model = BrainAgeRegressor(make_probe("brain_age", alphas=[1.0]), bias_cv=3).fit(X, age)
    path, _ = save_probe(model, tmp_path / "age.skops", card("brain_age", target="age"))
    loaded, loaded_card = load_probe(path)
    assert loaded_card["classes"] is None
    np.testing.assert_array_equal(loaded.predict(X, age=age), model.predict(X, age=age))
    assert (loaded.bias_slope_, loaded.bias_intercept_) == (model.bias_slope_,
                                                             model.bias_intercept_)


def test_tampered_file_refused(tmp_path, classifier):
    path, _ = save_probe(classifier[0], tmp_path / "dx.skops", card())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PredictionError, match="SHA-256 does not match dx.json; the model "
                                              "file was changed or replaced"):
        load_probe(path)


@pytest.mark.parametrize(("expected", "difference"), [
    ({**SOURCE, "weights": {**SOURCE["weights"], "fold": 3}},
     "weights.fold: card has 0, expected 3"),
    ({"columns": COLUMNS[:2] + ["nm_lAmy_Vgm"]},
     r"columns: 1 expected but not in the card \(nm_lAmy_Vgm\), 1 in the card but not "
     r"expected \(emb_002\)"),
    ({"columns": COLUMNS[::-1]}, "columns: same 3 entries in a different order"),
    ({"regional_measures": ["Vgm"]}, r"regional_measures: not in the card \(expected \['Vgm'\]\)"),
])
def test_mismatched_feature_source_refused(tmp_path, classifier, expected, difference):
    path, _ = save_probe(classifier[0], tmp_path / "dx.skops", card())
    with pytest.raises(PredictionError, match="trained on other features than expected: "
                                              + difference):
        load_probe(path, expected_feature_source=expected)


def test_untrusted_type_refused(tmp_path):
    X = features()
    model = make_pipeline(Sneaky(), make_probe("regression", alphas=[1.0]))
    model.fit(X, X["emb_000"])
    path, _ = save_probe(model, tmp_path / "sneaky.skops", card("regression"))
    with pytest.raises(PredictionError, match=r"not allowed in a probe file: \S*Sneaky; "
                                              "refusing to load it"):
        load_probe(path)


def test_missing_card_and_non_skops_file_refused(tmp_path, classifier):
    path, card_file = save_probe(classifier[0], tmp_path / "dx.skops", card())
    card_file.unlink()
    with pytest.raises(PredictionError, match="no card dx.json beside it"):
        load_probe(path)
    fake = tmp_path / "fake.skops"
    fake.write_bytes(b"not a zip file")
    (tmp_path / "fake.json").write_text(json.dumps(
        {"feature_source": SOURCE, "model_sha256": sha256_file(fake)}))
    with pytest.raises(PredictionError, match="not a skops model file"):
        load_probe(fake)
    with pytest.raises(PredictionError, match="no such model file"):
        load_probe(tmp_path / "absent.skops")


@pytest.mark.parametrize(("bad_card", "message"), [
    ({key: value for key, value in card().items() if key != "n_train"},
     "the card lacks n_train"),
    (card(feature_source={"weights": SOURCE["weights"]}),
     "must be a dict with the feature 'columns'"),
    (card(task="survival"), "unknown task 'survival'"),
])
def test_incomplete_card_refused(tmp_path, classifier, bad_card, message):
    with pytest.raises(PredictionError, match=message):
        save_probe(classifier[0], tmp_path / "dx.skops", bad_card)
    assert not list(tmp_path.iterdir())  # nothing written


def test_unfitted_model_refused(tmp_path):
    with pytest.raises(PredictionError, match="not fitted"):
        save_probe(make_probe("regression"), tmp_path / "dx.skops", card("regression"))
