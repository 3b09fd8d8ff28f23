"""Applying a saved probe: what its card says, checks against it, the prediction table.

The card (see :mod:`~anatcl_nipype.prediction.persistence`) records the target, the task,
the feature columns and the encoder weights; a user applying the probe repeats none of
them, and any option they do give must agree.

>>> card = {"target": "age", "task": "brain_age",
...         "feature_source": {"columns": ["emb_000"], "weights": None}}
>>> card_feature_kind(card)
'embeddings'
>>> check_card_agrees(card, "model.skops", target="diagnosis")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
anatcl_nipype.errors.PredictionError: model.skops was fitted for target 'age', not 'diagnosis';
pass --target age (or leave it out)
"""

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.feature_source import feature_kind


def card_feature_kind(card):
    """``embeddings``, ``regional`` or ``both``: the card's ``features``, else from its columns."""
    return card.get("features") or feature_kind(card["feature_source"]["columns"])


def card_weights(card):
    """The encoder weights the probe's features were made with (None for regional only)."""
    return card.get("feature_source", {}).get("weights")


def check_card_agrees(card, model, target=None, features=None, task=None):
    """Raise a one-line :class:`PredictionError` when ``target``/``features``/``task``
    (None: not given) disagree with what the probe in ``model`` was fitted on."""
    if target is not None and target != card["target"]:
        raise PredictionError(f"{model} was fitted for target {card['target']!r}, not "
                              f"{target!r}; pass --target {card['target']} (or leave it out)")
    if task is not None and task != card["task"]:
        raise PredictionError(f"{model} is a {card['task']} probe, not {task}; pass --task "
                              f"{card['task']} (or leave it out)")
    kind = card_feature_kind(card)
    if features is not None and features != kind:
        raise PredictionError(f"{model} was fitted on {kind} features, not {features}; pass "
                              f"--features {kind} (or leave it out)")


def prediction_table(model, card, features, true=None, sites=None, covariates=None):
    """The predictions of ``model`` on ``features`` (columns in the card's order).

    ``true`` (a Series by participant, or None) adds the known target and, for brain age,
    the bias-corrected age and its gap. Columns: ``participant_id``, [``true``],
    ``predicted``, [``probability_<class>``...], [``predicted_corrected``, ``brain_age_gap``].
    A harmonised probe (its card has ``harmonization``) needs each participant's site
    (``sites``) and its card's covariates (``covariates``, a dict of columns); a site it
    was not fitted on is refused unless it was fitted with ``unseen_sites="estimate"``.
    """
    import pandas as pd

    X = features[card["feature_source"]["columns"]]
    if card.get("harmonization"):
        from anatcl_nipype.prediction.harmonization import harmonization_frame

        if sites is None:
            raise PredictionError(f"{card.get('model_file', 'the probe')} was fitted with "
                                  "ComBat site harmonisation: give each participant's site "
                                  f"(participants.tsv column "
                                  f"{card['harmonization']['site_column']!r})")
        X = harmonization_frame(X, sites, covariates or None)
    table = pd.DataFrame({"participant_id": list(features.index)})
    if true is not None:
        table["true"] = true.to_numpy()
    table["predicted"] = model.predict(X)
    task = PROBE_TASKS[card["task"]]
    if task.categorical:
        probabilities = model.predict_proba(X)
        for column, name in enumerate(model.classes_):
            table[f"probability_{name}"] = probabilities[:, column]
    if task.corrects_age_bias and true is not None:
        # a harmonised brain-age model is a Pipeline: its last step corrects
        corrector = model[-1] if hasattr(model, "steps") else model
        table["predicted_corrected"] = corrector.correct(table["predicted"], table["true"])
        table["brain_age_gap"] = table["predicted_corrected"] - table["true"]
    return table
