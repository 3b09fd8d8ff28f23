"""The vocabularies every layer shares: weights, precisions, tasks, feature kinds.

One place for the names a user can choose, so that the command line, the interfaces'
traits, the workflows and the science agree. Imports nothing (safe for the command line
to read before any heavy import).

>>> DESCRIPTORS, FOLDS, TASKS
(('global', 'local'), (0, 1, 2, 3, 4), ('classification', 'regression', 'brain_age'))
>>> check_choice("task", "brain_age", TASKS)
'brain_age'
"""

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
TASKS = ("classification", "regression", "brain_age")
#: Tasks of fine-tuning (the network's own head; no brain-age correction).
FINETUNE_TASKS = ("classification", "regression")
#: What a probe is trained on.
FEATURE_KINDS = ("embeddings", "regional", "both")
#: ``task="auto"``: brain_age for an ``age`` column, regression for numbers, else
#: classification.
AUTO_TASK = "auto"
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
