"""The metrics of one test fold, and the mean and sd over folds.

Classification: ``balanced_accuracy``, ``roc_auc`` (binary, or one-vs-rest macro
average for more classes) and ``recall_<class>``; balanced accuracy and ROC-AUC are
NaN in a fold that lacks a class. Regression and brain age: ``mae``, ``rmse``, ``r2``
and ``pearson_r``. The cross-validation
(:func:`~anatcl_nipype.prediction.validation.cross_validate_probe`) and the fold
ensembles (:mod:`~anatcl_nipype.prediction.ensemble`) both score with these.

>>> import numpy as np
>>> mean_sd(np.array([regression_metrics(np.array([1.0, 2.0]), np.array([1.0, 3.0]))["mae"],
...                   1.5]))
{'mean': 1.0, 'sd': 0.7071067811865476}
"""

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    mean_absolute_error,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)


def classification_metrics(true, predicted, probabilities, classes):
    """``balanced_accuracy``, ``roc_auc`` and ``recall_<class>`` of one test fold.

    ``probabilities``: one column per class of ``classes``, in that order. Balanced
    accuracy and ROC-AUC are NaN when the fold lacks a class of ``classes``.

    >>> metrics = classification_metrics(np.array(["a", "b"]), np.array(["a", "a"]),
    ...                                  np.array([[0.9, 0.1], [0.6, 0.4]]), ["a", "b"])
    >>> {name: float(value) for name, value in metrics.items()}
    {'balanced_accuracy': 0.5, 'roc_auc': 1.0, 'recall_a': 1.0, 'recall_b': 0.0}
    """
    recalls = recall_score(true, predicted, labels=classes, average=None, zero_division=np.nan)
    complete = set(true.tolist()) == set(classes)
    return {"balanced_accuracy": balanced_accuracy_score(true, predicted) if complete
            else float("nan"),
            "roc_auc": _roc_auc(true, probabilities, classes),
            **{f"recall_{name}": value for name, value in zip(classes, recalls)}}


def regression_metrics(true, predicted):
    """``mae``, ``rmse``, ``r2`` and ``pearson_r`` (NaN for a constant side) of one test fold.

    >>> regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))["mae"]
    0.6666666666666666
    """
    return {"mae": mean_absolute_error(true, predicted),
            "rmse": root_mean_squared_error(true, predicted),
            "r2": r2_score(true, predicted), "pearson_r": _pearson(true, predicted)}


def _roc_auc(y, probabilities, classes):
    if set(y.tolist()) != set(classes):
        return float("nan")
    if len(classes) == 2:
        return roc_auc_score(y == classes[1], probabilities[:, 1])
    return roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=classes)


def _pearson(a, b):
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def mean_sd(values):
    """Mean and sd (ddof=1) of the finite ``values``; NaN where too few are left.

    >>> mean_sd(np.array([1.0, 3.0, np.nan]))
    {'mean': 2.0, 'sd': 1.4142135623730951}
    """
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": float("nan"), "sd": float("nan")}
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return {"mean": float(np.mean(values)), "sd": sd}
