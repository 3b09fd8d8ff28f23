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
training folds only.

>>> probe = make_probe("classification", cs=[0.1, 1.0], inner_cv=3)
>>> [name for name, _ in probe.steps]
['simpleimputer', 'standardscaler', 'logisticregressioncv']
>>> make_probe("brain_age").steps[-1][1].alphas[:3]
(0.01, 0.03162277660168379, 0.1)
"""

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from anatcl_nipype.errors import PredictionError

TASKS = ("classification", "regression", "brain_age")
#: Inverse regularisation strengths searched by the classification probe.
#: Folds of the inner cross-validation that picks a classifier's penalty.
DEFAULT_INNER_CV = 5
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))
#: Ridge penalties searched by the regression and brain-age probes.
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))


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
    if task == "classification":
        model = LogisticRegressionCV(
            Cs=list(cs), l1_ratios=(0.0,), class_weight="balanced", scoring="neg_log_loss",
            cv=StratifiedKFold(inner_cv, shuffle=True, random_state=seed),
            max_iter=max_iter, use_legacy_attributes=False)
    else:
        model = RidgeCV(alphas=alphas)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), model)
