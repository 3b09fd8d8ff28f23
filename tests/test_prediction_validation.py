"""Cross-validation: planted effects recovered, chance on noise, no leakage."""

import numpy as np
import pandas as pd
import pytest

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import (
    cross_validate_probe,
    make_probe,
    permutation_test,
    write_metrics_tsv,
    write_predictions_tsv,
)

#: A small grid keeps the suite fast; the planted effects do not need a finer one.
FAST_CLASSIFIER = make_probe("classification", cs=[0.01, 0.1, 1.0], inner_cv=3)


def two_groups(n, effect, n_features=10, seed=0):
    """Controls ~ N(0, 1); patients shifted by ``effect`` sd in the first 3 features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["control", "patient"], n // 2)
    X = rng.normal(size=(n, n_features))
    X[y == "patient", :3] += effect
    ids = np.array([f"sub-{i:03d}" for i in range(n)])
    return pd.DataFrame(X, index=pd.Index(ids, name="participant_id")), y


def ages_and_features(n=200, n_features=30, noise=1.5, seed=0):
    """Features = age (standardised) x random loadings + noise, ages uniform 20-80."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 80, n)
    X = np.outer((age - 50) / 17, rng.normal(size=n_features))
    return X + rng.normal(0, noise, X.shape), age


def test_strong_effect_is_classified():
    # A 1.5-sd shift in 3 features: Mahalanobis distance 2.6, Bayes balanced accuracy
    # Phi(1.3) = 0.90; 0.8 leaves room for finite-sample loss.
    X, y = two_groups(200, effect=1.5)
    result = cross_validate_probe(X, y, "classification", cv=5, estimator=FAST_CLASSIFIER)
    assert result.summary["balanced_accuracy"]["mean"] >= 0.8
    assert result.summary["roc_auc"]["mean"] >= 0.85
    assert len(result.fold_metrics) == 5
    assert result.classes == ["control", "patient"]
    assert result.predictions.columns.tolist() == [
        "participant_id", "true", "predicted", "probability_control", "probability_patient",
        "fold", "repeat"]
    assert sorted(result.predictions["participant_id"]) == sorted(X.index)  # each once
    np.testing.assert_allclose(result.predictions[["probability_control",
                                                   "probability_patient"]].sum(axis=1), 1.0)


def test_shuffled_labels_give_chance():
    # Leakage check: with labels shuffled, any score above chance would come from
    # information flowing from test to training rows. 400 subjects, so the balanced
    # accuracy's sd over shuffles is about 0.5 / sqrt(400) = 0.025-0.033 (measured over
    # 40 seeds: 0.44 to 0.57), and 0.1 is 3 sd; 2 repeats average out the split.
    X, y = two_groups(400, effect=1.5)
    shuffled = np.random.default_rng(1).permutation(y)
    result = cross_validate_probe(X, shuffled, "classification", cv=5, n_repeats=2,
                                  estimator=FAST_CLASSIFIER)
    assert abs(result.summary["balanced_accuracy"]["mean"] - 0.5) <= 0.1
    assert len(result.predictions) == 800  # every subject once per repeat
    assert result.predictions.groupby("repeat").size().tolist() == [400, 400]


def test_multiclass_reports_ovr_auc_and_recall_per_class():
    rng = np.random.default_rng(0)
    y = np.repeat(["AD", "CN", "MCI"], 40)
    X = rng.normal(size=(120, 6))
    for column, name in enumerate(["AD", "CN", "MCI"]):
        X[y == name, column] += 2.0
    result = cross_validate_probe(X, y, "classification", cv=4, estimator=FAST_CLASSIFIER)
    assert result.fold_metrics.columns.tolist() == [
        "repeat", "fold", "balanced_accuracy", "roc_auc", "recall_AD", "recall_CN",
        "recall_MCI"]
    assert result.fold_metrics["roc_auc"].notna().all()
    assert result.summary["roc_auc"]["mean"] > 0.85  # 2-sd shifts: well separated
    for name in ("AD", "CN", "MCI"):
        assert result.summary[f"recall_{name}"]["mean"] > 0.6  # chance is 1/3


