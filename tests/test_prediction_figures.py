"""Figures: valid SVG and PNG files for each task."""

import matplotlib.image
import numpy as np
import pytest
from defusedxml import ElementTree

from anatcl_nipype.prediction import cross_validate_probe, make_probe, plot_cv_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def classification_result(classes):
    rng = np.random.default_rng(0)
    y = np.repeat(classes, 20)
    X = rng.normal(size=(len(y), len(classes)))
    for column, name in enumerate(classes):
        X[y == name, column] += 1.5
    return cross_validate_probe(X, y, "classification", cv=4, n_repeats=2,
                                estimator=make_probe("classification", cs=[1.0], inner_cv=2))


def regression_result(task):
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 40)
    X = age[:, None] / 10 + rng.normal(size=(40, 3))
    return cross_validate_probe(X, age, task, cv=4)


def check_figure(paths, out_stem, size):
    svg, png = paths
    assert (svg, png) == (out_stem.with_name("fig.svg"), out_stem.with_name("fig.png"))
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(png).shape[:2] == size  # figsize x 100 dpi
    return svg.read_text()


@pytest.mark.parametrize("classes", [["CN", "AD"], ["CN", "MCI", "AD"]])
def test_classification_figure(tmp_path, classes):
    paths = plot_cv_results(classification_result(classes), tmp_path / "fig")
    text = check_figure(paths, tmp_path / "fig", (450, 1000))
    assert "Confusion matrix" in text and "ROC curve" in text
    assert "balanced_accuracy" in text
    # Classes are sorted; the binary curve scores the second one (CN) against the first.
    expected_curves = ["CN vs AD"] if len(classes) == 2 else [f"{c} vs rest" for c in classes]
    for label in expected_curves:
        assert label in text


@pytest.mark.parametrize("task", ["regression", "brain_age"])
def test_predicted_vs_true_figure(tmp_path, task):
    result = regression_result(task)
    paths = plot_cv_results(result, tmp_path / "fig")
    text = check_figure(paths, tmp_path / "fig", (500, 550))
    assert "identity" in text
    assert f"mae {result.summary['mae']['mean']:.3g}" in text
    assert not list(tmp_path.glob(".*tmp"))
