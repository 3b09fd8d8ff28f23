"""Save and load fitted probes safely: a skops file plus a JSON card beside it.

``save_probe(model, "probe.skops", card)`` writes the model with :func:`skops.io.dump`
and the card as ``probe.json`` (the model path with its suffix replaced by ``.json``).
The card holds what a reader needs to trust and use the model:

``task``, ``target``            the task and the participants.tsv column predicted
``feature_source``              a dict saying where the features came from, e.g.
                                ``{"weights": {"descriptor": "global", "fold": 0,
                                "sha256": ...}, "columns": [...]}`` and/or regional
                                measure names; ``columns`` (the feature names, in
                                order) is required
``n_train``                     number of training subjects
``cv_metrics``                  cross-validated metrics (optional), e.g. ``result.summary``
``classes``                     added from the model (classification)
``versions``                    anatcl_nipype, scikit-learn, skops and numpy versions
``model_file``, ``model_sha256``  the model file and its SHA-256

``load_probe`` refuses a model whose SHA-256 differs from the card's, one whose
features do not match ``expected_feature_source``, and one holding any type outside
:data:`ALLOWED_TYPES` (beyond what skops trusts by default: scikit-learn estimators,
numpy arrays and ufuncs), so loading never runs code from an unknown source.

Limits: a card of at most :data:`MAX_CARD_BYTES` nested at most :data:`MAX_JSON_DEPTH`
deep; a model file whose members inflate to at most :data:`MAX_PROBE_BYTES` and whose
``schema.json`` nests at most :data:`MAX_SCHEMA_DEPTH` deep (the probes this package
saves nest about 15). Beyond them, and for any damaged file, :class:`PredictionError`
names the file.

>>> import tempfile, pathlib, numpy as np
>>> from anatcl_nipype.prediction.probes import make_probe
>>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
>>> model = make_probe("regression", alphas=[1.0]).fit(X, y)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "age.skops"
>>> card = {"task": "regression", "target": "age", "n_train": 10,
...         "feature_source": {"columns": ["emb_000", "emb_001"]}}
>>> _ = save_probe(model, path, card)
>>> loaded, card = load_probe(path, expected_feature_source={"columns": ["emb_000", "emb_001"]})
>>> bool(np.array_equal(loaded.predict(X), model.predict(X))), card["model_file"]
(True, 'age.skops')
"""

import contextlib
import warnings
import zipfile
from pathlib import Path

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.files import (
    JSONFileError,
    atomic_write,
    parse_json_bounded,
    read_json_bounded,
    sha256_file,
    write_json_atomic,
)

#: Types a probe file may hold beyond those skops trusts by default.
ALLOWED_TYPES = frozenset({
    "numpy.dtype",
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "anatcl_nipype.prediction.brain_age.BrainAgeRegressor",
    "anatcl_nipype.prediction.harmonization.ComBatHarmonizer",
})
REQUIRED_CARD_KEYS = ("task", "target", "feature_source", "n_train")
#: Largest card read (a card lists feature columns: kilobytes).
MAX_CARD_BYTES = 16 * 1024 ** 2
#: Deepest nesting of dicts/lists in a card.
MAX_JSON_DEPTH = 32
#: Most bytes the members of a model file may inflate to (linear probes take kilobytes).
MAX_PROBE_BYTES = 512 * 1024 ** 2
#: Deepest nesting of a model file's ``schema.json``.
MAX_SCHEMA_DEPTH = 64


def card_path(model_path):
    """The JSON card that goes with ``model_path``: same name, suffix ``.json``.

    >>> card_path("out/dx_probe.skops").as_posix()
    'out/dx_probe.json'
    """
    return Path(model_path).with_suffix(".json")


def save_probe(model, path, card):
    """Write the fitted ``model`` to ``path`` (skops) and its card; return both paths.

    See the module docstring for an example.
    """
    import skops.io

    path = Path(path)
    card = _complete_card(model, path, card)
    with atomic_write(path) as tmp:
        skops.io.dump(model, tmp)
    card["model_file"] = path.name
    card["model_sha256"] = sha256_file(path)
    return path, write_json_atomic(card_path(path), card)


def load_probe(path, expected_feature_source=None):
    """Load a probe saved by :func:`save_probe`; return ``(model, card)``.

    ``expected_feature_source`` is compared key by key (nested dicts included) with
    the card's: only the keys it names are checked, each must match. See the module
    docstring for an example.
    """
    import skops.io

    path = Path(path)
    card = _read_card(path)
    if sha256_file(path) != card.get("model_sha256"):
        raise PredictionError(f"{path}: SHA-256 does not match {card_path(path).name}; the "
                              "model file was changed or replaced. Use the file saved with "
                              "this card, or retrain")
    if expected_feature_source is not None:
        _check_feature_source(card["feature_source"], expected_feature_source, path)
    untrusted = _untrusted_types(path)
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise PredictionError(f"{path}: holds types that are not allowed in a probe file: "
                              f"{', '.join(refused)}; refusing to load it. Retrain the probe "
                              "with anatcl_nipype")
    _warn_version_change(card, path)
    try:
        return skops.io.load(path, trusted=untrusted), card
    except Exception as error:  # skops raises many types for damaged members
        raise PredictionError(f"{path}: cannot load the model ({type(error).__name__}: "
                              f"{str(error)[:200]}); the file is damaged. Retrain the probe "
                              "or restore the file saved with its card") from None


