"""Brain age: a ridge probe that predicts age, with the linear age-bias correction.

Regression to the mean makes every brain-age model over-estimate the age of young
subjects and under-estimate that of old ones, so the raw brain-age gap (predicted
minus true age) correlates negatively with age. The standard correction
(Beheshti et al. 2019, NeuroImage: Clinical 24:102063; the same linear fit as in
Cole et al. 2018, Molecular Psychiatry 23:1385) fits, on the TRAINING data only,

    predicted_age = slope * age + intercept

and then corrects any prediction with the stored ``slope`` and ``intercept``::

    corrected_age = predicted_age + (age - (slope * age + intercept))
    brain_age_gap = corrected_age - age = predicted_age - (slope * age + intercept)

(Cole et al. use ``(predicted_age - intercept) / slope`` instead, which rescales the
same residual by ``1 / slope``.) Like every such correction it needs the subject's
true age at prediction time: it is a correction of the gap, not a prediction of age.
The metrics of a brain-age model (MAE, R2) are therefore reported on the raw
predictions.

The line is fitted on cross-validated predictions within the training data
(``bias_cv`` folds; the command line's ``--bias-cv``) rather than on in-sample
predictions, which are closer to the truth than any test prediction will be and so
would under-correct (``bias_cv=None`` fits it on them all the same, for cohorts too
small to split). With ``groups`` (``fit(X, age, groups=...)``: participants with
several sessions, sites) those folds are ``GroupKFold`` folds over the groups, fewer
than ``bias_cv`` when the training rows hold fewer groups (``bias_folds_`` says how
many were used), and the probe's own penalty search splits by group too.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> age = rng.uniform(20, 80, 120)
>>> X = age[:, None] + rng.normal(0, 15, (120, 4))
>>> model = BrainAgeRegressor().fit(X, age)
>>> gap = model.brain_age_gap(X, age)
>>> bool(abs(np.corrcoef(gap, age)[0, 1]) < abs(np.corrcoef(model.predict(X) - age, age)[0, 1]))
True
"""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GroupKFold, KFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction.probes import GroupedFit, fit_probe, make_probe

BIAS_CORRECTIONS = ("linear", None)


class BrainAgeRegressor(RegressorMixin, BaseEstimator):
    """Predict age from features; correct the brain-age gap for the age bias.

    Parameters
    ----------
    probe : estimator, optional
        The regression model (unfitted); default ``make_probe("brain_age")``.
    bias_correction : {"linear", None}
        ``"linear"``: the correction described in the module docstring; ``None``:
        predictions and gaps are left as the probe gives them.
    bias_cv : int or None
        Folds of the training-data cross-validation whose predictions the bias line
        is fitted on (with groups: at most one per group); ``None`` fits it on in-sample
        training predictions.
    seed : int
        Seed of the ``bias_cv`` fold shuffle.

    Attributes
    ----------
    probe_ : the fitted probe.
    bias_slope_, bias_intercept_ : float
        The training-data line ``predicted = slope * age + intercept`` (1 and 0 when
        ``bias_correction`` is None). Never refitted by ``predict``.
    bias_fit_predictions_ : ndarray
        The training predictions the line was fitted on.
    bias_folds_ : int or None
        The folds of that cross-validation (``None``: in-sample predictions).

    >>> model = BrainAgeRegressor(bias_correction=None)
    >>> model.get_params()["bias_correction"] is None
    True
    """

    def __init__(self, probe=None, bias_correction="linear", bias_cv=5, seed=0):
        self.probe = probe
        self.bias_correction = bias_correction
        self.bias_cv = bias_cv
        self.seed = seed

    def fit(self, X, y, groups=None):
        """Fit the probe on ``(X, age)`` and the bias line on training predictions.

        ``groups``: one label per row; every split (bias folds, penalty search)
        then keeps each group on one side.
        """
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise PredictionError(f"bias_correction={self.bias_correction!r}; choose "
                                  "'linear' or None")
        age = np.asarray(y, dtype=float)
        probe = make_probe("brain_age") if self.probe is None else self.probe
        self.probe_ = fit_probe(probe, X, age, groups)
        self.bias_folds_ = None
        if self.bias_correction is None:
            self.bias_slope_, self.bias_intercept_ = 1.0, 0.0
            return self
        self.bias_fit_predictions_ = self._training_predictions(probe, X, age, groups)
        slope, intercept = np.polyfit(age, self.bias_fit_predictions_, deg=1)
        self.bias_slope_, self.bias_intercept_ = float(slope), float(intercept)
        return self

    def predict(self, X, age=None):
        """Predicted age: raw without ``age``; bias-corrected when ``age`` is given."""
        check_is_fitted(self, "probe_")
        predicted = self.probe_.predict(X)
        return predicted if age is None else self.correct(predicted, age)

    def correct(self, predicted_age, age):
        """Apply the stored training-data correction to ``predicted_age``."""
        check_is_fitted(self, "probe_")
        age = np.asarray(age, dtype=float)
        return np.asarray(predicted_age) + age - (self.bias_slope_ * age + self.bias_intercept_)

    def brain_age_gap(self, X, age):
        """Bias-corrected predicted age minus true age (years)."""
        return self.predict(X, age) - np.asarray(age, dtype=float)

    def _training_predictions(self, probe, X, age, groups=None):
        if self.bias_cv is None:
            return self.probe_.predict(X)
        if groups is not None:
            self.bias_folds_, predictions = _grouped_predictions(
                probe, X, age, np.asarray(groups), self.bias_cv)
            return predictions
        if len(age) < self.bias_cv:
            raise PredictionError(
                f"{len(age)} training participants are too few for the brain-age bias "
                f"correction's {self.bias_cv}-fold cross-validation of the training "
                f"predictions; {_FEWER_FOLDS}")
        self.bias_folds_ = self.bias_cv
        folds = KFold(self.bias_cv, shuffle=True, random_state=self.seed)
        return cross_val_predict(clone(probe), X, age, cv=folds)


#: What to do when the training rows are too few for the bias line's cross-validation.
_FEWER_FOLDS = ("lower bias_cv (the command line's --bias-cv), or pass none to fit the "
                "bias line on in-sample training predictions, or add participants")


def _grouped_predictions(probe, X, age, groups, n_folds):
    """``(folds, out-of-fold predictions)`` over ``GroupKFold`` folds (at most one per
    group), each fit searching its penalty by group."""
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise PredictionError(f"the training rows hold {n_groups} group: too few for the "
                              "grouped cross-validation of the brain-age bias line; "
                              + _FEWER_FOLDS)
    folds = min(n_folds, n_groups)
    try:
        return folds, cross_val_predict(GroupedFit(probe), X, age, groups=groups,
                                        cv=GroupKFold(folds), params={"groups": groups})
    except PredictionError as error:
        raise PredictionError(f"the brain-age bias correction's {folds}-fold cross-validation "
                              f"over the {n_groups} groups of the training rows: {error}; or "
                              + _FEWER_FOLDS) from None
