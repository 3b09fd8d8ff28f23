"""Linear probes on frozen features, as in the AnatCL paper.

Every probe is a scikit-learn :class:`~sklearn.pipeline.Pipeline`::

    SimpleImputer(median) -> StandardScaler -> LogisticRegressionCV | RidgeCV

Defaults per task:

``classification`` (binary or multi-class)
    L2 logistic regression, ``class_weight="balanced"``, ``C`` chosen among
    ``DEFAULT_CS`` (1e-4 .. 1e2, 7 values) by an inner stratified 5-fold CV
    (shuffled, seeded) on the log-loss; lbfgs, multinomial for more than two classes.
``regression`` and ``brain_age``
    Ridge regression, ``alpha`` chosen among ``DEFAULT_ALPHAS`` (1e-2 .. 1e5, 15 values)
    by efficient leave-one-out CV (RidgeCV's default).

The imputer and scaler are part of the pipeline, so cross-validation fits them on
training folds only. With groups (participants with several sessions, sites),
:func:`fit_probe` makes every inner penalty search split by group too.

>>> probe = make_probe("classification", cs=[0.1, 1.0], inner_cv=3)
>>> [name for name, _ in probe.steps]
['simpleimputer', 'standardscaler', 'logisticregressioncv']
>>> make_probe("brain_age").steps[-1][1].alphas[:3]
(0.01, 0.03162277660168379, 0.1)
"""

import inspect

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.options import (
    ALPHA_GRID,
    C_GRID,
    INNER_CV,
    PROBE_TASKS,
    TASKS,  # noqa: F401 (re-exported)
)

#: Folds of the inner cross-validation that picks a classifier's penalty.
DEFAULT_INNER_CV = INNER_CV
#: Inverse regularisation strengths searched by the classification probe.
DEFAULT_CS = tuple(float(c) for c in np.logspace(*C_GRID))
#: Ridge penalties searched by the regression and brain-age probes.
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(*ALPHA_GRID))


def check_task(task):
    """Raise :class:`PredictionError` unless ``task`` is one of :data:`TASKS`."""
    if task not in TASKS:
        raise PredictionError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def make_probe(task, *, cs=DEFAULT_CS, alphas=DEFAULT_ALPHAS, inner_cv=DEFAULT_INNER_CV, seed=0,
               max_iter=1000):
    """Return an unfitted linear-probe pipeline for ``task``.

    ``cs``, ``inner_cv``, ``seed`` and ``max_iter`` apply to classification;
    ``alphas`` to regression and brain age (whose inner CV is leave-one-out).

    >>> make_probe("regression", alphas=[1.0, 10.0]).steps[-1][1]
    RidgeCV(alphas=[1.0, 10.0])
    """
    check_task(task)
    if PROBE_TASKS[task].categorical:
        model = LogisticRegressionCV(
            Cs=list(cs), l1_ratios=(0.0,), class_weight="balanced", scoring="neg_log_loss",
            cv=StratifiedKFold(inner_cv, shuffle=True, random_state=seed),
            max_iter=max_iter, use_legacy_attributes=False)
    else:
        model = RidgeCV(alphas=alphas)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), model)


#: Inner searches whose folds :func:`fit_probe` replaces by group folds.
INNER_SEARCHES = (LogisticRegressionCV, RidgeCV)


def fit_probe(estimator, X, y, groups=None):
    """Clone ``estimator`` and fit it on ``(X, y)``; with ``groups``, search by group.

    Without ``groups`` this is ``clone(estimator).fit(X, y)``. With ``groups``, every
    inner penalty search (:class:`~sklearn.linear_model.LogisticRegressionCV`,
    :class:`~sklearn.linear_model.RidgeCV`) splits these rows with
    ``GroupKFold(min(its folds, number of groups))`` (RidgeCV: 5 folds instead of
    leave-one-out), so no group is on both sides of an inner split; an estimator whose
    ``fit`` takes ``groups`` (:class:`BrainAgeRegressor`) receives them and groups
    its own searches.

    >>> X = np.arange(40.0).reshape(20, 2)
    >>> model = fit_probe(make_probe("regression", alphas=[1.0, 10.0]), X, X[:, 0],
    ...                   groups=np.repeat(np.arange(10), 2))
    >>> len(model.steps[-1][1].cv)
    5
    """
    model = clone(estimator)
    if groups is None:
        return model.fit(X, y)
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise PredictionError(f"{len(groups)} groups for {len(y)} rows; pass one group per row")
    takers = _group_takers(model)
    for key, search in _inner_searches(model, takers):
        splits = _group_splits(search, X, y, groups)
        model.set_params(**{f"{key}__cv" if key else "cv": splits})
    return model.fit(X, y, **{f"{key}__groups" if key else "groups": groups for key in takers})


class GroupedFit(BaseEstimator):
    """``estimator`` fitted by :func:`fit_probe` with the groups of its training rows.

    scikit-learn's ``cross_val_predict``/``permutation_test_score`` hand ``groups`` (cut to
    the training rows) to ``fit``; this passes them on, so inner searches split by group.

    >>> X = np.arange(40.0).reshape(20, 2)
    >>> grouped = GroupedFit(make_probe("regression", alphas=[1.0]))
    >>> grouped.fit(X, X[:, 0], groups=np.repeat(np.arange(10), 2)).predict(X[:1]).shape
    (1,)
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y, groups):
        self.model_ = fit_probe(self.estimator, X, y, groups)
        return self

    def predict(self, X):
        return self.model_.predict(X)


def _group_takers(model):
    """Keys of the estimators (model itself: "") whose ``fit`` takes ``groups``."""
    found = [("", model)] + [(k, v) for k, v in model.get_params(deep=True).items()
                             if hasattr(v, "fit") and hasattr(v, "get_params")]
    return [key for key, value in found if "groups" in inspect.signature(value.fit).parameters]


def _inner_searches(model, takers):
    """Inner searches not inside a group taker (which groups its own)."""
    found = [("", model)] + list(model.get_params(deep=True).items())
    return [(key, value) for key, value in found if isinstance(value, INNER_SEARCHES)
            and not any(key.startswith(f"{taker}__") or not taker for taker in takers)]


def _group_splits(search, X, y, groups):
    cv = search.cv
    folds = DEFAULT_INNER_CV if cv is None else cv if isinstance(cv, int) else (
        cv.get_n_splits() if hasattr(cv, "get_n_splits") else len(cv))
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise PredictionError(f"the training rows hold {n_groups} group: too few for a "
                              "grouped inner search of the penalty; use more groups, fewer "
                              "folds, or a probe with one fixed penalty")
    splits = list(GroupKFold(min(folds, n_groups)).split(X, y, groups))
    if isinstance(search, LogisticRegressionCV):
        _check_inner_classes(np.asarray(y), groups, splits)
    return splits


def _check_inner_classes(y, groups, splits):
    """Every inner training split must hold every class of the training rows."""
    for train, _ in splits:
        missing = sorted(set(y.tolist()) - set(y[train].tolist()))
        if missing:
            held = len(set(groups[y == missing[0]].tolist()))
            raise PredictionError(
                f"class {str(missing[0])!r} is in only {held} group(s) of a training fold: "
                f"the {len(splits)}-fold grouped inner search of the penalty would train "
                "without it; use fewer folds (cv), a coarser class split, or another "
                "grouping with the class in more groups")
