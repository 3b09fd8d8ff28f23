"""The probe pipelines: their steps and defaults per task."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import TASKS, make_probe
from anatcl_nipype.prediction.probes import DEFAULT_ALPHAS, DEFAULT_CS


def test_classification_probe_defaults():
    probe = make_probe("classification", seed=3)
    imputer, scaler, model = (step for _, step in probe.steps)
    assert imputer.strategy == "median"
    assert type(scaler).__name__ == "StandardScaler"
    assert type(model).__name__ == "LogisticRegressionCV"
    assert model.class_weight == "balanced"
    assert model.Cs == list(DEFAULT_CS)
    assert DEFAULT_CS[0] == pytest.approx(1e-4) and DEFAULT_CS[-1] == pytest.approx(1e2)
    assert isinstance(model.cv, StratifiedKFold)
    assert (model.cv.n_splits, model.cv.shuffle, model.cv.random_state) == (5, True, 3)


@pytest.mark.parametrize("task", ["regression", "brain_age"])
def test_regression_probe_defaults(task):
    model = make_probe(task).steps[-1][1]
    assert type(model).__name__ == "RidgeCV"
    assert model.alphas == DEFAULT_ALPHAS
    assert len(DEFAULT_ALPHAS) == 15
    assert model.cv is None  # efficient leave-one-out


def test_unknown_task_refused():
    assert TASKS == ("classification", "regression", "brain_age")
    with pytest.raises(PredictionError, match="unknown task 'survival'; choose one of "
                                              "classification, regression, brain_age"):
        make_probe("survival")


@pytest.mark.parametrize("classes", [["CN", "AD"], ["CN", "MCI", "AD"]])
def test_classification_probe_fits_binary_and_multiclass(classes):
    rng = np.random.default_rng(0)
    y = np.repeat(classes, 30)
    X = rng.normal(size=(len(y), 4))
    for column, name in enumerate(classes):
        X[y == name, column] += 3.0
    X[::7, 1] = np.nan  # the imputer fills these
    probe = make_probe("classification", cs=[0.1, 1.0], inner_cv=3).fit(X, y)
    assert sorted(probe.classes_) == sorted(classes)
    assert probe.predict_proba(X).shape == (len(y), len(classes))
    assert np.mean(probe.predict(X) == y) > 0.9  # 3-sd shifts: nearly separable
