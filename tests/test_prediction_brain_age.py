"""Brain age and its linear age-bias correction."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import BrainAgeRegressor, make_probe


class HalfwayRegressor(RegressorMixin, BaseEstimator):
    """Predicts 0.5 * x + 25 from the first column: a known, maximally biased model."""

    def fit(self, X, y):
        self.fitted_ = True
        return self

    def predict(self, X):
        return 0.5 * np.asarray(X)[:, 0] + 25.0


def noisy_cohort(n, seed):
    """Ages 20-80; 20 features carry age with enough noise for a strong age bias."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 80, n)
    loadings = np.random.default_rng(99).normal(size=20)  # same loadings for every cohort
    X = np.outer((age - 50) / 17, loadings) + rng.normal(0, 3.0, (n, 20))
    return X, age


def correlation(a, b):
    return np.corrcoef(a, b)[0, 1]


def test_correction_formula_on_a_known_bias():
    age = np.array([20.0, 40.0, 60.0, 80.0])
    model = BrainAgeRegressor(HalfwayRegressor(), bias_cv=None).fit(age[:, None], age)
    assert model.bias_slope_ == pytest.approx(0.5)
    assert model.bias_intercept_ == pytest.approx(25.0)
    np.testing.assert_allclose(model.predict(age[:, None]), [35, 45, 55, 65])
    np.testing.assert_allclose(model.predict(age[:, None], age=age), age)  # bias removed
    # New subjects whose features say 10 years older than they are: raw prediction
    # 0.5 * (age + 10) + 25; corrected = raw + age - (0.5 * age + 25) = age + 5.
    new_age = np.array([30.0, 70.0])
    np.testing.assert_allclose(model.predict(new_age[:, None] + 10, age=new_age), new_age + 5)
    np.testing.assert_allclose(model.brain_age_gap(new_age[:, None] + 10, new_age), [5, 5])


def test_training_gap_is_decorrelated_from_age():
    X, age = noisy_cohort(160, seed=0)
    model = BrainAgeRegressor(make_probe("brain_age")).fit(X, age)
    training_predictions = model.bias_fit_predictions_
    before = correlation(training_predictions - age, age)
    after = correlation(model.correct(training_predictions, age) - age, age)
    assert before < -0.3  # regression to the mean: young over-, old under-estimated
    assert abs(after) < 0.1  # by construction ~0: the corrected gap is an OLS residual
    assert model.bias_slope_ < 0.9


def test_test_fold_uses_the_stored_training_line_unchanged():
    X, age = noisy_cohort(160, seed=0)
    X_test, age_test = noisy_cohort(60, seed=1)
    model = BrainAgeRegressor().fit(X, age)
    stored = (model.bias_slope_, model.bias_intercept_)
    raw = model.predict(X_test)
    corrected = model.predict(X_test, age=age_test)
    assert (model.bias_slope_, model.bias_intercept_) == stored  # not refitted
    np.testing.assert_allclose(corrected, raw + age_test - (stored[0] * age_test + stored[1]))
    refitted = np.polyfit(age_test, raw, 1)
    assert abs(refitted[0] - stored[0]) > 1e-3  # a refit on the test fold would differ
    # Applied to unseen subjects the correction still shrinks the age dependence.
    assert abs(correlation(corrected - age_test, age_test)) < abs(
        correlation(raw - age_test, age_test)) / 2


def test_in_sample_line_under_corrects():
    # Why the line is fitted on cross-validated training predictions by default:
    # in-sample predictions look less biased than any test prediction will be.
    X, age = noisy_cohort(80, seed=2)
    cross_validated = BrainAgeRegressor(bias_cv=5).fit(X, age)
    in_sample = BrainAgeRegressor(bias_cv=None).fit(X, age)
    assert in_sample.bias_slope_ > cross_validated.bias_slope_


def test_no_correction_leaves_predictions_alone():
    X, age = noisy_cohort(60, seed=0)
    model = BrainAgeRegressor(bias_correction=None).fit(X, age)
    assert (model.bias_slope_, model.bias_intercept_) == (1.0, 0.0)
    np.testing.assert_allclose(model.predict(X, age=age), model.predict(X))


def test_estimator_conventions():
    model = BrainAgeRegressor(bias_cv=3, seed=4)
    assert model.get_params() == {"probe": None, "bias_correction": "linear",
                                  "bias_cv": 3, "seed": 4}
    assert model.set_params(bias_cv=4).bias_cv == 4
    with pytest.raises(PredictionError, match="bias_correction='quadratic'"):
        BrainAgeRegressor(bias_correction="quadratic").fit(np.zeros((10, 2)), np.arange(10.0))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, 2)))



def test_grouped_bias_folds_are_at_most_the_number_of_groups():
    from sklearn.model_selection import GroupKFold, cross_val_predict

    X, age = noisy_cohort(60, seed=2)
    groups = np.repeat(["a", "b", "c"], 20)
    model = BrainAgeRegressor(make_probe("brain_age", alphas=[1.0]), bias_cv=5).fit(
        X, age, groups=groups)
    expected = cross_val_predict(make_probe("brain_age", alphas=[1.0]), X, age, groups=groups,
                                 cv=GroupKFold(3))
    # RidgeCV refits its one alpha after a grouped search: equal to rounding
    np.testing.assert_allclose(model.bias_fit_predictions_, expected, rtol=1e-12)
    with pytest.raises(PredictionError, match="hold 1 group: too few for a grouped"):
        BrainAgeRegressor().fit(X, age, groups=np.zeros(60))
    from sklearn.linear_model import Ridge
    with pytest.raises(PredictionError, match="1 group: too few for the grouped cross-val"):
        BrainAgeRegressor(Ridge()).fit(X, age, groups=np.zeros(60))
