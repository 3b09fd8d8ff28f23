"""The vocabularies every layer shares: weights, precisions, tasks, feature kinds.

One place for the names a user can choose, so that the command line, the interfaces'
traits, the workflows and the science agree, and for what differs between probe tasks
(:data:`PROBE_TASKS`). Imports only the standard library's ``dataclasses`` (safe for the
command line to read before any heavy import).

>>> DESCRIPTORS, FOLDS, TASKS
(('global', 'local'), (0, 1, 2, 3, 4), ('classification', 'regression', 'brain_age'))
>>> check_choice("task", "brain_age", TASKS)
'brain_age'
>>> PROBE_TASKS["brain_age"].headline_metric, PROBE_TASKS["classification"].categorical
('mae', True)
"""

from dataclasses import dataclass

_REGRESSION_METRICS_TEXT = ("mean absolute error (MAE), root mean squared error, R2 and "
                            "Pearson's r")


@dataclass(frozen=True)
class ProbeTask:
    """What differs between probe tasks; adding a task is adding one of these."""

    name: str
    #: Labels are classes (kept as text): a logistic probe, stratified folds, class
    #: probabilities, classification metrics. Else numbers: a ridge probe, plain folds,
    #: regression metrics.
    categorical: bool
    #: The brain-age linear age-bias correction: corrected predictions and the gap.
    corrects_age_bias: bool
    #: The summary box's metric and its label; the permutation test's score.
    headline_metric: str
    headline_label: str
    #: The metrics in the title of the cross-validation figure.
    figure_metrics: tuple
    #: The methods' words for what was reported.
    metrics_text: str
    #: The report's caption of the cross-validation figure.
    figure_caption: str


#: Every probe task by name, in the order the command line lists them.
PROBE_TASKS = {task.name: task for task in (
    ProbeTask("classification", categorical=True, corrects_age_bias=False,
              headline_metric="balanced_accuracy", headline_label="balanced accuracy",
              figure_metrics=("balanced_accuracy", "roc_auc"),
              metrics_text="balanced accuracy and the area under the ROC curve",
              figure_caption="Confusion matrix and ROC curve of the out-of-fold predictions "
                             "(first repeat)."),
    ProbeTask("regression", categorical=False, corrects_age_bias=False,
              headline_metric="mae", headline_label="MAE",
              figure_metrics=("mae", "r2", "pearson_r"),
              metrics_text=_REGRESSION_METRICS_TEXT,
              figure_caption="Predicted against true values, out of fold (first repeat), with "
                             "the identity line."),
    ProbeTask("brain_age", categorical=False, corrects_age_bias=True,
              headline_metric="mae", headline_label="MAE (years)",
              figure_metrics=("mae", "r2", "pearson_r"),
              metrics_text=f"{_REGRESSION_METRICS_TEXT} of the uncorrected predicted age",
              figure_caption="Predicted against true age, out of fold (first repeat), with the "
                             "identity line."),
)}

#: Anatomical descriptor of the released AnatCL weights.
DESCRIPTORS = ("global", "local")
#: OpenBHB fold of the released AnatCL weights.
FOLDS = (0, 1, 2, 3, 4)
#: Arithmetic of inference: fp32 matches the official package; bf16 is faster only on
#: hardware with fast bf16 units.
PRECISIONS = ("fp32", "bf16")
#: What the command line accepts: the precisions, plus ``auto`` (the fastest mode that
#: keeps its accuracy contract on the machine it runs on).
PRECISION_CHOICES = ("auto", *PRECISIONS)
#: What a probe predicts: a class, a number, or age with the brain-age bias correction.
TASKS = tuple(PROBE_TASKS)
#: Tasks of fine-tuning (the network's own head; no brain-age correction).
FINETUNE_TASKS = ("classification", "regression")
#: What a probe is trained on.
FEATURE_KINDS = ("embeddings", "regional", "both")
#: ``task="auto"``: brain_age for an ``age`` column, regression for numbers, else
#: classification.
AUTO_TASK = "auto"
#: The tasks ``auto`` picks by the target's name (lower case), whatever its values.
AUTO_TASK_BY_TARGET = {"age": "brain_age"}
#: Penalty grids of the linear probes as ``numpy.logspace(start, stop, num)`` arguments
#: (powers of ten): the classifier's inverse penalty C and the ridge penalty alpha.
C_GRID = (-4, 2, 7)
ALPHA_GRID = (-2, 5, 15)
#: Folds of the inner cross-validation that picks a classifier's penalty (and, with
#: groups, any probe's).
INNER_CV = 5


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``; else raise a one-line ``AnatCLError``.

    >>> check_choice("features", "pixels", FEATURE_KINDS)
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.AnatCLError: features='pixels': choose one of embeddings, regional, both
    """
    if value not in choices:
        from anatcl_nipype.errors import AnatCLError

        raise AnatCLError(f"{name}={value!r}: choose one of {', '.join(map(str, choices))}")
    return value
