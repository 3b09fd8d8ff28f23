"""A probe study from files: feature tables and participants.tsv in, the probe's files out.

What :class:`~anatcl_nipype.interfaces.prediction.FitProbe` runs: join the feature tables,
match the labels (and groups), cross-validate, optionally run a permutation test, fit the
final probe on everyone with a known target, and write the probe with its card, the
metrics, the out-of-fold predictions, the CV figure and a summary, all named
``<stem>_*``.
"""

from pathlib import Path

import numpy as np

from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.inputs import infer_task, read_column
from anatcl_nipype.options import AUTO_TASK
from anatcl_nipype.prediction.feature_source import (
    feature_kind,
    feature_source,
    read_features,
    sidecar_paths,
)


def fit_probe_study(feature_tables, participants_tsv, target, task, stem, *,
                    features_json=None, cv=5, n_repeats=1, seed=0, n_permutations=0,
                    group_column=None):
    """Cross-validate and fit a probe; return the paths written (FitProbe's output names).

    ``task="auto"``: brain_age for an ``age`` column, regression for numbers, else
    classification. Subjects without the target (``n/a``) or missing from a feature
    table are left out and listed in the summary.
    """
    from anatcl_nipype.prediction import (cross_validate_probe, default_estimator,
                                          plot_cv_results, save_probe, write_metrics_tsv,
                                          write_predictions_tsv)

    if task == AUTO_TASK:
        task = infer_task(target, read_column(participants_tsv, target))
    features, dropped, empty_columns = read_features(feature_tables)
    source = feature_source(features, sidecar_paths(feature_tables, features_json))
    ids, y, groups, label_dropped, notes = _labels(participants_tsv, target, task,
                                                   group_column, features.index)
    X = features.loc[ids]
    result = cross_validate_probe(X, y, task, cv=cv, n_repeats=n_repeats, groups=groups,
                                  seed=seed)
    permutation = _permutation_test(X, y, groups, task, n_permutations, seed, cv)
    model = default_estimator(task, seed).fit(X, y)
    card = {"task": task, "target": target, "n_train": len(X),
            "features": feature_kind(source["columns"]), "cv_metrics": result.summary,
            "validation": {"cv": cv, "n_repeats": n_repeats, "seed": seed,
                           "group_column": group_column},
            "feature_source": source, "feature_tables": list(feature_tables)}
    model_path, card_path = save_probe(model, f"{stem}_probe.skops", card)
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


def _labels(participants_tsv, target, task, group_column, participant_ids):
    """(ids, labels, groups or None, dropped, notes) of the subjects to use."""
    from anatcl_nipype.prediction.labels import load_labels

    labels = load_labels(participants_tsv, target, participant_ids, task)
    if group_column is None:
        return labels.participant_ids, labels.labels, None, labels.dropped, labels.notes
    groups = load_labels(participants_tsv, group_column, labels.participant_ids,
                         "classification")
    label_of = dict(zip(labels.participant_ids, labels.labels))
    y = np.array([label_of[pid] for pid in groups.participant_ids], dtype=labels.labels.dtype)
    return (groups.participant_ids, y, groups.labels, labels.dropped + groups.dropped,
            labels.notes)


def _permutation_test(X, y, groups, task, n_permutations, seed, cv):
    from anatcl_nipype.prediction import permutation_test

    if n_permutations == 0:
        return None
    test = permutation_test(X, y, task, n_permutations, seed, cv=cv, groups=groups)
    return {"metric": test.metric, "score": test.score, "pvalue": test.pvalue,
            "n_permutations": n_permutations,
            "permutation_mean": float(np.mean(test.permutation_scores))}
