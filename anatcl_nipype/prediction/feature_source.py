"""Where a probe's features come from, and whether two sets of features are comparable.

Every feature table may have a JSON sidecar beside it (``embeddings.tsv`` ->
``embeddings.json``); when it names the encoder weights (``{"weights": {"descriptor",
"fold", "sha256"}}``, as the encoding interfaces write) that identity becomes part of the
probe's feature source, and a probe refuses features made with other weights. Embeddings
share a table only when their recipe (weights, precision, output, preprocessing) agrees.

>>> weights_identity({"weights": {"descriptor": "global", "fold": 0, "sha256": "ab"}})
{'descriptor': 'global', 'fold': 0, 'sha256': 'ab'}
>>> feature_kind(["emb_000", "emb_001", "lh_thickness"])
'both'
"""

import json
from pathlib import Path

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.files import (
    MAX_SIDECAR_BYTES,
    MAX_SIDECAR_DEPTH,
    JSONFileError,
    read_json_bounded,
)

#: What makes two embeddings comparable, from the encoding sidecars.
RECIPE_KEYS = ("weights", "precision", "output", "preprocessing")
#: Column prefixes of embedding tables (backbone, projection head).
EMBEDDING_PREFIXES = ("emb_", "proj_")


def weights_identity(sidecar):
    """The encoder weights named in a sidecar: ``{descriptor, fold, sha256}`` or None.

    >>> weights_identity({"weights": {"descriptor": None, "fold": None, "path": "/w.pth",
    ...                               "sha256": "ab12"}})
    {'descriptor': None, 'fold': None, 'sha256': 'ab12'}
    >>> weights_identity({"emb_000": {"Description": "..."}}) is None
    True
    """
    weights = sidecar.get("weights")
    if not isinstance(weights, dict) or "sha256" not in weights:
        return None
    return {key: weights.get(key) for key in ("descriptor", "fold", "sha256")}


def read_sidecar(path):
    """A JSON sidecar as a dict, read within :data:`~anatcl_nipype.files.MAX_SIDECAR_BYTES`
    and :data:`~anatcl_nipype.files.MAX_SIDECAR_DEPTH`; a :class:`PredictionError` saying
    what to restore otherwise.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "embeddings.json"
    >>> _ = path.write_text('{"weights": {"sha256": "ab"}}')
    >>> read_sidecar(path)
    {'weights': {'sha256': 'ab'}}
    """
    try:
        sidecar = read_json_bounded(path, max_bytes=MAX_SIDECAR_BYTES,
                                    max_depth=MAX_SIDECAR_DEPTH, what="JSON sidecar")
    except JSONFileError as error:
        raise PredictionError(f"{error}; restore the sidecar the encoder wrote beside the "
                              "file") from None
    if not isinstance(sidecar, dict):
        raise PredictionError(f"{path}: the JSON sidecar is not an object; restore the "
                              "sidecar the encoder wrote beside the file")
    return sidecar


def sidecar_paths(feature_tables, features_json=None):
    """The sidecars given, else ``<name>.json`` beside each feature table."""
    if features_json:
        return [Path(path) for path in features_json]
    return [Path(table).with_suffix(".json") for table in feature_tables]


def tables_weights(sidecars):
    """The one weights identity named by the tables' sidecars (None when none names one)."""
    found = {}
    for path in map(Path, sidecars):
        identity = weights_identity(read_sidecar(path)) if path.is_file() else None
        if identity is not None:
            found[str(path)] = identity
    if len({json.dumps(identity, sort_keys=True) for identity in found.values()}) > 1:
        listed = "; ".join(f"{path}: {identity}" for path, identity in found.items())
        raise PredictionError(f"feature tables made with different encoder weights ({listed}); "
                              "use embeddings from one set of weights")
    return next(iter(found.values()), None)


def feature_source(features, sidecars):
    """What a probe's card records, and applying it checks: columns and encoder weights."""
    weights = tables_weights(sidecars)
    embedding_columns = [c for c in features.columns if str(c).startswith(EMBEDDING_PREFIXES)]
    if embedding_columns and weights is None:
        raise PredictionError(
            f"the features hold AnatCL embeddings ({embedding_columns[0]}, ...) but no JSON "
            "sidecar names the weights that made them; pass the embeddings table's sidecar "
            "(out_json of AnatCLEncodeBatch or JoinEmbeddings) in features_json, or keep it "
            "beside the table")
    return {"columns": [str(column) for column in features.columns], "weights": weights}


def feature_kind(columns):
    """``embeddings``, ``regional`` or ``both``: what kind of features ``columns`` are."""
    embedding = [str(c).startswith(EMBEDDING_PREFIXES) for c in columns]
    if all(embedding):
        return "embeddings"
    return "both" if any(embedding) else "regional"


def read_features(feature_tables):
    """Join the tables on participant_id; return (features, left-out participants, dropped columns).

    Columns without a single value (e.g. CAT12's medial-wall "regions", always NaN) carry
    nothing to learn from and are dropped; they are listed in the summary.
    """
    from anatcl_nipype.prediction.features import join_features, read_features_tsv

    tables = [read_features_tsv(path) for path in feature_tables]
    features = join_features(tables)
    everyone = sorted({pid for table in tables for pid in table.index})
    dropped = [(pid, "missing from at least one feature table")
               for pid in everyone if pid not in features.index]
    empty = [str(column) for column in features.columns[features.isna().all()]]
    return features.drop(columns=empty), dropped, empty


def common_recipe(in_files, sidecars):
    """How the embeddings were computed; every one must agree with the first."""
    def recipe(sidecar):
        return {key: weights_identity(sidecar) if key == "weights" else sidecar.get(key)
                for key in RECIPE_KEYS}

    first = recipe(sidecars[0])
    if first["weights"] is None:
        raise PredictionError(f"the sidecar of {in_files[0]} names no encoder weights "
                              "(weights.sha256); pass the sidecar AnatCLEncode wrote")
    for path, sidecar in zip(in_files[1:], sidecars[1:]):
        this = recipe(sidecar)
        details = "; ".join(f"{key}: {this[key]} vs {first[key]}"
                            for key in RECIPE_KEYS if this[key] != first[key])
        if details:
            raise PredictionError(
                f"{path} was computed differently from {in_files[0]} ({details}); embeddings "
                "from different weights cannot share a table: encode every subject with the "
                "same weights, fold and precision")
    return first
