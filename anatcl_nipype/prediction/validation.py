"""Cross-validate a probe without leakage; permutation tests.

The whole estimator (imputer, scaler, model and, for brain age, the bias
correction) is cloned and fitted inside every training fold and only applied to its
test fold. Splits: :class:`~sklearn.model_selection.RepeatedStratifiedKFold`
(classification) or :class:`~sklearn.model_selection.RepeatedKFold` (regression, brain
age); with ``groups`` (e.g. the site), :class:`~sklearn.model_selection.GroupKFold`,
its groups shuffled with ``seed + repeat`` when ``n_repeats > 1``; then every inner
search (the probe's penalty, the brain-age bias line) splits the training rows by the
same groups (:func:`~anatcl_nipype.prediction.probes.fit_probe`), and a class must be
present in at least ``cv`` groups.

``harmonize="combat"`` puts a :class:`~anatcl_nipype.prediction.harmonization.
ComBatHarmonizer` in front of the probe, fitted on each training fold only, with the
``sites`` and ``covariates`` (protected) of the rows.

Metrics per fold: classification ``balanced_accuracy``, ``roc_auc`` (binary, or
one-vs-rest macro average for more classes) and ``recall_<class>``; balanced
accuracy and ROC-AUC are n/a in a test fold that lacks a class (a warning names it),
and their summary then gives ``usable_folds`` of ``n_folds``; regression and brain
age ``mae``, ``rmse``, ``r2``, ``pearson_r`` on the predictions, plus for brain age
``gap_age_r``, the correlation of the bias-corrected gap with age in the test fold.
:mod:`~anatcl_nipype.prediction.metrics` computes them (the fold ensembles are scored
by it too); :mod:`~anatcl_nipype.prediction.tables` writes the results as TSV files;
:func:`permutation_test` tests the very estimator the cross-validation fits, harmoniser
included.

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

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    permutation_test_score,
)

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.brain_age import BrainAgeRegressor
from anatcl_nipype.prediction.harmonization import (
    HARMONIZATIONS,
    frame_covariates,
    harmonization_frame,
    make_harmonized,
)
from anatcl_nipype.prediction.metrics import (
    _pearson,
    classification_metrics,
    mean_sd,
    regression_metrics,
)
from anatcl_nipype.prediction.probes import (
    DEFAULT_INNER_CV,
    GroupedFit,
    check_task,
    fit_probe,
    make_probe,
)


@dataclass
class CrossValidationResult:
    """What :func:`cross_validate_probe` returns.

    ``fold_metrics``: a DataFrame, one row per (repeat, fold); ``summary``: mean and
    sd (ddof=1, n/a folds left out) of each metric, JSON-ready, plus ``usable_folds``
    and ``n_folds`` for a metric with n/a folds; ``predictions``: the out-of-fold
    predictions, one row per participant and repeat; ``estimators``: the fitted fold
    models when asked for; ``usable_folds``: per metric, the folds with a value.
    """

    task: str
    fold_metrics: object
    summary: dict
    predictions: object
    classes: list = field(default_factory=list)
    estimators: list = field(default_factory=list)
    usable_folds: dict = field(default_factory=dict)


@dataclass
class PermutationResult:
    """The real cross-validated score, the scores under shuffled labels and the p-value."""

    metric: str
    score: float
    permutation_scores: np.ndarray
    pvalue: float


def default_estimator(task, seed=0, bias_cv=5):
    """The probe :func:`cross_validate_probe` uses when none is given; ``bias_cv``: the
    brain-age bias line's folds (:class:`BrainAgeRegressor`).

    >>> default_estimator("brain_age", bias_cv=None).bias_cv is None
    True
    """
    check_task(task)
    if PROBE_TASKS[task].corrects_age_bias:
        return BrainAgeRegressor(make_probe(task), bias_cv=bias_cv, seed=seed)
    return make_probe(task, seed=seed)


def cross_validate_probe(X, y, task, cv=5, n_repeats=1, groups=None, seed=0, *,
                         participant_ids=None, estimator=None, return_estimators=False,
                         harmonize=None, sites=None, covariates=None, unseen_sites="refuse",
                         progress=None):
    """Cross-validate ``estimator`` (default: :func:`default_estimator`) on ``(X, y)``.

    ``X`` is an array or a DataFrame (its index gives the participant ids unless
    ``participant_ids`` is passed). For ``brain_age`` the estimator must accept
    ``predict(X, age=...)``, as :class:`BrainAgeRegressor` does. ``harmonize``
    (``None`` or ``"combat"``), ``sites``, ``covariates`` and ``unseen_sites``: see
    :func:`harmonized_estimator`; for leave-site-out folds (``groups=sites``) pass
    ``unseen_sites="estimate"``. ``progress(done, total)`` is called after each fold.
    """
    check_task(task)
    y = _check_inputs(X, y, task, cv, groups)
    ids = _participant_ids(X, participant_ids)
    if estimator is None and PROBE_TASKS[task].categorical and groups is None:
        _check_inner_folds(y, cv)
    X, estimator = _study_estimator(X, y, task, seed, estimator, harmonize, sites, covariates,
                                    unseen_sites)
    groups = None if groups is None else np.asarray(groups)
    classes = sorted(set(y.tolist())) if PROBE_TASKS[task].categorical else []
    metrics, predictions, estimators = [], [], []
    for repeat, fold, train, test in _splits(task, X, y, cv, n_repeats, groups, seed):
        model = fit_probe(estimator, _rows(X, train), y[train],
                          None if groups is None else groups[train])
        fold_metrics, fold_predictions = _evaluate(task, model, _rows(X, test), y[test],
                                                   classes)
        _warn_missing_classes(y[test], classes, repeat, fold)
        metrics.append({"repeat": repeat, "fold": fold, **fold_metrics})
        predictions.append(_prediction_table(ids[test], fold_predictions, fold, repeat))
        if return_estimators:
            estimators.append(model)
        if progress is not None:
            progress(len(metrics), cv * n_repeats)
    return _collect(task, metrics, predictions, classes, estimators)


def fit_final_probe(X, y, task, groups=None, seed=0, *, estimator=None, harmonize=None,
                    sites=None, covariates=None, unseen_sites="refuse"):
    """Fit the probe to save on all of ``(X, y)``, as each fold of the CV is fitted.

    Same options as :func:`cross_validate_probe`. With ``harmonize="combat"`` the
    returned pipeline's first step is the fitted :class:`ComBatHarmonizer`: predict
    with ``model.predict(harmonization_frame(X, sites, covariates))``.

    >>> rng = np.random.default_rng(0)
    >>> X, sites = rng.normal(size=(40, 3)), np.repeat(["a", "b"], 20)
    >>> model = fit_final_probe(X, X[:, 0], "regression", harmonize="combat", sites=sites)
    >>> model.predict(harmonization_frame(X[:2], sites[:2])).shape
    (2,)
    """
    check_task(task)
    y = _check_inputs(X, y, task, 2, None)
    X, estimator = _study_estimator(X, y, task, seed, estimator, harmonize, sites, covariates,
                                    unseen_sites)
    return fit_probe(estimator, X, y, groups)


def _study_estimator(X, y, task, seed, estimator, harmonize, sites, covariates, unseen_sites):
    """``(X, estimator)`` that cross-validation, the permutation test and the final fit all
    use: the given or default estimator, behind ComBat (``X`` then carries the site and
    covariate columns, so every split hands the harmoniser its rows' own) when asked."""
    estimator = default_estimator(task, seed) if estimator is None else estimator
    return harmonized_estimator(X, estimator, harmonize, sites, covariates, unseen_sites,
                                target=y)


def harmonized_estimator(X, estimator, harmonize, sites, covariates, unseen_sites="refuse",
                         target=None):
    """``(X, estimator)`` as given, or with a ComBat step and its site/covariate columns.

    ``harmonize``: ``None`` (nothing changes) or ``"combat"``; ``sites``: one site per
    row; ``covariates``: a DataFrame, dict or 2-D array of covariates (age, sex) whose
    effects ComBat protects; ``unseen_sites``: ``"refuse"`` (a test row from a site
    absent from the training rows is an error) or ``"estimate"`` (that site's offsets
    are estimated from its own rows). A covariate equal to ``target`` is refused:
    ComBat needs each row's covariates to harmonise it, so protecting the target
    would feed a test participant's true value into its features.

    >>> X, model = harmonized_estimator(np.zeros((2, 1)), make_probe("regression"),
    ...                                 "combat", ["a", "b"], None)
    >>> X.columns.tolist(), model.steps[0][0]
    (['feature_000', 'site'], 'combat')
    """
    if harmonize not in HARMONIZATIONS:
        raise PredictionError(f"harmonize={harmonize!r}; choose None or 'combat'")
    if harmonize is None:
        if sites is not None or covariates is not None:
            raise PredictionError("sites or covariates given without harmonize='combat'; "
                                  "pass harmonize='combat' to harmonise, or drop them")
        return X, estimator
    if sites is None:
        raise PredictionError("harmonize='combat' needs the site of every participant "
                              "(sites=...)")
    frame = harmonization_frame(X, sites, covariates)
    covariate_columns = frame_covariates(frame)
    if target is not None:
        _check_target_not_protected(frame[covariate_columns], target)
    return frame, make_harmonized(estimator, covariate_columns, unseen_sites)


def _check_target_not_protected(covariates, target):
    target = np.asarray(target).astype(str)
    for name in covariates.columns:
        if np.array_equal(covariates[name].to_numpy().astype(str), target):
            raise PredictionError(
                f"covariate {name!r} is the prediction target: ComBat protects a covariate "
                "with each participant's own value, which would leak the true target of "
                "test participants into their features; drop it from the covariates")


def permutation_test(X, y, task, n_permutations=100, seed=0, *, cv=5, groups=None,
                     estimator=None, harmonize=None, sites=None, covariates=None,
                     unseen_sites="refuse"):
    """P-value of the cross-validated score against ``n_permutations`` label shuffles.

    The estimator is the one :func:`cross_validate_probe` fits with the same options
    (``harmonize``, ``sites``, ``covariates``, ``unseen_sites`` included: ComBat is
    fitted on the training rows of every split, real and shuffled), and the splits are
    its splits with ``n_repeats=1``, so the real score is its mean score then. Uses
    :func:`sklearn.model_selection.permutation_test_score` (labels shuffled
    within ``groups`` when given; each fit then searches its penalty by group, as in
    :func:`cross_validate_probe`). When every group has one label (the sessions of a
    participant), shuffling within groups would change nothing, so the groups' labels
    are shuffled between groups instead. The score is the balanced accuracy
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
    X, estimator = _study_estimator(X, y, task, seed, estimator, harmonize, sites, covariates,
                                    unseen_sites)
    splitter = _splitters(task, cv, 1, groups, seed)[0]
    categorical, metric = PROBE_TASKS[task].categorical, PROBE_TASKS[task].headline_metric
    scoring = metric if categorical else "neg_mean_absolute_error"
    params = None
    if groups is not None:  # sklearn hands fit params, cut to the training rows, to fit
        estimator, params = GroupedFit(estimator), {"groups": np.asarray(groups)}
    if groups is not None and _one_label_per_group(y, groups):
        score, permuted, pvalue = _permute_between_groups(
            estimator, X, y, np.asarray(groups), splitter, n_permutations, seed, scoring)
    else:
        score, permuted, pvalue = permutation_test_score(
            estimator, X, y, groups=groups, cv=splitter, n_permutations=n_permutations,
            random_state=seed, scoring=scoring, params=params)
    if categorical:
        return PermutationResult(metric, float(score), permuted, float(pvalue))
    return PermutationResult(metric, -float(score), -permuted, float(pvalue))


def _one_label_per_group(y, groups):
    pairs = {(group, label) for group, label in zip(np.asarray(groups).tolist(), y.tolist())}
    return len(pairs) == len(set(np.asarray(groups).tolist()))


def _permute_between_groups(estimator, X, y, groups, splitter, n_permutations, seed, scoring):
    """permutation_test_score, with whole groups' labels shuffled (sklearn shuffles
    only within groups, which is a no-op when each group has one label)."""
    from sklearn.model_selection import cross_val_score

    def score(labels):
        return float(np.mean(cross_val_score(estimator, X, labels, groups=groups, cv=splitter,
                                             scoring=scoring, params={"groups": groups})))

    names, inverse = np.unique(groups, return_inverse=True)
    group_labels = y[[int(np.flatnonzero(inverse == i)[0]) for i in range(len(names))]]
    rng = np.random.default_rng(seed)
    real = score(y)
    permuted = np.array([score(rng.permutation(group_labels)[inverse])
                         for _ in range(n_permutations)])
    return real, permuted, (np.sum(permuted >= real) + 1.0) / (n_permutations + 1)


def _check_inputs(X, y, task, cv, groups):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise PredictionError(f"{len(X)} feature rows but labels of shape {y.shape}; pass "
                              "one label per feature row")
    if PROBE_TASKS[task].categorical:
        _check_classes(y, cv, groups)
    else:
        y = y.astype(float)
        if not np.all(np.isfinite(y)):
            raise PredictionError(f"{task} target has missing or infinite values; drop those "
                                  "participants first (load_labels does)")
    if len(y) < 2 * cv:
        raise PredictionError(f"{len(y)} participants are too few for cv={cv} folds (need "
                              f"{2 * cv}); add participants or lower cv")
    if groups is not None and len(groups) != len(y):
        raise PredictionError(f"{len(groups)} groups for {len(y)} participants; pass one "
                              "group per feature row")
    if groups is not None and len(set(np.asarray(groups).tolist())) < cv:
        raise PredictionError(f"cv={cv} folds but only {len(set(groups))} distinct groups; "
                              "lower cv or pass groups with more levels")
    if groups is not None and PROBE_TASKS[task].categorical:
        _check_classes_in_groups(y, np.asarray(groups), cv)
    return y


def _check_classes(y, cv, groups):
    names, counts = np.unique(y, return_counts=True)
    if len(names) < 2:
        raise PredictionError(f"classification needs two classes or more; got {names.tolist()}")
    if groups is None and counts.min() < cv:
        raise PredictionError(f"class {str(names[counts.argmin()])!r} has {counts.min()} "
                              f"participant(s), fewer than cv={cv} folds; lower cv")


def _check_classes_in_groups(y, groups, cv):
    """With groups a class can reach every test fold only if ``cv`` groups hold it."""
    for name in np.unique(y):
        held = sorted(set(groups[y == name].tolist()), key=str)
        if len(held) < cv:
            shown = ", ".join(map(str, held[:5])) + (", ..." if len(held) > 5 else "")
            advice = (f"lower cv to {len(held)}" if len(held) >= 2 else
                      "a fold with none of its groups leaves it out of training")
            raise PredictionError(
                f"class {str(name)!r} is held by {len(held)} group(s) ({shown}), fewer than "
                f"cv={cv} folds, so some test folds cannot contain it; {advice}, or "
                "group by something finer (participant rather than site)")


def _warn_missing_classes(y, classes, repeat, fold):
    missing = sorted(set(classes) - set(y.tolist()))
    if missing:
        warnings.warn(f"repeat {repeat}, fold {fold}: the test fold has no participant of "
                      f"class {', '.join(map(repr, map(str, missing)))}; its balanced "
                      "accuracy and ROC-AUC are n/a and left out of the mean", stacklevel=3)


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
        kind = StratifiedKFold if PROBE_TASKS[task].categorical else KFold
        return [kind(cv, shuffle=True, random_state=seed)]
    kind = RepeatedStratifiedKFold if PROBE_TASKS[task].categorical else RepeatedKFold
    return [kind(n_splits=cv, n_repeats=n_repeats, random_state=seed)]


def _splits(task, X, y, cv, n_repeats, groups, seed):
    """Yield ``(repeat, fold, train, test)`` index arrays."""
    splitters = _splitters(task, cv, n_repeats, groups, seed)
    for number, splitter in enumerate(splitters):
        for index, (train, test) in enumerate(splitter.split(X, y, groups)):
            yield number + index // cv, index % cv, train, test


def _evaluate(task, model, X, y, classes):
    if PROBE_TASKS[task].categorical:
        return _classification_metrics(model, X, y, classes)
    predicted = model.predict(X)
    metrics = regression_metrics(y, predicted)
    columns = {"true": y, "predicted": predicted}
    if PROBE_TASKS[task].corrects_age_bias:
        corrected = model.predict(X, age=y)
        metrics["gap_age_r"] = _pearson(corrected - y, y)
        columns.update(predicted_corrected=corrected, brain_age_gap=corrected - y)
    return metrics, columns


def _classification_metrics(model, X, y, classes):
    probabilities = _class_probabilities(model, X, classes)
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    metrics = classification_metrics(y, predicted, probabilities, classes)
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


def _prediction_table(ids, columns, fold, repeat):
    import pandas as pd

    return pd.DataFrame({"participant_id": ids, **columns, "fold": fold, "repeat": repeat})


def _collect(task, metrics, predictions, classes, estimators):
    import pandas as pd

    fold_metrics = pd.DataFrame(metrics)
    names = [name for name in fold_metrics.columns if name not in ("repeat", "fold")]
    usable = {name: int(np.isfinite(fold_metrics[name].to_numpy(dtype=float)).sum())
              for name in names}
    summary = {}
    for name in names:
        summary[name] = mean_sd(fold_metrics[name].to_numpy(dtype=float))
        if usable[name] < len(fold_metrics):
            summary[name].update(usable_folds=usable[name], n_folds=len(fold_metrics))
    return CrossValidationResult(task, fold_metrics, summary,
                                 pd.concat(predictions, ignore_index=True),
                                 [str(c) for c in classes], estimators, usable)
