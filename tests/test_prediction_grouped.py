"""Grouped validation: rare classes, folds lacking a class, group-aware inner searches."""

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import BrainAgeRegressor, cross_validate_probe, make_probe
from anatcl_nipype.prediction.probes import DEFAULT_ALPHAS, DEFAULT_CS, fit_probe

#: A probe without an inner search, for folds whose training rows are small.
PLAIN_CLASSIFIER = make_pipeline(StandardScaler(), LogisticRegression())


def repeated_sessions(n_subjects=40, n_sessions=3, seed=0):
    """Sessions of one subject nearly identical; labels (noise) and ages per subject."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subjects), n_sessions)
    X = rng.normal(size=(n_subjects, 20))[subjects]
    X += 0.3 * rng.normal(size=X.shape)
    labels = rng.choice(["a", "b"], n_subjects)[subjects]
    ages = rng.uniform(20, 80, n_subjects)[subjects]
    return X, labels, ages, subjects


def sklearn_group_search(task):
    """The default probe written in plain scikit-learn, searching over GroupKFold(5)."""
    if task == "classification":
        search = LogisticRegressionCV(
            Cs=list(DEFAULT_CS), l1_ratios=(0.0,), class_weight="balanced",
            scoring="neg_log_loss", cv=GroupKFold(5), max_iter=1000,
            use_legacy_attributes=False)
    else:
        search = RidgeCV(alphas=DEFAULT_ALPHAS, cv=GroupKFold(5))
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), search)


def fit_with_routing(model, X, y, groups):
    with sklearn.config_context(enable_metadata_routing=True):
        return clone(model).fit(X, y, groups=groups)


def six_groups_one_fold_without_rare():
    """GroupKFold(3) folds {C, F}, {B, E}, {A, D}; class "rare" in A, B, D only."""
    sizes = {"A": 10, "B": 10, "C": 10, "D": 5, "E": 5, "F": 5}
    groups = np.repeat(list(sizes), list(sizes.values()))
    y = np.full(len(groups), "common", dtype=object)
    for group in ("A", "B", "D"):
        y[np.flatnonzero(groups == group)[:2]] = "rare"
    X = np.random.default_rng(0).normal(size=(len(groups), 4))
    return X, y, groups


def test_class_in_one_group_is_refused_by_name():
    X, y, groups = six_groups_one_fold_without_rare()
    y[groups != "A"] = "common"
    with pytest.raises(PredictionError, match=r"class 'rare' is held by 1 group\(s\) \(A\), "
                       r"fewer than cv=3 folds.*group by something finer"):
        cross_validate_probe(X, y, "classification", cv=3, groups=groups)


def test_class_in_fewer_groups_than_folds_says_lower_cv():
    X, y, groups = six_groups_one_fold_without_rare()
    y[groups == "D"] = "common"
    with pytest.raises(PredictionError, match=r"class 'rare' is held by 2 group\(s\) \(A, B\)"
                       r".*lower cv to 2"):
        cross_validate_probe(X, y, "classification", cv=3, groups=groups)


def test_fold_without_a_class_is_na_warned_and_left_out_of_the_mean():
    X, y, groups = six_groups_one_fold_without_rare()
    with pytest.warns(UserWarning, match=r"repeat 0, fold 0: .*class 'rare'"):
        result = cross_validate_probe(X, y, "classification", cv=3, groups=groups,
                                      estimator=PLAIN_CLASSIFIER)
    folds = result.fold_metrics.set_index("fold")
    assert np.isnan(folds.loc[0, "balanced_accuracy"]) and np.isnan(folds.loc[0, "roc_auc"])
    assert np.isnan(folds.loc[0, "recall_rare"]) and folds.loc[0, "recall_common"] >= 0
    usable = folds.loc[[1, 2], "balanced_accuracy"]
    assert np.isfinite(usable).all()
    assert result.summary["balanced_accuracy"] == pytest.approx(
        {"mean": usable.mean(), "sd": usable.std(ddof=1), "usable_folds": 2, "n_folds": 3})
    assert result.usable_folds["balanced_accuracy"] == 2
    assert result.usable_folds["recall_common"] == 3
    assert "usable_folds" not in result.summary["recall_common"]


@pytest.mark.parametrize(("task", "target", "attribute"), [
    ("classification", 1, "C_"), ("regression", 2, "alpha_")])
def test_grouped_inner_search_picks_what_a_sklearn_group_search_picks(task, target, attribute):
    data = repeated_sessions()
    X, y, subjects = data[0], data[target], data[3]
    grouped = fit_probe(make_probe(task), X, y, groups=subjects)[-1]
    reference = fit_with_routing(sklearn_group_search(task), X, y, subjects)[-1]
    by_row = fit_probe(make_probe(task), X, y)[-1]
    assert getattr(grouped, attribute) == getattr(reference, attribute)
    np.testing.assert_array_equal(grouped.coef_, reference.coef_)
    # Splitting sessions of one subject across the inner folds rewards memorising
    # subjects: the search by row picks a weaker penalty on these noise labels.
    weaker = (by_row.C_ > grouped.C_) if task == "classification" else (
        by_row.alpha_ < grouped.alpha_)
    assert weaker


def test_cross_validation_searches_each_training_fold_by_group():
    X, labels, _, subjects = repeated_sessions()
    result = cross_validate_probe(X, labels, "classification", cv=4, groups=subjects,
                                  return_estimators=True)
    for (train, _), model in zip(GroupKFold(4).split(X, labels, subjects), result.estimators):
        reference = fit_with_routing(sklearn_group_search("classification"), X[train],
                                     labels[train], subjects[train])
        assert model[-1].C_ == reference[-1].C_
        np.testing.assert_array_equal(model[-1].coef_, reference[-1].coef_)


def test_brain_age_bias_line_is_fitted_on_group_folds():
    X, _, ages, subjects = repeated_sessions()
    model = BrainAgeRegressor(make_pipeline(StandardScaler(), Ridge(10.0))).fit(
        X, ages, groups=subjects)
    expected = cross_val_predict(make_pipeline(StandardScaler(), Ridge(10.0)), X, ages,
                                 groups=subjects, cv=GroupKFold(5))
    np.testing.assert_array_equal(model.bias_fit_predictions_, expected)
    default = BrainAgeRegressor().fit(X, ages, groups=subjects)
    reference = fit_with_routing(sklearn_group_search("regression"), X, ages, subjects)
    assert default.probe_[-1].alpha_ == reference[-1].alpha_


def test_brain_age_cross_validation_passes_groups_to_the_bias_line():
    X, _, ages, subjects = repeated_sessions()
    result = cross_validate_probe(X, ages, "brain_age", cv=4, groups=subjects,
                                  return_estimators=True,
                                  estimator=BrainAgeRegressor(make_probe("brain_age",
                                                                         alphas=[10.0])))
    train = next(GroupKFold(4).split(X, ages, subjects))[0]
    expected = cross_val_predict(make_probe("brain_age", alphas=[10.0]), X[train], ages[train],
                                 groups=subjects[train], cv=GroupKFold(5))
    np.testing.assert_allclose(result.estimators[0].bias_fit_predictions_, expected,
                               rtol=1e-12)


def test_without_groups_folds_are_plain_sklearn_fits():
    X, labels, ages, _ = repeated_sessions(seed=1)
    result = cross_validate_probe(X, labels, "classification", cv=5, return_estimators=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, labels)
    for (train, _), model in zip(folds, result.estimators):
        reference = clone(make_probe("classification")).fit(X[train], labels[train])
        np.testing.assert_array_equal(model[-1].coef_, reference[-1].coef_)
    result = cross_validate_probe(X, ages, "brain_age", cv=5, return_estimators=True)
    train = next(KFold(5, shuffle=True, random_state=0).split(X))[0]
    expected = cross_val_predict(make_probe("brain_age"), X[train], ages[train],
                                 cv=KFold(5, shuffle=True, random_state=0))
    np.testing.assert_array_equal(result.estimators[0].bias_fit_predictions_, expected)


def test_too_few_groups_in_a_training_fold_for_the_inner_search():
    X, y, groups = six_groups_one_fold_without_rare()
    with pytest.raises(PredictionError, match=r"class 'rare' is in only 1 group\(s\) of a "
                       r"training fold.*fewer folds"), pytest.warns(UserWarning):
        cross_validate_probe(X, y, "classification", cv=3, groups=groups)


def test_figure_title_says_how_many_folds_were_usable(tmp_path):
    from anatcl_nipype.prediction import plot_cv_results

    X, y, groups = six_groups_one_fold_without_rare()
    with pytest.warns(UserWarning, match="class 'rare'"):
        result = cross_validate_probe(X, y, "classification", cv=3, groups=groups,
                                      estimator=PLAIN_CLASSIFIER)
    svg = plot_cv_results(result, tmp_path / "rare")[0].read_text()
    assert "balanced_accuracy" in svg and "(2 of 3 folds)" in svg


def test_grouped_permutation_test_scores_as_the_grouped_cross_validation():
    from anatcl_nipype.prediction import permutation_test

    X, labels, _, subjects = repeated_sessions()
    X[labels == "b", :2] += 1.0
    probe = make_probe("classification", cs=[0.01, 1.0], inner_cv=2)
    test = permutation_test(X, labels, "classification", n_permutations=4, cv=4,
                            groups=subjects, estimator=probe)
    result = cross_validate_probe(X, labels, "classification", cv=4, groups=subjects,
                                  estimator=probe)
    assert test.score == pytest.approx(result.summary["balanced_accuracy"]["mean"], abs=1e-12)
    # Each subject has one label: shuffling within subjects would change nothing, so
    # subjects' labels are shuffled between subjects; the planted effect beats them all.
    assert test.permutation_scores.shape == (4,) and test.pvalue == pytest.approx(0.2)
    assert test.permutation_scores.max() < test.score - 0.2


def test_permutation_within_sites_searches_by_site():
    from anatcl_nipype.prediction import permutation_test

    X, labels, _, _ = repeated_sessions(seed=2)
    sites = np.tile(np.repeat(list("ABCDEF"), 5), 4)
    X[labels == "b", :2] += 1.0
    probe = make_probe("classification", cs=[0.01, 1.0], inner_cv=2)
    test = permutation_test(X, labels, "classification", n_permutations=3, cv=3,
                            groups=sites, estimator=probe)
    result = cross_validate_probe(X, labels, "classification", cv=3, groups=sites,
                                  estimator=probe)
    assert test.score == pytest.approx(result.summary["balanced_accuracy"]["mean"], abs=1e-12)
    assert test.pvalue == pytest.approx(0.25)
