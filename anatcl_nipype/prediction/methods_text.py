"""The methods sentences of a group-level probe, each written once.

The group workflow's ``__desc__`` (from its arguments, before a run) and the report's
methods (from the probe's card, after it) call the same functions, so the two texts
cannot disagree; results a card holds (participants, metric values, p-value, hash) are
added where given. The penalty grids come from :mod:`anatcl_nipype.options`, as the
probe's. Imports nothing heavy (no scikit-learn): workflows use it while they are built.

>>> text = probe_text("diagnosis", "classification", "embeddings", cv=5, group_column="site")
>>> text.split(":")[0]  # doctest: +NORMALIZE_WHITESPACE
"The target 'diagnosis' was predicted from the AnatCL embeddings with a linear probe
 (scikit-learn [@pedregosa2011sklearn])"
>>> "inner 5-fold GroupKFold" in probe_model_text("classification", grouped=True)
True
"""

from anatcl_nipype.citations import cite
from anatcl_nipype.options import (
    ALPHA_GRID,
    AUTO_TASK,
    AUTO_TASK_BY_TARGET,
    C_GRID,
    INNER_CV,
    PROBE_TASKS,
)

FEATURES_TEXT = {
    "embeddings": "the AnatCL embeddings",
    "regional": "the region-wise measures",
    "both": "the AnatCL embeddings, joined with the region-wise measures,",
}
METRICS_TEXT = {
    **{name: task.metrics_text for name, task in PROBE_TASKS.items()},
    AUTO_TASK: "balanced accuracy and ROC AUC (categories) or the mean absolute error, "
               "root mean squared error, R2 and Pearson's r (numbers)",
}


def described_task(task, target):
    """The task the text describes: ``auto`` is brain age for an ``age`` target.

    >>> described_task("auto", "Age"), described_task("auto", "mmse")
    ('brain_age', 'auto')
    """
    if task != AUTO_TASK:
        return task
    return AUTO_TASK_BY_TARGET.get(str(target).lower(), task)


def _is(task, field):
    """The :class:`~anatcl_nipype.options.ProbeTask` ``field`` of ``task``; False for
    ``auto`` (decided from the data later)."""
    return task in PROBE_TASKS and getattr(PROBE_TASKS[task], field)


def _grid(start, stop, num):
    return f"{num} values from 1e{start} to 1e{stop}"


def probe_model_text(task, grouped=False):
    """The probe and how its penalty is chosen (with groups, by GroupKFold)."""
    inner = f"an inner {INNER_CV}-fold GroupKFold" if grouped else None
    if _is(task, "categorical"):
        return ("L2-regularised logistic regression with balanced class weights, its inverse "
                f"penalty C chosen among {_grid(*C_GRID)} by "
                f"{inner or f'an inner stratified {INNER_CV}-fold'} cross-validation on the "
                "log-loss")
    if task == AUTO_TASK:
        return ("logistic regression (a categorical target) or ridge regression (a numeric "
                "one), its penalty chosen by an inner cross-validation")
    return (f"ridge regression, its penalty chosen among {_grid(*ALPHA_GRID)} by "
            f"{inner or 'efficient leave-one-out'} cross-validation")


def validation_text(task, cv, n_repeats=1, group_column=None, seed=None, results=None):
    """How the probe was cross-validated, and what was reported (``results``: the values)."""
    if group_column:
        scheme = (f"{cv}-fold GroupKFold cross-validation keeping every value of "
                  f"'{group_column}' in one fold")
    else:
        scheme = ("stratified " if _is(task, "categorical") else "") + \
            f"{cv}-fold cross-validation"
    repeats = f", repeated {n_repeats} times with different splits" if n_repeats > 1 else ""
    seeded = f" (seed {seed})" if seed is not None else ""
    return (f"Performance was estimated with {scheme}{repeats}{seeded}, fitting the whole "
            f"probe (imputation and scaling included) on the training folds only, and "
            f"reported as the {METRICS_TEXT[task]} (mean and standard deviation over folds)"
            + (f": {results}." if results else "."))


def brain_age_text(bias_cv=INNER_CV, bias_folds=None, group_column=None):
    """The age-bias correction, and what its line was fitted on.

    >>> text = brain_age_text(5, [2, 5], "participant_id").split(": ", 1)[1]
    >>> print(text)  # doctest: +NORMALIZE_WHITESPACE
    a line of the predictions on age, fitted on 5-fold cross-validated predictions within each
    training fold (GroupKFold by 'participant_id'; 2 folds where a training fold held fewer
    than 5 values of it), then applied to the test fold.
    >>> "in-sample predictions" in brain_age_text(None)
    True
    """
    return ("The brain-age gap was then adjusted with the linear age-bias correction "
            f"{cite('beheshti2019bias')}: a line of the predictions on age, fitted on "
            f"{bias_fit_text(bias_cv, bias_folds, group_column)}, then applied to the test "
            "fold.")


