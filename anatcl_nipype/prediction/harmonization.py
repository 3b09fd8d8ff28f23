"""Site harmonisation: ComBat as a scikit-learn transformer, fitted inside each fold.

ComBat (Johnson et al. 2007, Biostatistics 8:118; Fortin et al. 2018, NeuroImage
167:104) removes each site's additive and multiplicative offset from every feature,
with empirical-Bayes shrinkage across features, while protecting the effects of chosen
covariates (age, sex). The estimation is the maintained ``neuroCombat`` package's
(``neuroHarmonize`` cannot be used here: it pins numpy<2, which niworkflows refuses).

:class:`ComBatHarmonizer` reads the site and the covariates from columns of the frame
it is given (scikit-learn pipelines pass only ``X`` between steps), and returns the
harmonised feature columns. In a pipeline it is fitted on the training rows only and
applied, with the stored estimates, to the test rows. A site it never saw is refused
(``unseen_sites="refuse"``) or, with ``unseen_sites="estimate"``, its offsets are
estimated from its own rows (no labels) on top of the training fit: the documented way
to apply a probe to a new scanner, and what leave-site-out cross-validation needs.

:func:`harmonization_frame` builds that frame; :func:`site_separability` measures how
well a probe recognises the site from the features, before and after harmonisation.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sites = np.repeat(["a", "b"], 20)
>>> X = rng.normal(size=(40, 3)) + 3.0 * (sites == "b")[:, None]
>>> frame = harmonization_frame(X, sites, {"age": rng.uniform(20, 80, 40)})
>>> harmonized = ComBatHarmonizer(covariate_columns=["age"]).fit_transform(frame)
>>> bool(abs(harmonized[sites == "b"].mean() - harmonized[sites == "a"].mean()) < 0.5)
True
"""

import contextlib
import io

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from anatcl_nipype.errors import PredictionError

HARMONIZATIONS = (None, "combat")
UNSEEN_SITES = ("refuse", "estimate")
#: Column of :func:`harmonization_frame` holding the site.
SITE_COLUMN = "site"


def harmonization_frame(X, sites, covariates=None):
    """``X``'s features plus a ``site`` column and the covariates, as one DataFrame.

    ``covariates``: a DataFrame, a dict of columns or a 2-D array (columns named
    ``covariate_0``...), one row per feature row. Feature names are kept (``X``'s
    columns, else ``feature_000``...).

    >>> harmonization_frame(np.zeros((2, 1)), ["a", "b"], {"age": [60, 70]}).columns.tolist()
    ['feature_000', 'site', 'age']
    """
    import pandas as pd

    features = X.reset_index(drop=True) if hasattr(X, "columns") else pd.DataFrame(
        np.asarray(X), columns=[f"feature_{i:03d}" for i in range(np.shape(X)[1])])
    features.columns = [str(c) for c in features.columns]
    extra = _covariate_frame(covariates, len(features))
    sites = np.asarray(sites)
    if len(sites) != len(features):
        raise PredictionError(f"{len(sites)} sites for {len(features)} feature rows; pass "
                              "one site per feature row")
    clashes = sorted({SITE_COLUMN, *extra.columns} & set(features.columns))
    if clashes:
        raise PredictionError(f"feature column(s) {clashes} clash with the site or covariate "
                              "names; rename the covariates")
    return pd.concat([features, pd.DataFrame({SITE_COLUMN: sites.astype(str)}), extra], axis=1)


def frame_covariates(frame):
    """The covariate columns of a :func:`harmonization_frame` (those after ``site``).

    >>> frame_covariates(harmonization_frame(np.zeros((1, 2)), ["a"], {"sex": ["F"]}))
    ['sex']
    """
    return [str(c) for c in frame.columns[frame.columns.get_loc(SITE_COLUMN) + 1:]]


