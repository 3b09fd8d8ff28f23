"""Fold ensembles at the group level: one probe per encoder fold, then their mean.

AnatCL was released as five models per descriptor (OpenBHB folds 0-4) and its paper
reports downstream results as mean +- sd over them. Each encoder fold's embeddings get
their own cross-validated probe, all with the SAME splits (same participants, same seed,
same groups), so the per-fold out-of-fold predictions of a participant come from probes
that never saw it. :func:`ensemble_predictions` averages them (class probabilities for
classification, predicted values otherwise) and checks that the splits agree;
:func:`ensemble_metrics` scores the ensemble per CV fold like a single probe;
:func:`across_folds` gives each encoder fold's CV mean and their mean +- sd.

>>> import pandas as pd
>>> fold = lambda p: pd.DataFrame({"participant_id": ["a", "b"], "true": [1.0, 3.0],
...                                "predicted": p, "fold": [0, 1], "repeat": [0, 0]})
>>> ensemble_predictions([fold([1.0, 2.0]), fold([3.0, 4.0])], "regression")["predicted"].tolist()
[2.0, 3.0]
"""

import numpy as np

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.metrics import classification_metrics, mean_sd, regression_metrics

#: Columns naming a row of out-of-fold predictions: who, and in which CV split.
KEYS = ("participant_id", "repeat", "fold")


def ensemble_predictions(tables, task):
    """The mean of several probes' out-of-fold prediction tables (one per encoder fold).

    Classification: probabilities averaged, the predicted class their argmax. Regression
    and brain age: ``predicted`` (and ``predicted_corrected``) averaged, the brain-age gap
    recomputed. Refused unless every table has the same participants in the same CV
    splits (then no probe predicted a participant it was trained on).
    """
    if len(tables) < 2:
        raise PredictionError(f"an ensemble needs the predictions of 2 or more encoder folds, "
                              f"got {len(tables)}")
    first = tables[0].sort_values(list(KEYS)).reset_index(drop=True)
    keys = first[list(KEYS)].astype(str)
    aligned = []
    for number, table in enumerate(tables):
        table = table.sort_values(list(KEYS)).reset_index(drop=True)
        if not table[list(KEYS)].astype(str).equals(keys):
            raise PredictionError(
                f"encoder fold #{number}'s probe was cross-validated with other splits or "
                "participants than the first one's; fit every fold's probe on the same "
                "participants with the same cv, n_repeats, seed and groups")
        aligned.append(table)
    result = first[[*KEYS, "true"]].copy() if "true" in first else first[list(KEYS)].copy()
    if PROBE_TASKS[task].categorical:
        columns = [c for c in first.columns if c.startswith("probability_")]
        mean = np.mean([t[columns].to_numpy(dtype=float) for t in aligned], axis=0)
        classes = np.asarray([c.removeprefix("probability_") for c in columns], dtype=object)
        result["predicted"] = classes[mean.argmax(axis=1)]
        result[columns] = mean
    else:
        for column in ("predicted", "predicted_corrected"):
            if column in first:
                result[column] = np.mean([t[column].to_numpy(dtype=float) for t in aligned],
                                         axis=0)
        if "predicted_corrected" in result:
            result["brain_age_gap"] = result["predicted_corrected"] - result["true"]
    return result


def ensemble_metrics(predictions, task):
    """Per-CV-fold metrics of ensemble predictions, as :func:`cross_validate_probe` names
    them; returns ``(fold_metrics DataFrame, {metric: {"mean", "sd"}})``."""
    import pandas as pd

    rows = []
    for (repeat, fold), split in predictions.groupby(["repeat", "fold"], sort=True):
        rows.append({"repeat": repeat, "fold": fold, **_metrics(split, task)})
    table = pd.DataFrame(rows)
    summary = {name: mean_sd(table[name].to_numpy(dtype=float))
               for name in table.columns if name not in ("repeat", "fold")}
    return table, summary


def across_folds(summaries, labels):
    """Each encoder fold's CV mean per metric, then their mean and sd, as one table.

    >>> across_folds([{"mae": {"mean": 2.0}}, {"mae": {"mean": 4.0}}], [0, 1])["mae"].tolist()
    [2.0, 4.0, 3.0, 1.4142135623730951]
    """
    import pandas as pd

    names = list(summaries[0])
    rows = [{"encoder_fold": str(label), **{n: s[n]["mean"] for n in names}}
            for label, s in zip(labels, summaries)]
    for statistic in ("mean", "sd"):
        values = {n: mean_sd(np.array([row[n] for row in rows[:len(labels)]], dtype=float))
                  for n in names}
        rows.append({"encoder_fold": statistic, **{n: values[n][statistic] for n in names}})
    return pd.DataFrame(rows)


def _metrics(split, task):
    """The fold's metrics, by :mod:`~anatcl_nipype.prediction.metrics`' functions
    (classification: balanced accuracy and ROC-AUC, the ensemble's summary scores)."""
    true = split["true"].to_numpy()
    if not PROBE_TASKS[task].categorical:
        return regression_metrics(true.astype(float), split["predicted"].to_numpy(dtype=float))
    columns = [c for c in split.columns if c.startswith("probability_")]
    classes = [c.removeprefix("probability_") for c in columns]
    metrics = classification_metrics(true.astype(str), split["predicted"].to_numpy().astype(str),
                                     split[columns].to_numpy(dtype=float), classes)
    return {name: metrics[name] for name in ("balanced_accuracy", "roc_auc")}
