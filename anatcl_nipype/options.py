"""The vocabularies every layer shares: weights, precisions, tasks, feature kinds.

One place for the names a user can choose, so that the command line, the interfaces'
traits, the workflows and the science agree; for what differs between probe tasks
(:data:`PROBE_TASKS`); and for how maps are encoded (:class:`EncoderOptions`). Imports
only the standard library's ``dataclasses`` (safe for the command line to read before any
heavy import).

>>> DESCRIPTORS, FOLDS, TASKS
(('global', 'local'), (0, 1, 2, 3, 4), ('classification', 'regression', 'brain_age'))
>>> check_choice("task", "brain_age", TASKS)
'brain_age'
>>> PROBE_TASKS["brain_age"].headline_metric, PROBE_TASKS["classification"].categorical
('mae', True)
"""

from dataclasses import asdict, dataclass, fields, replace

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


@dataclass(frozen=True)
class EncoderOptions:
    """How maps are encoded: which weights, in what arithmetic, on which device.

    Built once (by the command line from its flags, or in Python) and passed whole: through
    the workflow factories into every encoding node (:meth:`node_inputs`, the traits of
    ``interfaces.encoder.EncoderOptionsInputSpec``) and from a node's inputs to the encoder.
    An option is a field here, its trait there and what the encoder does with it; the
    workflows in between pass the object on without naming its fields.

    ``weights``: a checkpoint (else the released weights of ``descriptor``/``fold``);
    ``folds``: a fold ensemble of released weights (each map read once, encoded by each);
    ``force_precision``: run an explicit bf16 even where it is slow; ``use_gpu``: CUDA, or
    the CPU with a warning; ``use_head``: the 128-d projection; ``resample``: maps on another
    MNI grid resampled onto CAT12's instead of refused.

    >>> options = EncoderOptions(descriptor="local", folds=[0, 3])
    >>> options.node_inputs()["folds"], options.first_fold
    ([0, 3], 0)
    >>> with_options(options, precision="bf16").precision
    'bf16'
    >>> EncoderOptions(fold=7)
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.AnatCLError: fold=7: choose one of 0, 1, 2, 3, 4
    """

    weights: str | None = None
    descriptor: str = "global"
    fold: int = 0
    folds: tuple | None = None
    precision: str = "fp32"
    force_precision: bool = False
    device: str = "auto"
    use_gpu: bool = False
    use_head: bool = False
    resample: bool = False

    def __post_init__(self):
        check_choice("descriptor", self.descriptor, DESCRIPTORS)
        check_choice("precision", self.precision, PRECISION_CHOICES)
        for fold in (self.fold, *(self.folds or ())):
            check_choice("fold", fold, FOLDS)
        if self.weights is not None:  # frozen: set through object's own __setattr__
            object.__setattr__(self, "weights", str(self.weights))
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(self.folds))

    @property
    def first_fold(self):
        """The fold of a workflow's ``embedding``: the ensemble's first, else ``fold``."""
        return self.folds[0] if self.folds else self.fold

    def node_inputs(self):
        """The options as inputs of an encoding interface (no ``weights`` when None)."""
        inputs = asdict(self)
        inputs["folds"] = list(self.folds) if self.folds else None
        if self.weights is None:
            del inputs["weights"]
        return inputs


#: The names of :class:`EncoderOptions`' fields.
ENCODER_FIELDS = tuple(field.name for field in fields(EncoderOptions))


def with_options(encoder=None, **changes):
    """``encoder`` (:class:`EncoderOptions`; None: the defaults) with ``changes``: how the
    workflow factories take options whole, one by one as keywords, or both. An unknown
    name raises ``TypeError``, as a misspelt keyword argument does."""
    return replace(encoder or EncoderOptions(), **changes)
