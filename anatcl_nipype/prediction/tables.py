"""The cross-validation's result tables: BIDS-style TSV files, written atomically.

``write_tsv`` writes any table (``n/a`` for missing values); ``write_predictions_tsv``
puts ``participant_id`` first; ``write_metrics_tsv`` appends the mean and sd rows to the
per-fold metrics of a
:class:`~anatcl_nipype.prediction.validation.CrossValidationResult`. No scikit-learn.

>>> import tempfile, pathlib, pandas as pd
>>> path = write_tsv(pd.DataFrame({"a": [1.5, None]}), pathlib.Path(tempfile.mkdtemp()) / "t.tsv")
>>> path.read_text().split()
['a', '1.5', 'n/a']
"""

from pathlib import Path

from anatcl_nipype.files import atomic_write


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
    return write_tsv(predictions[columns], path)


def write_metrics_tsv(result, path):
    """Write the per-fold metrics of ``result``, then its mean and sd rows, as a TSV.

    >>> import tempfile, pathlib, pandas as pd
    >>> from anatcl_nipype.prediction.validation import CrossValidationResult
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
    return write_tsv(table, path)


def write_tsv(table, path):
    """Write ``table`` as a BIDS-style TSV (``n/a`` for missing) atomically; return the path."""
    with atomic_write(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
    return Path(path)