def bias_fit_text(bias_cv=INNER_CV, bias_folds=None, group_column=None):
    """What the brain-age bias line was fitted on (``bias_folds``: the folds each training
    fold used, fewer where it held fewer participants or groups).

    >>> bias_fit_text(None)[:54]
    'the in-sample predictions of each training fold (--bia'
    """
    if bias_cv is None:
        return ("the in-sample predictions of each training fold (--bias-cv none: too few "
                "participants to cross-validate within them), which under-corrects the bias")
    fewer = [str(n) for n in (bias_folds or [bias_cv]) if n != bias_cv]
    unit = "values of it" if group_column else "participants"
    notes = ([f"GroupKFold by '{group_column}'"] if group_column else []) + (
        [f"{' or '.join(fewer)} folds where a training fold held fewer than {bias_cv} {unit}"]
        if fewer else [])
    return (f"{bias_cv}-fold cross-validated predictions within each training fold"
            + (f" ({'; '.join(notes)})" if notes else ""))


def permutation_text(n_permutations, pvalue=None, metric=None):
    """The permutation test: planned (``n_permutations``), its result, or none."""
    if pvalue is not None:
        return (f"A permutation test with {n_permutations} label permutations gave "
                f"p = {pvalue} for the {metric or 'score'}.")
    if n_permutations:
        return (f"Significance was assessed with a permutation test ({n_permutations} label "
                "permutations).")
    return "No permutation test was run."


def probe_text(target, task, features, *, cv, n_repeats=1, group_column=None, seed=None,
               n_permutations=0, n_train=None, results=None, pvalue=None, metric=None,
               model_sha256=None, bias_cv=INNER_CV, bias_folds=None):
    """The paragraph on one fitted probe (the results only where given).

    >>> text = probe_text("age", "auto", "regional", cv=3, n_train=12, model_sha256="ab")
    >>> "chosen among 15 values from 1e-2 to 1e5" in text, "all 12 participants" in text
    (True, True)
    """
    task = described_task(task, target)
    text = (f"The target '{target}' was predicted from {FEATURES_TEXT.get(features, features)} "
            f"with a linear probe (scikit-learn {cite('pedregosa2011sklearn')}): missing "
            "values were imputed with the training median, each feature was standardised, "
            f"then {probe_model_text(task, grouped=bool(group_column))}. "
            + validation_text(task, cv, n_repeats, group_column, seed, results))
    if _is(task, "corrects_age_bias"):
        text += " " + brain_age_text(bias_cv, bias_folds, group_column)
    text += " " + permutation_text(n_permutations, pvalue, metric)
    everyone = f"all {n_train} participants" if n_train else "all participants"
    text += f" The final probe was fitted on {everyone} with a known {target}"
    if model_sha256:
        text += f" and saved with skops {cite('skops')} (sha256 {model_sha256})"
    return text + "."


def harmonization_text(site_column="site", covariates=(), n_sites=None, unseen_sites=None):
    """ComBat site harmonisation of the features, inside the cross-validation.

    >>> harmonization_text("scanner", ["age"], n_sites=3)[:58]
    'Before the probe was fitted, the features were harmonised '
    """
    sites = f"the {n_sites} site(s)" if n_sites else "the sites"
    protected = (f"protecting the covariate(s) {', '.join(covariates)}" if covariates
                 else "with no protected covariate")
    text = (f"Before the probe was fitted, the features were harmonised across {sites} of the "
            f"participants.tsv column '{site_column}' with ComBat {cite('fortin2018combat')} "
            "(the neuroCombat package; empirical Bayes location and scale adjustment), "
            f"{protected}. ComBat was fitted inside each training fold only and applied to "
            "that fold's test participants, so no test participant informed the site effects.")
    if unseen_sites:
        text += (f" Participants of sites unseen in training were handled as "
                 f"'{unseen_sites}'.")
    return text


def ensemble_text(folds):
    """One probe per released encoder fold, and their ensemble."""
    return (f"One probe was fitted on the embeddings of each of the {len(folds)} released "
            f"AnatCL encoder folds ({', '.join(map(str, folds))}), all cross-validated with "
            "the same splits; the fold ensemble's prediction is the mean of the per-fold "
            "probes' out-of-fold predictions (class probabilities for a categorical target), "
            "and its metrics are reported beside each fold's and their mean and standard "
            "deviation (desc-ensemble_metrics.tsv, desc-folds_metrics.tsv).")


def applied_text(target, model_name, features=None, model_sha256=None, n_participants=None):
    """A saved probe applied: never called cross-validated.

    >>> "not cross-validated" in applied_text("age", "age.skops")
    True
    """
    sha = f" (sha256 {model_sha256})" if model_sha256 else ""
    used = f" {FEATURES_TEXT[features]}" if features in FEATURES_TEXT else " the features"
    whom = f" of {n_participants} participant(s)" if n_participants is not None else ""
    return (f"A previously fitted linear probe for {target}, {model_name}{sha}, was loaded "
            f"with skops {cite('skops')} and applied, unchanged, to{used}{whom}, after "
            "checking that the features were made with the encoder weights and columns it "
            "was trained on. These predictions are not cross-validated: participants the "
            "probe was fitted on are predicted in sample.")
