"""A probe study from files: feature tables and participants.tsv in, the probe's files out.

What :class:`~anatcl_nipype.interfaces.prediction.FitProbe` runs: join the feature tables,
match the labels (and groups), cross-validate, optionally run a permutation test, fit the
final probe on everyone with a known target, and write the probe with its card
(``probe.skops``/``probe.json``, the names they have in the group folder, beside
``stem``), the metrics, the out-of-fold predictions, the CV figure and a summary
(named ``<stem>_*``). The card and the summary name the feature tables by file name:
the group folder holds them beside the card.
"""

from pathlib import Path

import numpy as np

from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.inputs import infer_task, target_values
from anatcl_nipype.options import AUTO_TASK, PROBE_TASKS
from anatcl_nipype.outputs import GROUP_FILES
from anatcl_nipype.prediction.feature_source import (
    feature_kind,
    feature_source,
    read_features,
    sidecar_paths,
)


def fit_probe_study(feature_tables, participants_tsv, target, task, stem, *,
                    features_json=None, cv=5, n_repeats=1, seed=0, n_permutations=0,
                    group_column=None, harmonize=None, site_column="site",
                    covariate_columns=(), unseen_sites="refuse", bias_cv=5):
    """Cross-validate and fit a probe; return the paths written (FitProbe's output names).

    ``task="auto"``: brain_age for an ``age`` column, regression for numbers, else
    classification. Subjects without the target (``n/a``) or missing from a feature
    table are left out and listed in the summary. ``harmonize="combat"``: ComBat on the
    sites of ``site_column`` (protecting ``covariate_columns``), fitted inside each
    training fold and saved with the final probe; the card records it and the summary
    gives the site separability before and after. ``bias_cv``: folds of the brain-age
    bias line's cross-validation in each training set (None: in-sample predictions); the
    card's ``validation`` records it and the folds used (fewer with few groups).
    """
    from anatcl_nipype.prediction import (
        cross_validate_probe,
        plot_cv_results,
        save_probe,
        write_metrics_tsv,
        write_predictions_tsv,
    )
    from anatcl_nipype.prediction.validation import default_estimator, fit_final_probe

    if task == AUTO_TASK:
        task = infer_task(target, target_values(participants_tsv, target))
    features, dropped, empty_columns = read_features(feature_tables)
    source = feature_source(features, sidecar_paths(feature_tables, features_json))
    ids, y, groups, label_dropped, notes = _labels(participants_tsv, target, task,
                                                   group_column, features.index)
    corrects_age_bias = PROBE_TASKS[task].corrects_age_bias  # a known task: _labels checks
    X = features.loc[ids]
    harmonization = _harmonization_options(participants_tsv, ids, harmonize, site_column,
                                           covariate_columns, unseen_sites)
    # brain age: the estimator of every fit (CV, permutations, final) with its bias folds
    study = dict(harmonization, estimator=default_estimator(task, seed, bias_cv=bias_cv)
                 if corrects_age_bias else None)
    say = _progress_line(f"probe {target!r}")
    result = cross_validate_probe(
        X, y, task, cv=cv, n_repeats=n_repeats, groups=groups, seed=seed, **study,
        return_estimators=corrects_age_bias,
        progress=lambda done, total: say(f"cross-validation fold {done}/{total} done"))
    validation = {"cv": cv, "n_repeats": n_repeats, "seed": seed,
                  "group_column": _grouped_by(group_column, groups)}
    if corrects_age_bias:
        validation.update(_bias_folds(result.estimators, bias_cv, say))
    if n_permutations:
        say(f"permutation test ({n_permutations} permutations)")
    permutation = _permutation_test(X, y, groups, task, n_permutations, seed, cv, study)
    say("final fit on all participants")
    model = fit_final_probe(X, y, task, groups=groups, seed=seed, **study)
    card = {"task": task, "target": target, "n_train": len(X),
            "features": feature_kind(source["columns"]), "cv_metrics": result.summary,
            "validation": validation,
            "feature_source": source,
            # by name: the group folder holds them beside the card (the work folder's copies
            # are temporary)
            "feature_tables": [Path(table).name for table in feature_tables]}
    if harmonize is not None:
        card["harmonization"] = _harmonization_card(model, harmonization, site_column,
                                                    covariate_columns, X, cv, seed)
    # the name the probe has in the group folder, which the card records
    model_path, card_path = save_probe(model, Path(stem).parent / GROUP_FILES["model"], card)
    summary = {**card, "participants_tsv": str(participants_tsv), "classes": result.classes,
               "permutation_test": permutation,
               "dropped": [{"participant_id": pid, "reason": reason}
                           for pid, reason in dropped + label_dropped], "notes": notes,
               "dropped_columns": empty_columns}
    return dict(
        model=str(model_path), model_card=str(card_path),
        metrics_tsv=str(write_metrics_tsv(result, f"{stem}_metrics.tsv")),
        predictions_tsv=str(write_predictions_tsv(result.predictions, f"{stem}_predictions.tsv")),
        figures=[str(path) for path in plot_cv_results(result, f"{stem}_cv")],
        out_json=str(write_json_atomic(f"{stem}_summary.json", summary)),
    )


