"""Downstream prediction from AnatCL embeddings and/or region-wise measures.

Linear probes (scikit-learn pipelines: median imputation, standardisation, then
logistic or ridge regression with an inner CV over the penalty), brain age with the
linear age-bias correction, leakage-free cross-validation with its metrics and
out-of-fold predictions, permutation tests, safe model files (skops plus a JSON card)
and figures. No Nipype, no torch. A typical study::

    features = join_features(["embeddings.tsv", "regional.tsv"])
    labels = load_labels("participants.tsv", "diagnosis", features.index, "classification")
    X = features.loc[labels.participant_ids]
    result = cross_validate_probe(X, labels.labels, "classification", cv=5, n_repeats=10)
    write_predictions_tsv(result.predictions, "predictions.tsv")
    write_metrics_tsv(result, "metrics.tsv")
    plot_cv_results(result, "figures/diagnosis")
    probe = default_estimator("classification").fit(X, labels.labels)
    save_probe(probe, "diagnosis.skops", {"task": "classification", "target": "diagnosis",
               "n_train": len(X), "cv_metrics": result.summary,
               "feature_source": {"columns": list(X.columns)}})

>>> import numpy as np
>>> from anatcl_nipype.prediction import cross_validate_probe, make_probe
>>> rng = np.random.default_rng(1)
>>> X = rng.normal(size=(50, 4))
>>> age = 50 + 10 * X[:, 0] + rng.normal(0, 2, 50)
>>> result = cross_validate_probe(X, age, "regression", cv=5,
...                               estimator=make_probe("regression", alphas=[1.0]))
>>> result.summary["mae"]["mean"] < 3
True
"""

from anatcl_nipype.lazy_exports import lazy_exports

# Names are imported on first use, so that the scikit-learn-free modules (feature_source,
# applying, labels, features, tables) can be imported without importing scikit-learn.
_EXPORTS = {
    "brain_age": ("BrainAgeRegressor",),
    "ensemble": ("across_folds", "ensemble_metrics", "ensemble_predictions"),
    "harmonization": ("ComBatHarmonizer", "harmonization_frame", "site_separability"),
    "features": ("join_features", "read_features_tsv"),
    "figures": ("plot_cv_results",),
    "labels": ("Labels", "load_labels"),
    "persistence": ("card_path", "load_probe", "save_probe"),
    "probes": ("TASKS", "fit_probe", "make_probe"),
    "tables": ("write_metrics_tsv", "write_predictions_tsv"),
    "validation": ("CrossValidationResult", "PermutationResult", "cross_validate_probe",
                   "default_estimator", "fit_final_probe", "permutation_test"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
