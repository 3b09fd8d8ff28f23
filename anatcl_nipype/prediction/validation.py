"""Cross-validate a probe without leakage; permutation tests; results tables.

The whole estimator (imputer, scaler, model and, for brain age, the bias
correction) is cloned and fitted inside every training fold and only applied to its
test fold. Splits: :class:`~sklearn.model_selection.RepeatedStratifiedKFold`
(classification) or :class:`~sklearn.model_selection.RepeatedKFold` (regression, brain
age); with ``groups`` (e.g. the site), :class:`~sklearn.model_selection.GroupKFold`,
its groups shuffled with ``seed + repeat`` when ``n_repeats > 1``.

Metrics per fold: classification ``balanced_accuracy``, ``roc_auc`` (binary, or
one-vs-rest macro average for more classes; n/a when a test fold lacks a class) and
``recall_<class>``; regression and brain age ``mae``, ``rmse``, ``r2``, ``pearson_r``
on the predictions, plus for brain age ``gap_age_r``, the correlation of the
bias-corrected gap with age in the test fold.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(60, 3))
>>> y = np.where(X[:, 0] > 0, "patient", "control")
>>> result = cross_validate_probe(X, y, "classification", cv=3, estimator=make_probe(
...     "classification", cs=[1.0], inner_cv=2))
>>> result.fold_metrics.columns.tolist()
['repeat', 'fold', 'balanced_accuracy', 'roc_auc', 'recall_control', 'recall_patient']
>>> result.summary["balanced_accuracy"]["mean"] > 0.8
True
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import (balanced_accuracy_score, mean_absolute_error, r2_score,
                             recall_score, roc_auc_score, root_mean_squared_error)
from sklearn.model_selection import (GroupKFold, KFold, RepeatedKFold,
                                     RepeatedStratifiedKFold, StratifiedKFold,
                                     permutation_test_score)

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.files import atomic_write
from anatcl_nipype.prediction.brain_age import BrainAgeRegressor
from anatcl_nipype.prediction.probes import DEFAULT_INNER_CV, check_task, make_probe


@dataclass
class CrossValidationResult:
    """What :func:`cross_validate_probe` returns.

    ``fold_metrics``: a DataFrame, one row per (repeat, fold); ``summary``: mean and
    sd (ddof=1, n/a folds left out) of each metric, JSON-ready; ``predictions``: the
    out-of-fold predictions, one row per participant and repeat; ``estimators``: the
    fitted fold models when asked for.
    """

    task: str
    fold_metrics: object
    summary: dict
    predictions: object
    classes: list = field(default_factory=list)
    estimators: list = field(default_factory=list)


@dataclass
class PermutationResult:
    """The real cross-validated score, the scores under shuffled labels and the p-value."""

    metric: str
    score: float
    permutation_scores: np.ndarray
    pvalue: float


def default_estimator(task, seed=0):
    """The probe :func:`cross_validate_probe` uses when none is given.

    >>> type(default_estimator("brain_age")).__name__
    'BrainAgeRegressor'
    """
    check_task(task)
    if task == "brain_age":
        return BrainAgeRegressor(make_probe("brain_age"), seed=seed)
    return make_probe(task, seed=seed)


def cross_validate_probe(X, y, task, cv=5, n_repeats=1, groups=None, seed=0, *,
                         participant_ids=None, estimator=None, return_estimators=False):
    """Cross-validate ``estimator`` (default: :func:`default_estimator`) on ``(X, y)``.

    ``X`` is an array or a DataFrame (its index gives the participant ids unless
    ``participant_ids`` is passed). For ``brain_age`` the estimator must accept
    ``predict(X, age=...)``, as :class:`BrainAgeRegressor` does.
    """
    check_task(task)
    y = _check_inputs(X, y, task, cv, groups)
    ids = _participant_ids(X, participant_ids)
    if estimator is None and task == "classification" and groups is None:
        _check_inner_folds(y, cv)
    estimator = default_estimator(task, seed) if estimator is None else estimator
    classes = sorted(set(y.tolist())) if task == "classification" else []
    metrics, predictions, estimators = [], [], []
    for repeat, fold, train, test in _splits(task, X, y, cv, n_repeats, groups, seed):
        model = clone(estimator).fit(_rows(X, train), y[train])
        fold_metrics, fold_predictions = _evaluate(task, model, _rows(X, test), y[test],
                                                   classes)
        metrics.append({"repeat": repeat, "fold": fold, **fold_metrics})
        predictions.append(_prediction_table(ids[test], fold_predictions, fold, repeat))
        if return_estimators:
            estimators.append(model)
    return _collect(task, metrics, predictions, classes, estimators)


def permutation_test(X, y, task, n_permutations=100, seed=0, *, cv=5, groups=None,
                     estimator=None):
    """P-value of the cross-validated score against ``n_permutations`` label shuffles.

    Uses :func:`sklearn.model_selection.permutation_test_score` (labels shuffled
    within ``groups`` when given). The score is the balanced accuracy
    (classification) or the MAE (regression, brain age; lower is better, so the
    p-value counts shuffles with an MAE at most the real one). The smallest possible
    p-value is ``1 / (n_permutations + 1)``.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 2))
    >>> test = permutation_test(X, 5 * X[:, 0], "regression", n_permutations=9, cv=3)
    >>> test.metric, test.pvalue
    ('mae', 0.1)
    """
    check_task(task)
    y = _check_inputs(X, y, task, cv, groups)
    estimator = default_estimator(task, seed) if estimator is None else estimator
    splitter = _splitters(task, cv, 1, groups, seed)[0]
    scoring = "balanced_accuracy" if task == "classification" else "neg_mean_absolute_error"
    score, permuted, pvalue = permutation_test_score(
        estimator, X, y, groups=groups, cv=splitter, n_permutations=n_permutations,
        random_state=seed, scoring=scoring)
    if task == "classification":
        return PermutationResult("balanced_accuracy", float(score), permuted, float(pvalue))
    return PermutationResult("mae", -float(score), -permuted, float(pvalue))


def write_predictions_tsv(predictions, path):
    """Write out-of-fold predictions as a TSV (``participant_id`` first, NaN as n/a).

    >>> import tempfile, pathlib, pandas as pd
    >>> table = pd.DataFrame({"true": [61.0], "predicted": [float("nan")],
    ...                       "participant_id": ["sub-01"]})
    >>> path = write_predictions_tsv(table, pathlib.Path(tempfile.mkdtemp()) / "pred.tsv")
    >>> path.read_text().split()
    ['participant_id', 'true', 'predicted', 'sub-01', '61', 'n/a']
    """
    columns = ["participant_id"] + [c for c in predictions.columns if c != "participant_id"]
    return _write_tsv(predictions[columns], path)


def write_metrics_tsv(result, path):
    """Write the per-fold metrics of ``result``, then its mean and sd rows, as a TSV.

    >>> import tempfile, pathlib, pandas as pd
    >>> result = CrossValidationResult("regression", pd.DataFrame(
    ...     {"repeat": [0, 0], "fold": [0, 1], "mae": [1.0, 3.0]}),
    ...     {"mae": {"mean": 2.0, "sd": 1.4142135}}, None)
    >>> path = write_metrics_tsv(result, pathlib.Path(tempfile.mkdtemp()) / "metrics.tsv")
    >>> print(path.read_text().replace("\\t", " | "))
    repeat | fold | mae
    0 | 0 | 1
    0 | 1 | 3
    all | mean | 2
    all | sd | 1.4142135
    <BLANKLINE>
    """
    import pandas as pd

    table = result.fold_metrics
    for statistic in ("mean", "sd"):
        row = {"repeat": "all", "fold": statistic,
               **{name: values[statistic] for name, values in result.summary.items()}}
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    return _write_tsv(table, path)


def _write_tsv(table, path):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
    return Path(path)


def _check_inputs(X, y, task, cv, groups):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise PredictionError(f"{len(X)} feature rows but labels of shape {y.shape}; pass "
                              "one label per feature row")
    if task == "classification":
        _check_classes(y, cv, groups)
    else:
        y = y.astype(float)
        if not np.all(np.isfinite(y)):
            raise PredictionError(f"{task} target has missing or infinite values; drop those "
                                  "participants first (load_labels does)")
    if len(y) < 2 * cv:
        raise PredictionError(f"{len(y)} participants are too few for cv={cv} folds (need "
                              f"{2 * cv}); add participants or lower cv")
    if groups is not None and len(set(np.asarray(groups).tolist())) < cv:
        raise PredictionError(f"cv={cv} folds but only {len(set(groups))} distinct groups; "
                              "lower cv or pass groups with more levels")
    return y


def _check_classes(y, cv, groups):
    names, counts = np.unique(y, return_counts=True)
    if len(names) < 2:
        raise PredictionError(f"classification needs two classes or more; got {names.tolist()}")
    if groups is None and counts.min() < cv:
        raise PredictionError(f"class {str(names[counts.argmin()])!r} has {counts.min()} "
                              f"participant(s), fewer than cv={cv} folds; lower cv")


def _check_inner_folds(y, cv):
    """The default probe picks its penalty by an inner CV within each training fold."""
    names, counts = np.unique(y, return_counts=True)
    needed = -(-DEFAULT_INNER_CV * cv // (cv - 1))  # ceil: training folds keep (cv-1)/cv
    if counts.min() < needed:
        raise PredictionError(
            f"class {str(names[counts.argmin()])!r} has {counts.min()} participant(s): too few "
            f"for {cv}-fold cross-validation with the default probe's {DEFAULT_INNER_CV}-fold "
            f"inner search of its penalty (needs {needed} per class); add participants or "
            "lower cv")


def _participant_ids(X, participant_ids):
    if participant_ids is not None:
        ids = np.asarray(participant_ids, dtype=object)
    elif hasattr(X, "index"):
        ids = np.asarray(X.index, dtype=object)
    else:
        ids = np.asarray([str(i) for i in range(len(X))], dtype=object)
    if len(ids) != len(X):
        raise PredictionError(f"{len(ids)} participant_ids for {len(X)} feature rows")
    return ids


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


def _splitters(task, cv, n_repeats, groups, seed):
    """One splitter per repeat for groups; one repeated splitter otherwise."""
    if groups is not None:
        if n_repeats == 1:
            return [GroupKFold(cv)]
        return [GroupKFold(cv, shuffle=True, random_state=seed + r) for r in range(n_repeats)]
    if n_repeats == 1:
        kind = StratifiedKFold if task == "classification" else KFold
        return [kind(cv, shuffle=True, random_state=seed)]
    kind = RepeatedStratifiedKFold if task == "classification" else RepeatedKFold
    return [kind(n_splits=cv, n_repeats=n_repeats, random_state=seed)]


def _splits(task, X, y, cv, n_repeats, groups, seed):
    """Yield ``(repeat, fold, train, test)`` index arrays."""
    splitters = _splitters(task, cv, n_repeats, groups, seed)
    for number, splitter in enumerate(splitters):
        for index, (train, test) in enumerate(splitter.split(X, y, groups)):
            yield number + index // cv, index % cv, train, test


def _evaluate(task, model, X, y, classes):
    if task == "classification":
        return _classification_metrics(model, X, y, classes)
    predicted = model.predict(X)
    metrics = {"mae": mean_absolute_error(y, predicted),
               "rmse": root_mean_squared_error(y, predicted),
               "r2": r2_score(y, predicted), "pearson_r": _pearson(y, predicted)}
    columns = {"true": y, "predicted": predicted}
    if task == "brain_age":
        corrected = model.predict(X, age=y)
        metrics["gap_age_r"] = _pearson(corrected - y, y)
        columns.update(predicted_corrected=corrected, brain_age_gap=corrected - y)
    return metrics, columns


def _classification_metrics(model, X, y, classes):
    probabilities = _class_probabilities(model, X, classes)
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    recalls = recall_score(y, predicted, labels=classes, average=None, zero_division=np.nan)
    metrics = {"balanced_accuracy": balanced_accuracy_score(y, predicted),
               "roc_auc": _roc_auc(y, probabilities, classes),
               **{f"recall_{name}": value for name, value in zip(classes, recalls)}}
    columns = {"true": y, "predicted": predicted,
               **{f"probability_{name}": probabilities[:, i] for i, name in enumerate(classes)}}
    return metrics, columns


def _class_probabilities(model, X, classes):
    """Probabilities in the order of ``classes``; 0 for a class the fold never saw."""
    fold_probabilities = model.predict_proba(X)
    probabilities = np.zeros((len(X), len(classes)))
    for column, name in enumerate(model.classes_):
        probabilities[:, classes.index(name)] = fold_probabilities[:, column]
    return probabilities


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


def _prediction_table(ids, columns, fold, repeat):
    import pandas as pd

    return pd.DataFrame({"participant_id": ids, **columns, "fold": fold, "repeat": repeat})


def _collect(task, metrics, predictions, classes, estimators):
    import pandas as pd

    fold_metrics = pd.DataFrame(metrics)
    summary = {name: _mean_sd(fold_metrics[name].to_numpy(dtype=float))
               for name in fold_metrics.columns if name not in ("repeat", "fold")}
    return CrossValidationResult(task, fold_metrics, summary,
                                 pd.concat(predictions, ignore_index=True),
                                 [str(c) for c in classes], estimators)


def _mean_sd(values):
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": float("nan"), "sd": float("nan")}
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return {"mean": float(np.mean(values)), "sd": sd}
