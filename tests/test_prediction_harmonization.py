"""ComBat inside cross-validation: site confounds removed, planted effects kept, no leakage."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import cross_validate_probe, make_probe
from anatcl_nipype.prediction.harmonization import (
    ComBatHarmonizer,
    harmonization_frame,
    site_separability,
)
from anatcl_nipype.prediction.persistence import ALLOWED_TYPES
from anatcl_nipype.prediction.validation import fit_final_probe

SITES = ("s1", "s2", "s3", "s4")
FAST_CLASSIFIER = make_probe("classification", cs=[0.01, 0.1, 1.0], inner_cv=3)


def multisite(n_per_site=50, n_features=12, seed=0):
    """Noise features with a strong additive and multiplicative offset per site."""
    rng = np.random.default_rng(seed)
    sites = np.repeat(SITES, n_per_site)
    shift = {site: rng.normal(0, 2.0, n_features) for site in SITES}
    scale = {site: rng.uniform(0.6, 1.8, n_features) for site in SITES}
    X = rng.normal(size=(len(sites), n_features))
    X = np.stack([X[i] * scale[s] + shift[s] for i, s in enumerate(sites)])
    covariates = pd.DataFrame({"age": rng.uniform(20, 80, len(sites)),
                               "sex": rng.choice(["F", "M"], len(sites))})
    return X, sites, covariates, rng


def test_training_rows_come_out_as_neurocombat_harmonises_them():
    X, sites, covariates, _ = multisite()
    frame = harmonization_frame(X, sites, covariates)
    ours = ComBatHarmonizer(covariate_columns=["age", "sex"]).fit(frame).transform(frame)
    with contextlib.redirect_stdout(io.StringIO()):
        reference = neuroCombat(X.T, covariates.assign(site=sites), "site",
                                categorical_cols=["sex"], continuous_cols=["age"])["data"].T
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


def test_a_label_that_is_only_the_site_is_at_chance_when_harmonised():
    X, sites, _, _ = multisite()
    label = np.where(np.isin(sites, ["s1", "s2"]), "patient", "control")
    plain = cross_validate_probe(X, label, "classification", cv=5, estimator=FAST_CLASSIFIER)
    harmonised = cross_validate_probe(X, label, "classification", cv=5, harmonize="combat",
                                      sites=sites, estimator=FAST_CLASSIFIER)
    assert plain.summary["balanced_accuracy"]["mean"] > 0.95
    assert abs(harmonised.summary["balanced_accuracy"]["mean"] - 0.5) < 0.1


def test_permutation_test_scores_the_harmonised_cross_validation():
    """A label that is only the site: the permutation test must test the harmonised probe
    (at chance, not significant), not the unharmonised one (perfect, p at its floor)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from anatcl_nipype.prediction import permutation_test

    X, sites, covariates, _ = multisite(n_per_site=20)
    label = np.where(np.isin(sites, ["s1", "s2"]), "patient", "control")
    quick = make_pipeline(StandardScaler(), LogisticRegression())
    kwargs = dict(cv=4, estimator=quick, harmonize="combat", sites=sites,
                  covariates=covariates[["age"]])
    harmonised = cross_validate_probe(X, label, "classification", **kwargs)
    test = permutation_test(X, label, "classification", n_permutations=9, **kwargs)
    # the same estimator on the same splits: the same score, to the last bit
    assert test.score == harmonised.summary["balanced_accuracy"]["mean"]
    assert abs(test.score - 0.5) < 0.1 and test.pvalue > 0.2
    plain = permutation_test(X, label, "classification", n_permutations=9, cv=4,
                             estimator=quick)
    assert plain.score > 0.9 and plain.pvalue == pytest.approx(0.1)