def _complete_card(model, path, card):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from anatcl_nipype.prediction.probes import check_task  # imports scikit-learn

    missing = [key for key in REQUIRED_CARD_KEYS if key not in card]
    if missing:
        raise PredictionError(f"{path}: the card lacks {', '.join(missing)}; give every "
                              f"one of {', '.join(REQUIRED_CARD_KEYS)}")
    check_task(card["task"])
    if not isinstance(card["feature_source"], dict) or "columns" not in card["feature_source"]:
        raise PredictionError(f"{path}: card['feature_source'] must be a dict with the "
                              "feature 'columns' (and where they came from)")
    if path.suffix == ".json":
        raise PredictionError(f"{path}: the model file cannot end in .json (the card's "
                              "name); use .skops")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise PredictionError(f"{path}: the model is not fitted; fit it before saving") from None
    classes = getattr(model, "classes_", None)
    return {"cv_metrics": None, **card, "versions": _versions(),
            "classes": None if classes is None else [_plain(c) for c in classes]}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _versions():
    import numpy
    import sklearn
    import skops

    import anatcl_nipype

    return {"anatcl_nipype": anatcl_nipype.__version__, "scikit-learn": sklearn.__version__,
            "skops": skops.__version__, "numpy": numpy.__version__}


def _read_card(path):
    if not path.is_file():
        raise PredictionError(f"{path}: no such model file")
    card_file = card_path(path)
    if not card_file.is_file():
        raise PredictionError(f"{path}: no card {card_file.name} beside it; a probe must be "
                              "saved with save_probe, which writes both")
    with _refused_as_prediction_error():
        card = read_json_bounded(card_file, max_bytes=MAX_CARD_BYTES, max_depth=MAX_JSON_DEPTH,
                                 what="card")
    if not isinstance(card, dict) or not isinstance(card.get("feature_source"), dict):
        raise PredictionError(f"{card_file}: not a probe card (no feature_source dict)")
    if not isinstance(card.get("versions") or {}, dict):
        raise PredictionError(f"{card_file}: 'versions' is not a dict; restore the card "
                              "written with the model")
    return card


@contextlib.contextmanager
def _refused_as_prediction_error():
    """A JSON file refused by the bounded reader, re-raised as a :class:`PredictionError`."""
    try:
        yield
    except JSONFileError as error:
        raise PredictionError(f"{error}; restore the probe's files as save_probe wrote them, "
                              "or retrain") from None


def _untrusted_types(path):
    import skops.io

    _check_model_archive(path)
    try:
        return skops.io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, RecursionError) as error:
        raise PredictionError(f"{path}: not a skops model file ({type(error).__name__}: "
                              f"{str(error)[:200]})") from None


def _check_model_archive(path):
    """Refuse a model file that inflates too much or whose schema nests too deep, unread."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(member.file_size for member in archive.infolist())
            if inflated > MAX_PROBE_BYTES:
                raise PredictionError(f"{path}: its members inflate to {inflated} bytes (at "
                                      f"most {MAX_PROBE_BYTES} are read); not a probe file")
            with archive.open("schema.json") as stream:
                schema = stream.read(MAX_PROBE_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise PredictionError(f"{path}: not a skops model file ({type(error).__name__}: "
                              f"{str(error)[:200]})") from None
    with _refused_as_prediction_error():
        parse_json_bounded(schema, source=path, max_depth=MAX_SCHEMA_DEPTH, what="model schema")


def _check_feature_source(card_source, expected, path):
    differences = _differences(card_source, expected, prefix="")
    if differences:
        raise PredictionError(f"{path}: the probe was trained on other features than "
                              f"expected: {'; '.join(differences)}. Use features made the "
                              "same way (same encoder weights and fold, same columns) or "
                              "retrain the probe")


def _differences(card, expected, prefix):
    found = []
    for key, wanted in expected.items():
        name = f"{prefix}{key}"
        if key not in card:
            found.append(f"{name}: not in the card (expected {wanted!r})")
        elif isinstance(wanted, dict) and isinstance(card[key], dict):
            found.extend(_differences(card[key], wanted, prefix=f"{name}."))
        elif isinstance(wanted, (list, tuple)) and isinstance(card[key], list):
            found.extend(_list_differences(name, card[key], list(wanted)))
        elif card[key] != wanted:
            found.append(f"{name}: card has {card[key]!r}, expected {wanted!r}")
    return found


def _list_differences(name, card, expected):
    if card == expected:
        return []
    missing = [item for item in expected if item not in card]
    extra = [item for item in card if item not in expected]
    if not missing and not extra:
        return [f"{name}: same {len(card)} entries in a different order"]
    parts = []
    if missing:
        parts.append(f"{len(missing)} expected but not in the card ({_shorten(missing)})")
    if extra:
        parts.append(f"{len(extra)} in the card but not expected ({_shorten(extra)})")
    return [f"{name}: {', '.join(parts)}"]


def _shorten(items, limit=5):
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def _warn_version_change(card, path):
    import sklearn

    saved = (card.get("versions") or {}).get("scikit-learn")
    if saved and saved != sklearn.__version__:
        warnings.warn(f"{path}: saved with scikit-learn {saved}, loading with "
                      f"{sklearn.__version__}; check its predictions", stacklevel=3)
