"""Figures of cross-validation results, written as SVG and PNG.

Classification: the confusion matrix and the ROC curve(s) (one-vs-rest per class for
more than two classes). Regression and brain age: predicted against true values with
the identity line, the cross-validated metrics in the title. Figures show the first
repeat's out-of-fold predictions (every participant once).

matplotlib is imported here only, drawing on an Agg canvas (no pyplot, no display).

>>> import tempfile, pathlib, numpy as np
>>> from anatcl_nipype.prediction.validation import cross_validate_probe
>>> from anatcl_nipype.prediction.probes import make_probe
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(40, 2))
>>> result = cross_validate_probe(X, 3 * X[:, 0] + rng.normal(size=40), "regression",
...                               cv=4, estimator=make_probe("regression", alphas=[1.0]))
>>> paths = plot_cv_results(result, pathlib.Path(tempfile.mkdtemp()) / "age")
>>> [path.name for path in paths]
['age.svg', 'age.png']
"""

from pathlib import Path

import numpy as np

from anatcl_nipype.files import atomic_write
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.summary_text import mean_sd_text


def plot_cv_results(result, out_stem):
    """Draw ``result`` (a :class:`CrossValidationResult`); return the SVG and PNG paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    predictions = result.predictions[result.predictions["repeat"] == 0]
    task = PROBE_TASKS[result.task]
    if task.categorical:
        figure = Figure(figsize=(10, 4.5), layout="constrained")
        _draw_confusion(figure.add_subplot(1, 2, 1), predictions, result.classes)
        _draw_roc(figure.add_subplot(1, 2, 2), predictions, result.classes)
    else:
        figure = Figure(figsize=(5.5, 5), layout="constrained")
        _draw_scatter(figure.add_subplot(), predictions)
    figure.suptitle(_title(result.summary, task.figure_metrics))
    FigureCanvasAgg(figure)
    return _save(figure, Path(out_stem))


def _draw_confusion(ax, predictions, classes):
    true = predictions["true"].astype(str).to_numpy()
    predicted = predictions["predicted"].astype(str).to_numpy()
    counts = np.array([[np.sum((true == t) & (predicted == p)) for p in classes]
                       for t in classes])
    ax.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        ax.text(column, row, str(count), ha="center", va="center", color=colour)
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes)
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix")


def _draw_roc(ax, predictions, classes):
    from sklearn.metrics import roc_curve

    true = predictions["true"].astype(str).to_numpy()
    shown = classes[1:] if len(classes) == 2 else classes
    for name in shown:
        if len(set(true == name)) < 2:
            continue
        false_positive, true_positive, _ = roc_curve(true == name,
                                                     predictions[f"probability_{name}"])
        ax.plot(false_positive, true_positive, label=f"{name} vs rest"
                if len(classes) > 2 else f"{name} vs {classes[0]}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")


def _draw_scatter(ax, predictions):
    true, predicted = predictions["true"], predictions["predicted"]
    low = min(true.min(), predicted.min())
    high = max(true.max(), predicted.max())
    ax.scatter(true, predicted, s=14, alpha=0.7)
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="identity")
    ax.set(xlabel="True", ylabel="Predicted (out of fold)", aspect="equal")
    ax.legend(loc="upper left")


def _title(summary, names):
    parts = [f"{name} {mean_sd_text(summary[name]['mean'], summary[name]['sd'])}"
             + _usable(summary[name]) for name in names if name in summary]
    return "Cross-validated\n" + ", ".join(parts)


def _usable(statistics):
    """How many folds gave the metric, when some could not (a class missing)."""
    if "usable_folds" not in statistics:
        return ""
    return f" ({statistics['usable_folds']} of {statistics['n_folds']} folds)"


def _save(figure, out_stem):
    paths = []
    for kind in ("svg", "png"):
        path = out_stem.with_name(f"{out_stem.name}.{kind}")
        metadata = {"Date": None} if kind == "svg" else None
        with atomic_write(path) as tmp:
            figure.savefig(tmp, format=kind, dpi=100, metadata=metadata)
        paths.append(path)
    return paths