@pytest.mark.slow  # a whole study: CV, permutations, final fit, site separability
def test_study_permutation_test_is_that_of_the_harmonised_probe(tmp_path):
    import json
    from pathlib import Path

    from anatcl_nipype.prediction.study import fit_probe_study

    X, sites, _, _ = multisite(n_per_site=15, n_features=4)
    ids = [f"sub-{i:02d}" for i in range(len(sites))]
    pd.DataFrame(X, index=pd.Index(ids, name="participant_id"),
                 columns=[f"neuromorphometrics_R{i}_Vgm" for i in range(4)]).to_csv(
        tmp_path / "regional.tsv", sep="\t")
    score = np.isin(sites, ["s1", "s2"]).astype(float)  # a score that is only the site
    pd.DataFrame({"participant_id": ids, "score": score, "site": sites}).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    written = fit_probe_study([tmp_path / "regional.tsv"], tmp_path / "participants.tsv",
                              "score", "regression", str(tmp_path / "study"), cv=3,
                              n_permutations=3, harmonize="combat")
    summary = json.loads(Path(written["out_json"]).read_text())
    cv_mae = summary["cv_metrics"]["mae"]["mean"]
    assert summary["permutation_test"]["score"] == cv_mae and cv_mae > 0.4
    assert summary["permutation_test"]["pvalue"] > 0.25


def test_planted_effect_with_site_offsets_is_recovered_under_leave_site_out():
    X, sites, covariates, rng = multisite()
    diagnosis = np.tile(np.repeat(["control", "patient"], 25), len(SITES))
    X[diagnosis == "patient", :3] += 1.5
    kwargs = dict(cv=len(SITES), groups=sites, estimator=FAST_CLASSIFIER)
    plain = cross_validate_probe(X, diagnosis, "classification", **kwargs)
    harmonised = cross_validate_probe(X, diagnosis, "classification", harmonize="combat",
                                      sites=sites, covariates=covariates,
                                      unseen_sites="estimate", **kwargs)
    plain_score = plain.summary["balanced_accuracy"]["mean"]
    score = harmonised.summary["balanced_accuracy"]["mean"]
    assert score >= plain_score and score > 0.8


def test_harmonisation_is_fitted_on_the_training_rows_only():
    X, sites, covariates, _ = multisite()
    age = covariates["age"].to_numpy()
    target = age / 10 + X[:, 0]
    result = cross_validate_probe(X, target, "regression", cv=3, harmonize="combat",
                                  sites=sites, covariates=covariates[["age"]],
                                  return_estimators=True)
    frame = harmonization_frame(X, sites, covariates[["age"]])
    on_all_rows = ComBatHarmonizer(covariate_columns=["age"]).fit(frame)
    for fold, model in enumerate(result.estimators):
        tested = result.predictions.query("fold == @fold").participant_id.astype(int)
        train = np.setdiff1d(np.arange(len(X)), tested)
        refit = ComBatHarmonizer(covariate_columns=["age"]).fit(frame.iloc[train])
        fitted = model.named_steps["combat"]
        for name in ("gamma_star_", "delta_star_", "stand_mean_", "var_pooled_",
                     "covariate_coef_"):
            np.testing.assert_array_equal(getattr(fitted, name), getattr(refit, name))
        assert not np.allclose(fitted.gamma_star_, on_all_rows.gamma_star_)


def test_protected_covariate_keeps_its_effect():
    X, sites, covariates, _ = multisite()
    age = covariates["age"].to_numpy().copy()  # pandas 3 hands out read-only views
    older_sites = np.isin(sites, ["s3", "s4"])
    age[older_sites] += 30  # sites differ in age: removing site means would remove age
    X[:, 0] += 0.1 * age
    frame = harmonization_frame(X, sites, {"age": age})
    protected = ComBatHarmonizer(covariate_columns=["age"]).fit_transform(frame)
    unprotected = ComBatHarmonizer().fit_transform(frame)

    def age_slope(features):
        return np.polyfit(age, features[:, 0], 1)[0]

    assert age_slope(protected) == pytest.approx(0.1, abs=0.03)
    assert age_slope(unprotected) < 0.07