def _covariate_frame(covariates, n_rows):
    import pandas as pd

    if covariates is None:
        return pd.DataFrame(index=range(n_rows))
    if isinstance(covariates, pd.DataFrame):
        frame = covariates.reset_index(drop=True)
    elif isinstance(covariates, dict):
        frame = pd.DataFrame(covariates)
    else:
        values = np.asarray(covariates)
        values = values[:, None] if values.ndim == 1 else values
        frame = pd.DataFrame(values, columns=[f"covariate_{i}" for i in range(values.shape[1])])
    if len(frame) != n_rows:
        raise PredictionError(f"{len(frame)} covariate rows for {n_rows} feature rows; pass "
                              "one row of covariates per participant")
    frame.columns = [str(c) for c in frame.columns]
    return frame


class ComBatHarmonizer(TransformerMixin, BaseEstimator):
    """ComBat (``neuroCombat``) as a transformer; site and covariates read from columns.

    Parameters
    ----------
    site_column : str
        The column of ``X`` holding the site (scanner) of each row.
    covariate_columns : sequence of str
        Columns whose effects ComBat protects (e.g. ``["age", "sex"]``); numeric ones
        enter linearly, others one-hot (their training levels only).
    unseen_sites : {"refuse", "estimate"}
        What :meth:`transform` does with a site absent from the training rows.
    eb, parametric, mean_only : bool
        ``neuroCombat``'s options (empirical Bayes, parametric priors, location only).

    Attributes
    ----------
    sites_ : ndarray of str, the training sites.
    gamma_star_, delta_star_ : ndarray (n_sites, n_features)
        neuroCombat's site location and scale estimates.
    stand_mean_, var_pooled_ : ndarray (n_features,)
        The grand mean and pooled variance of the training rows.
    covariate_coef_ : ndarray (n_covariate_terms, n_features)
        The protected covariates' effects, from neuroCombat's fit.
    covariate_levels_ : dict, the training levels of each non-numeric covariate.
    feature_columns_ : list of str, the feature columns, in order.

    >>> ComBatHarmonizer(covariate_columns=["age"]).get_params()["covariate_columns"]
    ['age']
    """

    def __init__(self, site_column=SITE_COLUMN, covariate_columns=(), unseen_sites="refuse",
                 eb=True, parametric=True, mean_only=False):
        self.site_column = site_column
        self.covariate_columns = covariate_columns
        self.unseen_sites = unseen_sites
        self.eb = eb
        self.parametric = parametric
        self.mean_only = mean_only

    def fit(self, X, y=None):
        """Estimate the site effects on the rows of ``X`` (a DataFrame) with neuroCombat."""
        import pandas as pd
        from neuroCombat import neuroCombat

        if self.unseen_sites not in UNSEEN_SITES:
            raise PredictionError(f"unseen_sites={self.unseen_sites!r}; choose 'refuse' or "
                                  "'estimate'")
        self.feature_columns_ = [c for c in _columns(X) if c not in self._named_columns()]
        features, sites = self._features(X), self._sites(X)
        self.covariate_levels_ = {
            name: sorted(X[name].astype(str).unique().tolist())
            for name in self.covariate_columns if not pd.api.types.is_numeric_dtype(X[name])}
        design = self._covariate_design(X)
        names, counts = np.unique(sites, return_counts=True)
        if counts.min() < 2 and not self.mean_only:
            raise PredictionError(f"site {str(names[counts.argmin()])!r} has 1 participant in "
                                  "the training rows; ComBat needs 2 or more per site to "
                                  "estimate its scale. Merge small sites or drop them")
        covars = pd.DataFrame(design, columns=[f"c{i}" for i in range(design.shape[1])])
        covars.insert(0, "site", sites)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints each step
                fitted = neuroCombat(features.T, covars, "site", continuous_cols=list(
                    covars.columns[1:]), eb=self.eb, parametric=self.parametric,
                    mean_only=self.mean_only)
        except np.linalg.LinAlgError:
            raise PredictionError(
                "ComBat cannot separate the sites from the covariates "
                f"{list(self.covariate_columns)} (a covariate constant within every site, or "
                "two covariates that say the same); drop that covariate") from None
        self._store(fitted["estimates"], fitted["info"]["design"])
        return self

    def transform(self, X):
        """Harmonise the feature columns of ``X`` with the training estimates."""
        check_is_fitted(self, "gamma_star_")
        features, sites = self._features(X), self._sites(X)
        design = self._covariate_design(X)
        protected = design @ self.covariate_coef_
        gamma, delta = self._site_parameters(features, sites, protected)
        standardised = (features - self.stand_mean_ - protected) / np.sqrt(self.var_pooled_)
        # neuroCombat's own adjust_data_final on new rows; written here because
        # neuroCombatFromTraining fails on numpy 2 (int() of an array) and adds the
        # training rows' mean covariate effect instead of each row's own.
        adjusted = (standardised - gamma) / np.sqrt(delta)
        return adjusted * np.sqrt(self.var_pooled_) + self.stand_mean_ + protected

    def get_feature_names_out(self, input_features=None):
        """The feature columns (site and covariate columns are consumed)."""
        check_is_fitted(self, "feature_columns_")
        return np.asarray(self.feature_columns_, dtype=object)

    def _named_columns(self):
        return [self.site_column, *self.covariate_columns]

    def _store(self, estimates, design):
        n_sites = len(estimates["batches"])
        self.sites_ = np.asarray(estimates["batches"]).astype(str)
        self.gamma_star_ = np.asarray(estimates["gamma.star"], dtype=float)
        self.delta_star_ = np.asarray(estimates["delta.star"], dtype=float)
        self.stand_mean_ = np.asarray(estimates["stand.mean"], dtype=float)[:, 0]
        self.var_pooled_ = np.asarray(estimates["var.pooled"], dtype=float)[:, 0]
        covariates = design[:, n_sites:]
        mod_mean = np.asarray(estimates["mod.mean"], dtype=float).T
        # neuroCombat keeps the covariates' fitted effects (mod.mean), not their
        # coefficients; recover those (exactly: same design) to apply them to new rows.
        self.covariate_coef_ = (np.linalg.lstsq(covariates, mod_mean, rcond=None)[0]
                                if covariates.shape[1] else np.zeros((0, mod_mean.shape[1])))

    def _features(self, X):
        missing = [c for c in [*getattr(self, "feature_columns_", []), *self._named_columns()]
                   if c not in _columns(X)]
        if missing:
            raise PredictionError(f"the harmoniser needs column(s) {missing}; build its input "
                                  "with harmonization_frame(X, sites, covariates)")
        features = np.asarray(X[self.feature_columns_], dtype=float)
        if not np.all(np.isfinite(features)):
            raise PredictionError("features with missing or infinite values cannot be "
                                  "harmonised with ComBat; drop or impute those participants "
                                  "or features first")
        return features

    def _sites(self, X):
        return np.asarray(X[self.site_column]).astype(str)

    def _covariate_design(self, X):
        """Numeric covariates as they are, others one-hot without the first level."""
        columns = []
        for name in self.covariate_columns:
            if name not in self.covariate_levels_:
                columns.append(np.asarray(X[name], dtype=float)[:, None])
                continue
            values = np.asarray(X[name]).astype(str)
            levels = self.covariate_levels_[name]
            unknown = sorted(set(values.tolist()) - set(levels))
            if unknown:
                raise PredictionError(f"covariate {name!r} has value(s) {unknown} not seen "
                                      f"in the training rows ({levels}); use the training "
                                      "coding or refit")
            columns.append(np.stack([values == level for level in levels[1:]], axis=1))
        if not columns:
            return np.zeros((len(X), 0))
        design = np.hstack(columns).astype(float)
        if not np.all(np.isfinite(design)):
            raise PredictionError(f"covariates {list(self.covariate_columns)} have missing "
                                  "values; ComBat needs every covariate of every participant")
        return design.astype(np.float32).astype(float)  # neuroCombat's design precision

    def _site_parameters(self, features, sites, protected):
        """Each row's site location and scale; unseen sites refused or estimated."""
        gamma = np.empty_like(features)
        delta = np.empty_like(features)
        for site in np.unique(sites):
            rows = sites == site
            if site in self.sites_:
                index = int(np.flatnonzero(self.sites_ == site)[0])
                gamma[rows], delta[rows] = self.gamma_star_[index], self.delta_star_[index]
            elif self.unseen_sites == "estimate":
                gamma[rows], delta[rows] = self._estimate_site(features[rows], protected[rows],
                                                               site)
            else:
                raise PredictionError(
                    f"site {str(site)!r} was not among the sites the harmonisation was fitted on "
                    f"({', '.join(self.sites_)}); refit the probe with participants from that "
                    "site, or harmonise with unseen_sites='estimate' to estimate its offsets "
                    "from its own participants (2 or more)")
        return gamma, delta

    def _estimate_site(self, features, protected, site):
        """A new site's ComBat offsets from its own rows, by neuroCombat's estimators."""
        import importlib

        # the package's __init__ shadows its module by the function of the same name
        package = importlib.import_module("neuroCombat.neuroCombat")

        if len(features) < 2:
            raise PredictionError(f"site {str(site)!r} is new and has 1 participant; estimating "
                                  "its offsets needs 2 or more. Add participants of that site")
        standardised = ((features - self.stand_mean_ - protected) / np.sqrt(self.var_pooled_)).T
        info = {"n_batch": 1, "batch_info": [list(range(len(features)))], "ref_level": None}
        design = np.ones((len(features), 1))
        priors = package.fit_LS_model_and_find_priors(standardised, design, info,
                                                      self.mean_only)
        if not self.eb:
            gamma, delta = package.find_non_eb_adjustments(standardised, priors, info)
        elif self.parametric:
            gamma, delta = package.find_parametric_adjustments(standardised, priors, info,
                                                               self.mean_only)
        else:
            gamma, delta = package.find_non_parametric_adjustments(standardised, priors, info,
                                                                   self.mean_only)
        return np.asarray(gamma, dtype=float)[0], np.asarray(delta, dtype=float)[0]


