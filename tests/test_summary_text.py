"""One rule for mean ± sd wherever a person reads it: the report (summary box, methods,
metrics tables), the terminal and the figures' titles. 3 significant digits; an sd that is
rounding noise (a metric equal in every fold) shows as 0."""

import json

import numpy as np
import pandas as pd
import pytest

from anatcl_nipype.prediction.metrics import mean_sd
from anatcl_nipype.prediction.summary_text import mean_sd_text
from anatcl_nipype.prediction.tables import write_metrics_tsv
from anatcl_nipype.prediction.validation import CrossValidationResult

#: pearson_r 1 in every fold but for rounding (its sd is about 6e-17), r2 spread widely.
FOLDS = {"mae": [2.0, 3.5, 4.25], "r2": [-17.2, 2.0, 0.11], "pearson_r": [1.0, 1 - 2**-53, 1.0]}
SHOWN = "mae 3.25 ± 1.15, r2 -5.03 ± 10.6, pearson_r 1 ± 0"


def regression_result():
    table = pd.DataFrame({"repeat": 0, "fold": [0, 1, 2], **FOLDS})
    summary = {name: mean_sd(np.array(values)) for name, values in FOLDS.items()}
    assert 0 < summary["pearson_r"]["sd"] < 1e-12  # the noise this is about
    return CrossValidationResult("regression", table, summary, None)


def test_the_rule():
    assert mean_sd_text(1.0, 5.6e-17) == "1 ± 0"
    assert mean_sd_text(-5.0312, 11.04) == "-5.03 ± 11"
    assert mean_sd_text("0.123456", "2e-12") == "0.123 ± 2.00e-12"
    assert mean_sd_text(float("nan"), float("nan")) == "n/a ± n/a"


def test_terminal_prints_the_rule(tmp_path, capsys):
    from anatcl_nipype.cli.group import _print_metrics

    _print_metrics(write_metrics_tsv(regression_result(), tmp_path / "metrics.tsv"))
    assert capsys.readouterr().out == f"Cross-validated {SHOWN}\n"


def test_figure_title_uses_the_rule():
    from anatcl_nipype.prediction.figures import _title

    assert _title(regression_result().summary, list(FOLDS)) == f"Cross-validated\n{SHOWN}"


@pytest.mark.slow
def test_report_uses_the_rule(tmp_path):
    from anatcl_nipype.cli.report import write_report

    result = regression_result()
    folder = tmp_path / "out" / "group" / "target-score"
    folder.mkdir(parents=True)
    write_metrics_tsv(result, folder / "metrics.tsv")
    (folder / "summary.json").write_text(json.dumps({
        "target": "score", "task": "regression", "n_train": 30, "cv_metrics": result.summary,
        "validation": {"cv": 3, "n_repeats": 1, "seed": 0, "group_column": None}}))
    page = write_report(tmp_path / "out").read_text()
    methods = (tmp_path / "out" / "anatcl" / "methods.md").read_text()
    assert f"(mean and standard deviation over folds): {SHOWN}." in methods.replace("\n", " ")
    sd_row = page.split("<td>sd</td>", 1)[1].split("</tr>", 1)[0]
    assert sd_row == '<td class="num">1.15</td><td class="num">10.6</td><td class="num">0</td>'
    assert "<b>3.25 ± 1.15</b>score: MAE" in page  # the summary box