def test_metrics_match_their_definitions():
    X, y = two_groups(100, effect=1.0)
    result = cross_validate_probe(X, y, "classification", cv=5,
                                  estimator=make_probe("classification", cs=[1.0], inner_cv=2))
    for (_, fold), rows in result.predictions.groupby(["repeat", "fold"]):
        metrics = result.fold_metrics.query("fold == @fold").iloc[0]
        recalls = [np.mean(rows.predicted[rows.true == c] == c) for c in result.classes]
        assert metrics["recall_control"] == pytest.approx(recalls[0])
        assert metrics["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    folds = result.fold_metrics["balanced_accuracy"]
    assert result.summary["balanced_accuracy"] == pytest.approx(
        {"mean": folds.mean(), "sd": folds.std(ddof=1)})


def test_regression_beats_the_mean_age_baseline():
    X, age = ages_and_features()
    result = cross_validate_probe(X, age, "regression", cv=5)
    baseline_mae = np.mean(np.abs(age - age.mean()))  # about 15 years for U(20, 80)
    # The planted signal explains ~90% of the variance; half the baseline MAE is a
    # margin no probe that learned nothing could meet.
    assert result.summary["mae"]["mean"] < 0.5 * baseline_mae
    assert result.summary["pearson_r"]["mean"] > 0.9
    assert result.summary["r2"]["mean"] > 0.8
    rows = result.predictions
    assert rows.columns.tolist() == ["participant_id", "true", "predicted", "fold", "repeat"]
    fold0 = rows[rows.fold == 0]
    assert result.fold_metrics.loc[0, "mae"] == pytest.approx(
        np.mean(np.abs(fold0.true - fold0.predicted)))
    assert result.fold_metrics.loc[0, "rmse"] == pytest.approx(
        np.sqrt(np.mean((fold0.true - fold0.predicted) ** 2)))


def test_brain_age_reports_raw_metrics_and_corrected_gap():
    X, age = ages_and_features(noise=3.0)
    result = cross_validate_probe(X, age, "brain_age", cv=5, return_estimators=True)
    rows = result.predictions
    assert rows.columns.tolist() == ["participant_id", "true", "predicted",
                                     "predicted_corrected", "brain_age_gap", "fold", "repeat"]
    assert result.summary["mae"]["mean"] < 0.5 * np.mean(np.abs(age - age.mean()))
    np.testing.assert_allclose(rows.brain_age_gap, rows.predicted_corrected - rows.true)
    raw_r = np.corrcoef(rows.predicted - rows.true, rows.true)[0, 1]
    corrected_r = np.corrcoef(rows.brain_age_gap, rows.true)[0, 1]
    assert raw_r < -0.3  # regression to the mean
    assert abs(corrected_r) < 0.15  # out of fold, so not exactly 0
    # The test folds were corrected with each training fold's stored line.
    for fold, model in enumerate(result.estimators):
        test = rows[rows.fold == fold]
        expected = test.predicted + test.true - (model.bias_slope_ * test.true
                                                 + model.bias_intercept_)
        np.testing.assert_allclose(test.predicted_corrected, expected)


def test_imputer_and_scaler_are_fitted_on_training_rows_only():
    X, age = ages_and_features(n=60, n_features=4)
    X[::5, 0] = np.nan
    X[:12, 1] += 100.0  # the first rows would shift a scaler fitted on all rows
    result = cross_validate_probe(X, age, "regression", cv=3, return_estimators=True)
    for fold, model in enumerate(result.estimators):
        test_rows = result.predictions.query("fold == @fold")["participant_id"].astype(int)
        train = np.setdiff1d(np.arange(60), test_rows)
        imputer, scaler = model.named_steps["simpleimputer"], model.named_steps["standardscaler"]
        np.testing.assert_allclose(imputer.statistics_, np.nanmedian(X[train], axis=0))
        filled = np.where(np.isnan(X[train]), imputer.statistics_, X[train])
        np.testing.assert_allclose(scaler.mean_, filled.mean(axis=0))
        assert not np.allclose(scaler.mean_, np.nanmean(X, axis=0))


def test_test_rows_never_influence_other_predictions():
    # Black-box version: wreck the features of some test rows of fold 0; the other
    # rows of that fold must get exactly the same predictions. A scaler, imputer or
    # model fitted on all rows would move them.
    X, age = ages_and_features(n=60, n_features=4)
    first = cross_validate_probe(X, age, "regression", cv=3, seed=0).predictions
    fold0 = first.query("fold == 0")["participant_id"].astype(int).to_numpy()
    wrecked, kept = fold0[:5], fold0[5:]
    X_changed = X.copy()
    X_changed[wrecked] = 1e3
    X_changed[wrecked[0], 0] = np.nan
    second = cross_validate_probe(X_changed, age, "regression", cv=3, seed=0).predictions
    by_id = second.set_index("participant_id").predicted
    np.testing.assert_allclose(by_id[[str(i) for i in kept]],
                               first.set_index("participant_id").predicted[[str(i) for i in kept]],
                               rtol=1e-12)
    assert not np.allclose(by_id[[str(i) for i in wrecked]],
                           first.set_index("participant_id").predicted[[str(i) for i in wrecked]])


def test_groups_keep_each_site_in_one_test_fold():
    X, age = ages_and_features(n=90)
    sites = np.repeat(["A", "B", "C", "D", "E", "F"], 15)
    result = cross_validate_probe(X, age, "regression", cv=3, groups=sites, n_repeats=2)
    rows = result.predictions.assign(site=np.concatenate([
        sites[rows.participant_id.astype(int)] for _, rows in
        result.predictions.groupby("repeat", sort=True)]))
    assert (rows.groupby(["repeat", "site"]).fold.nunique() == 1).all()
    assert len(result.fold_metrics) == 6


def test_repeats_use_different_splits():
    X, y = two_groups(60, effect=1.0)
    rows = cross_validate_probe(X, y, "classification", cv=3, n_repeats=2,
                                estimator=make_probe("classification", cs=[1.0], inner_cv=2)
                                ).predictions
    folds = rows.pivot(index="participant_id", columns="repeat", values="fold")
    assert not (folds[0] == folds[1]).all()


@pytest.mark.parametrize(("n_rows", "y", "kwargs", "message"), [
    (10, ["a"] * 10, {}, r"two classes or more; got \['a'\]"),
    (10, ["a"] * 8 + ["b"] * 2, {}, r"class 'b' has 2 participant\(s\), fewer than cv=5"),
    (8, ["a", "b"] * 5, {}, r"8 feature rows but labels of shape \(10,\)"),
    (10, ["a", "b"] * 5, {"groups": [1, 2] * 5}, "cv=5 folds but only 2 distinct groups"),
])
def test_bad_inputs_refused(n_rows, y, kwargs, message):
    with pytest.raises(PredictionError, match=message):
        cross_validate_probe(np.zeros((n_rows, 2)), y, "classification", **kwargs)


def test_regression_target_with_nan_refused():
    with pytest.raises(PredictionError, match="missing or infinite"):
        cross_validate_probe(np.zeros((10, 2)), [1.0] * 9 + [np.nan], "regression")


def test_permutation_test_on_real_and_shuffled_labels():
    # A plain logistic regression keeps 2 x 25 x 3 fits fast; the function is the same.
    # 24 shuffles: the smallest possible p-value is 1 / 25 = 0.04 < 0.05.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    quick = make_pipeline(StandardScaler(), LogisticRegression())
    X, y = two_groups(80, effect=1.5, n_features=5)
    real = permutation_test(X, y, "classification", n_permutations=24, cv=3, estimator=quick)
    assert real.metric == "balanced_accuracy"
    assert real.pvalue == pytest.approx(1 / 25)  # no shuffle reaches the real score
    assert real.permutation_scores.shape == (24,)
    shuffled = np.random.default_rng(0).permutation(y)
    null = permutation_test(X, shuffled, "classification", n_permutations=24, cv=3,
                            estimator=quick)
    # Under the null the p-value is uniform: above 0.2 with probability 0.8; this seed
    # gives 0.28 and the test is deterministic.
    assert null.pvalue > 0.2


def test_permutation_test_regression_reports_mae():
    X, age = ages_and_features(n=60, n_features=5)
    result = permutation_test(X, age, "regression", n_permutations=24, cv=3)
    assert result.metric == "mae"
    assert 0 < result.score < result.permutation_scores.min()  # lower MAE than any shuffle
    assert result.pvalue == pytest.approx(1 / 25)


def test_tables_are_written_with_participant_id_first(tmp_path):
    X, age = ages_and_features(n=30, n_features=3)
    result = cross_validate_probe(X, age, "brain_age", cv=3,
                                  participant_ids=[f"sub-{i:02d}" for i in range(30)])
    reordered = result.predictions[["true"] + [c for c in result.predictions.columns
                                               if c != "true"]]
    predictions = write_predictions_tsv(reordered, tmp_path / "predictions.tsv")
    header, first = predictions.read_text().splitlines()[:2]
    assert header.split("\t") == ["participant_id", "true", "predicted", "predicted_corrected",
                                  "brain_age_gap", "fold", "repeat"]
    assert first.startswith("sub-")
    table = pd.read_csv(predictions, sep="\t", na_values="n/a")
    np.testing.assert_allclose(table.sort_values("participant_id").true,
                               result.predictions.sort_values("participant_id").true, rtol=1e-9)
    result.fold_metrics.loc[1, "r2"] = np.nan
    metrics = write_metrics_tsv(result, tmp_path / "metrics.tsv").read_text().splitlines()
    assert metrics[0].split("\t") == ["repeat", "fold", "mae", "rmse", "r2", "pearson_r",
                                      "gap_age_r"]
    assert metrics[2].split("\t")[4] == "n/a"
    assert [line.split("\t")[:2] for line in metrics[4:]] == [["all", "mean"], ["all", "sd"]]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files


def test_too_few_participants_for_the_default_probe_say_what_to_do():
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array(["AD"] * 6 + ["CN"] * 6)
    with pytest.raises(PredictionError, match=r"class 'AD' has 6 participant\(s\): too few for "
                                              r"5-fold .* 5-fold inner search .* "
                                              r"\(needs 7 per class\)"):
        cross_validate_probe(X, y, "classification", cv=5)
    with pytest.raises(PredictionError, match="7 participants are too few for cv=5 folds"):
        cross_validate_probe(X[:7], np.arange(7.0), "regression", cv=5)


@pytest.mark.parametrize("task", ["classification", "regression", "brain_age"])
def test_task_table_names_metrics_the_cross_validation_reports(task):
    """The per-task table's headline and figure metrics are summary columns of its CV."""
    from anatcl_nipype.options import PROBE_TASKS

    spec = PROBE_TASKS[task]
    X, age = ages_and_features(n=40)
    y = np.where(age > 50, "old", "young") if spec.categorical else age
    estimator = FAST_CLASSIFIER if spec.categorical else None
    result = cross_validate_probe(X, y, task, cv=4, estimator=estimator)
    assert {spec.headline_metric, *spec.figure_metrics} <= set(result.summary)
    assert ("predicted_corrected" in result.predictions) is spec.corrects_age_bias
    test = permutation_test(X, y, task, n_permutations=3, cv=4, estimator=estimator)
    assert test.metric == spec.headline_metric