def _columns(X):
    if not hasattr(X, "columns"):
        raise PredictionError("the harmoniser reads the site and covariates from columns: "
                              "pass a DataFrame built with harmonization_frame(X, sites, "
                              "covariates)")
    return [str(c) for c in X.columns]


def make_harmonized(estimator, covariate_columns=(), unseen_sites="refuse"):
    """``estimator`` behind a :class:`ComBatHarmonizer` step, as one pipeline.

    >>> from anatcl_nipype.prediction.probes import make_probe
    >>> [name for name, _ in make_harmonized(make_probe("regression")).steps]
    ['combat', 'probe']
    """
    from sklearn.pipeline import Pipeline

    harmonizer = ComBatHarmonizer(covariate_columns=list(covariate_columns),
                                  unseen_sites=unseen_sites)
    return Pipeline([("combat", harmonizer), ("probe", estimator)])


def site_separability(X, sites, covariates=None, cv=5, seed=0):
    """Cross-validated balanced accuracy of a site probe, before and after ComBat.

    The site probe is the default classification probe; ComBat is fitted inside each
    training fold (mixed-site folds, stratified by site). Chance is 1 / number of
    sites. Returns ``{"before": ..., "after": ..., "chance": ...}``.

    >>> rng = np.random.default_rng(0)
    >>> sites = np.repeat(["a", "b"], 30)
    >>> X = rng.normal(size=(60, 4)) + 2.0 * (sites == "b")[:, None]
    >>> scores = site_separability(X, sites, cv=3)
    >>> scores["before"] > 0.9, abs(scores["after"] - 0.5) < 0.2
    (True, True)
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from anatcl_nipype.prediction.probes import make_probe

    sites = np.asarray(sites).astype(str)
    frame = harmonization_frame(X, sites, covariates)
    covariate_columns = frame_covariates(frame)
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    probe = make_probe("classification", seed=seed)
    scores = {}
    for name, model, data in (
            ("before", probe, frame.drop(columns=[SITE_COLUMN, *covariate_columns])),
            ("after", make_harmonized(probe, covariate_columns), frame)):
        scores[name] = float(np.mean(cross_val_score(model, data, sites, cv=folds,
                                                     scoring="balanced_accuracy")))
    scores["chance"] = 1.0 / len(set(sites.tolist()))
    return scores