def test_brain_age_is_harmonised_inside_the_folds():
    X, sites, covariates, _ = multisite()
    age = covariates["age"].to_numpy()
    X[:, :4] += (age[:, None] - 50) / 10
    plain = cross_validate_probe(X, age, "brain_age", cv=5)
    harmonised = cross_validate_probe(X, age, "brain_age", cv=5, harmonize="combat",
                                      sites=sites, covariates=covariates[["sex"]])
    assert harmonised.summary["mae"]["mean"] < plain.summary["mae"]["mean"]
    assert abs(harmonised.summary["gap_age_r"]["mean"]) < 0.2
    with pytest.raises(PredictionError, match="covariate 'age' is the prediction target"):
        cross_validate_probe(X, age, "brain_age", cv=5, harmonize="combat", sites=sites,
                             covariates=covariates)


def test_a_site_never_seen_is_refused_with_what_to_do():
    X, sites, _, _ = multisite()
    seen = sites != "s4"
    model = fit_final_probe(X[seen], X[seen, 0], "regression", harmonize="combat",
                            sites=sites[seen])
    assert model.predict(harmonization_frame(X[:3], sites[:3])).shape == (3,)
    with pytest.raises(PredictionError, match=r"site 's4' was not among the sites .*\(s1, s2, "
                       r"s3\); refit .*unseen_sites='estimate'"):
        model.predict(harmonization_frame(X[~seen], sites[~seen]))
    with pytest.raises(PredictionError, match="site 's[1-4]' was not among"):
        cross_validate_probe(X, X[:, 0], "regression", cv=4, groups=sites,
                             harmonize="combat", sites=sites)


def test_saved_harmonised_probe_needs_only_the_harmoniser_type_allowed(tmp_path):
    import skops.io

    X, sites, covariates, _ = multisite()
    model = fit_final_probe(X, X[:, 0], "regression", harmonize="combat", sites=sites,
                            covariates=covariates)
    path = tmp_path / "probe.skops"
    skops.io.dump(model, path)
    untrusted = skops.io.get_untrusted_types(file=path)
    assert "anatcl_nipype.prediction.harmonization.ComBatHarmonizer" in untrusted
    assert set(untrusted) <= ALLOWED_TYPES  # the harmoniser is the one type this adds
    loaded = skops.io.load(path, trusted=untrusted)
    frame = harmonization_frame(X, sites, covariates)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_site_separability_drops_to_chance():
    X, sites, covariates, _ = multisite()
    scores = site_separability(X, sites, covariates[["age"]], cv=3)
    assert scores["chance"] == 0.25
    assert scores["before"] > 0.95
    assert abs(scores["after"] - 0.25) < 0.1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"harmonize": "zscore", "sites": SITES}, "harmonize='zscore'; choose None or 'combat'"),
    ({"sites": SITES}, "sites or covariates given without harmonize='combat'"),
    ({"harmonize": "combat"}, r"needs the site of every participant \(sites=\.\.\.\)"),
    ({"harmonize": "combat", "sites": SITES[:3]}, "3 sites for 4 feature rows"),
])
def test_bad_harmonisation_options_refused(kwargs, message):
    X = np.zeros((4, 2))
    with pytest.raises(PredictionError, match=message):
        fit_final_probe(X, [1.0, 2.0, 3.0, 4.0], "regression", **kwargs)


def test_nan_features_and_single_participant_sites_refused():
    X, sites, _, _ = multisite(n_per_site=4)
    frame = harmonization_frame(X, sites)
    with pytest.raises(PredictionError, match="site 's4' has 1 participant"):
        ComBatHarmonizer().fit(frame.iloc[:13])
    X[0, 0] = np.nan
    with pytest.raises(PredictionError, match="missing or infinite values cannot be harmonised"):
        ComBatHarmonizer().fit(harmonization_frame(X, sites))