def _bias_folds(estimators, bias_cv, say):
    """The brain-age bias line's cross-validation as the card records it: ``bias_cv``
    asked for and ``bias_folds``, the folds each training set used (fewer where it held
    fewer groups than ``bias_cv``), said on the terminal when they differ."""
    if bias_cv is None:
        return {"bias_cv": None}
    # a ComBat pipeline's last step is the brain-age model
    used = sorted({(model[-1] if hasattr(model, "steps") else model).bias_folds_
                   for model in estimators})
    if used != [bias_cv]:
        say(f"brain-age bias line: {' or '.join(map(str, used))}-fold cross-validation "
            f"within the training folds instead of {bias_cv} (at most one fold per "
            "participant or group in a training fold)")
    return {"bias_cv": bias_cv, "bias_folds": used}


def _progress_line(name):
    """A function printing ``  <name>: <text> (<seconds since the first call> s)`` at once
    (the command line shows these lines as the fit's progress)."""
    import time

    start = time.monotonic()

    def say(text):
        print(f"  {name}: {text} ({time.monotonic() - start:.1f} s)", flush=True)
    return say


def _harmonization_options(participants_tsv, ids, harmonize, site_column, covariate_columns,
                           unseen_sites):
    """The harmonisation keywords of :func:`cross_validate_probe` for these participants."""
    if harmonize is None:
        return {}
    sites, covariates = harmonization_columns(participants_tsv, ids, site_column,
                                              covariate_columns)
    return dict(harmonize=harmonize, sites=sites, covariates=covariates,
                unseen_sites=unseen_sites)


def harmonization_columns(participants_tsv, ids, site_column, covariate_columns):
    """``(sites, {covariate: values})`` of the participants ``ids``, from participants.tsv:
    numeric covariates as numbers, others as text; None without covariates."""
    sites = _column_values(participants_tsv, site_column, ids, "classification")
    covariates = {name: _column_values(participants_tsv, name, ids, _kind(participants_tsv, name))
                  for name in covariate_columns}
    return sites, covariates or None


def _kind(participants_tsv, column):
    """``regression`` for a numeric column (a linear covariate), else ``classification``."""
    try:
        [float(v) for v in target_values(participants_tsv, column) if v not in ("n/a", "")]
    except ValueError:
        return "classification"
    return "regression"


def _column_values(participants_tsv, column, ids, kind):
    """``column`` for every participant of ``ids``; an error naming those without a value."""
    from anatcl_nipype.errors import PredictionError
    from anatcl_nipype.prediction.labels import load_labels

    values = load_labels(participants_tsv, column, ids, kind)
    missing = sorted(set(ids) - set(values.participant_ids))
    if missing:
        raise PredictionError(f"{participants_tsv}: no {column!r} for {', '.join(missing[:5])}; "
                              "ComBat needs the site and covariates of every participant: "
                              "fill them in or leave those participants out")
    return np.asarray(values.labels)


def _harmonization_card(model, harmonization, site_column, covariate_columns, X, cv, seed):
    """What the card says of the harmonisation: method, columns, sites, separability."""
    from anatcl_nipype.prediction.harmonization import site_separability

    sites = harmonization["sites"]
    smallest = min(np.unique(sites, return_counts=True)[1])
    return {"method": harmonization["harmonize"], "site_column": site_column,
            "covariates": list(covariate_columns),
            "unseen_sites": harmonization["unseen_sites"],
            "sites": model.named_steps["combat"].sites_.tolist(),
            "site_separability": site_separability(
                X, sites, harmonization["covariates"], cv=min(cv, smallest), seed=seed)
            if smallest >= 2 else None}


def _labels(participants_tsv, target, task, group_column, participant_ids):
    """(ids, labels, groups or None, dropped, notes) of the subjects to use."""
    from anatcl_nipype.prediction.labels import load_labels

    labels = load_labels(participants_tsv, target, participant_ids, task)
    if group_column is None:
        return (labels.participant_ids, labels.labels, participant_groups(labels.participant_ids),
                labels.dropped, labels.notes)
    groups = load_labels(participants_tsv, group_column, labels.participant_ids,
                         "classification")
    label_of = dict(zip(labels.participant_ids, labels.labels))
    y = np.array([label_of[pid] for pid in groups.participant_ids], dtype=labels.labels.dtype)
    return (groups.participant_ids, y, groups.labels, labels.dropped + groups.dropped,
            labels.notes)


def _grouped_by(group_column, groups):
    """The column the folds were grouped by: the user's, participant_id for sessions."""
    if group_column is None and groups is not None:
        return "participant_id"
    return group_column


def participant_groups(row_ids):
    """With sessions (rows ``sub-01_ses-2``), each row's participant, so that no participant
    is in both the training and the test folds; None when every row is its own participant.

    >>> participant_groups(["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1"]).tolist()
    ['sub-01', 'sub-01', 'sub-02']
    >>> participant_groups(["sub-01", "sub-02"]) is None
    True
    """
    from anatcl_nipype.bids import split_scan_id

    scans = [split_scan_id(row) for row in row_ids]
    if not any(session for _, session in scans):
        return None
    return np.array([participant for participant, _ in scans])


def _permutation_test(X, y, groups, task, n_permutations, seed, cv, study):
    """The permutation test of the cross-validated probe: same estimator, harmoniser
    (``study``: :func:`_harmonization_options` and the estimator) included; None without
    shuffles."""
    from anatcl_nipype.prediction import permutation_test

    if n_permutations == 0:
        return None
    test = permutation_test(X, y, task, n_permutations, seed, cv=cv, groups=groups, **study)
    return {"metric": test.metric, "score": test.score, "pvalue": test.pvalue,
            "n_permutations": n_permutations,
            "permutation_mean": float(np.mean(test.permutation_scores))}
