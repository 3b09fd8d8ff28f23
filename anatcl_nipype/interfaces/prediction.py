"""Nipype interfaces for downstream prediction: group tables, probe fitting, probe use.

Thin adapters over :mod:`anatcl_nipype.prediction`: they check inputs, call the
prediction layer and write tables, models and JSON sidecars. scikit-learn is imported
only when a node runs. The rules of which features are comparable (encoder weights named
in the tables' JSON sidecars, the embeddings' recipe) live in
:mod:`anatcl_nipype.prediction.feature_source`; applying a probe in
:mod:`anatcl_nipype.prediction.applying`.

>>> FitProbe(task="brain_age", target="age").inputs.cv
5
"""

from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

import anatcl_nipype
from anatcl_nipype.bids import bids_label, participant_id_from_path, scan_id, session_id_from_path
from anatcl_nipype.errors import PredictionError
from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.options import AUTO_TASK, PROBE_TASKS, TASKS
from anatcl_nipype.prediction.feature_source import (
    common_recipe,
    feature_source,
    read_features,
    read_sidecar,
    sidecar_paths,
)


def _given(value):
    return list(value) if isdefined(value) else None


# --------------------------------------------------------------------------- JoinEmbeddings


class JoinEmbeddingsInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="per-subject embeddings (.npy; AnatCLEncode's out_file), "
                                     "or one group table (.tsv), passed through as it is")
    in_jsons = InputMultiObject(File(exists=True),
                                desc="their JSON sidecars (AnatCLEncode's out_json), in the "
                                     "same order; default: <name>.json beside each <name>.npy. "
                                     "Connect them in workflows: Nipype removes outputs that "
                                     "no node uses")
    participant_ids = traits.List(traits.Str(),
                                  desc="one id per embedding; default: sub-<label> (with "
                                       "_ses-<label> for sessions) from the sidecar's input "
                                       "path, else from the file name")


class JoinEmbeddingsOutputSpec(TraitedSpec):
    out_tsv = File(exists=True, desc="participant_id, emb_000..emb_511, one row per subject")
    out_json = File(exists=True, desc="sidecar: weights identity, precision, inputs")
    participant_ids = traits.List(traits.Str(), desc="ids in table order")


class JoinEmbeddings(SimpleInterface):
    """Gather per-subject AnatCL embeddings into one group table.

    The node a ``JoinNode`` (or a node after a ``MapNode``) uses after per-subject
    :class:`~anatcl_nipype.interfaces.encoder.AnatCLEncode` nodes. Reads each
    embedding and its sidecar; refuses embeddings computed with different weights,
    precision or output (head or backbone). Writes ``embeddings.tsv`` (rows in input
    order) and ``embeddings.json``.

    >>> from nipype import JoinNode
    >>> join = JoinNode(JoinEmbeddings(), joinsource="subjects",
    ...                 joinfield=["in_files", "in_jsons"], name="join_embeddings")
    >>> join.joinfield
    ['in_files', 'in_jsons']
    """

    input_spec = JoinEmbeddingsInputSpec
    output_spec = JoinEmbeddingsOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.encoder.embedding_files import write_embeddings_tsv
        from anatcl_nipype.outputs import GROUP_FILES

        in_files = [Path(path) for path in self.inputs.in_files]
        if len(in_files) == 1 and in_files[0].suffix == ".tsv":
            return self._pass_table(in_files[0], runtime)
        sidecars = [read_sidecar(path) for path in self._sidecar_paths(in_files)]
        recipe = common_recipe(in_files, sidecars)
        ids = self._participant_ids(in_files, sidecars)
        vectors = _load_vectors(in_files)
        prefix = "proj" if "projection" in str(recipe.get("output", "")) else "emb"
        folder = Path(runtime.cwd)
        out_tsv = write_embeddings_tsv(folder / GROUP_FILES["embeddings"], ids, vectors, prefix)
        sidecar = {**recipe, "software": sidecars[0].get("software"),
                   "inputs": {pid: sidecar.get("input") for pid, sidecar in zip(ids, sidecars)}}
        self._results.update(out_tsv=str(out_tsv), participant_ids=ids, out_json=str(
            write_json_atomic(folder / GROUP_FILES["embeddings_json"], sidecar)))
        return runtime

    def _pass_table(self, table, runtime):
        """One group table given (e.g. AnatCLEncodeBatch's): it is the result, as it is."""
        from anatcl_nipype.encoder.embedding_files import read_embeddings_tsv

        sidecar = (Path(self.inputs.in_jsons[0]) if isdefined(self.inputs.in_jsons)
                   else table.with_suffix(".json"))
        if not sidecar.is_file():
            raise PredictionError(f"{table}: no sidecar {sidecar.name} beside it, so the "
                                  "weights that made it are unknown; pass in_jsons")
        ids, _ = read_embeddings_tsv(table)
        self._results.update(out_tsv=str(table), out_json=str(sidecar), participant_ids=ids)
        return runtime

    def _sidecar_paths(self, in_files):
        if isdefined(self.inputs.in_jsons):
            if len(self.inputs.in_jsons) != len(in_files):
                raise PredictionError(f"{len(self.inputs.in_jsons)} sidecars for "
                                      f"{len(in_files)} embeddings: give one each, in order")
            return list(self.inputs.in_jsons)
        for path in in_files:
            if not path.with_suffix(".json").is_file():
                raise PredictionError(f"{path}: no sidecar {path.with_suffix('.json').name} "
                                      "beside it, so the weights that made it are unknown; "
                                      "pass in_jsons or encode with AnatCLEncode, which "
                                      "writes both")
        return [path.with_suffix(".json") for path in in_files]

    def _participant_ids(self, in_files, sidecars):
        if isdefined(self.inputs.participant_ids):
            ids = list(self.inputs.participant_ids)
        else:
            ids = [_scan_id_of((sidecar.get("input") or {}).get("path", path))
                   for path, sidecar in zip(in_files, sidecars)]
        if len(ids) != len(in_files):
            raise PredictionError(f"{len(ids)} participant_ids for {len(in_files)} "
                                  "embeddings: give one each")
        repeated = sorted({pid for pid in ids if ids.count(pid) > 1})
        if repeated:
            raise PredictionError(f"several embeddings belong to {', '.join(repeated)}; pass "
                                  "participant_ids (e.g. sub-01_ses-1) to tell them apart")
        return ids


def _scan_id_of(path):
    """``sub-01`` or, for a session's map, ``sub-01_ses-2``: one row per scan."""
    return scan_id(participant_id_from_path(path), session_id_from_path(path))


def _load_vectors(in_files):
    vectors = [np.load(path) for path in in_files]
    shapes = {vector.shape for vector in vectors}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise PredictionError(f"embeddings of shapes {sorted(shapes)}: each file must hold "
                              "one 1-D vector, all of the same length")
    return np.stack(vectors)


# --------------------------------------------------------------------------- FitProbe

FEATURES_JSON_DESC = ("JSON sidecars naming the encoder weights of the embedding tables "
                      "(out_json of AnatCLEncodeBatch or JoinEmbeddings); default: <name>.json "
                      "beside each feature table. Connect them in workflows: Nipype removes "
                      "outputs that no node uses")


class FitProbeInputSpec(BaseInterfaceInputSpec):
    features = InputMultiObject(File(exists=True), mandatory=True,
                                desc="feature TSVs (embeddings and/or regional measures), "
                                     "joined on participant_id")
    features_json = InputMultiObject(File(exists=True), desc=FEATURES_JSON_DESC)
    participants_tsv = File(exists=True, mandatory=True, desc="BIDS participants.tsv")
    target = traits.Str(mandatory=True, desc="participants.tsv column to predict")
    task = traits.Enum(*TASKS, AUTO_TASK, mandatory=True,
                       desc="classification, regression or brain_age; auto: brain_age for an "
                            "'age' column, regression for numbers, else classification")
    cv = traits.Range(low=2, value=5, usedefault=True, desc="cross-validation folds")
    n_repeats = traits.Range(low=1, value=1, usedefault=True, desc="repeats of the K-fold CV")
    group_column = traits.Str(desc="participants.tsv column of groups (e.g. site): "
                                   "GroupKFold keeps each group in one fold")
    seed = traits.Int(0, usedefault=True, desc="seed of the fold shuffles and inner CV")
    n_permutations = traits.Range(low=0, value=0, usedefault=True,
                                  desc="label permutations for a p-value (0: no test)")
    harmonize = traits.Enum("none", "combat", usedefault=True,
                            desc="combat: ComBat (neuroCombat) site harmonisation fitted "
                                 "inside each training fold and saved with the probe")
    site_column = traits.Str("site", usedefault=True,
                             desc="participants.tsv column giving each participant's site")
    covariate_columns = traits.List(traits.Str(), value=[], usedefault=True,
                                    desc="participants.tsv columns whose effects ComBat "
                                         "protects (e.g. age, sex); never the target")
    unseen_sites = traits.Enum("refuse", "estimate", usedefault=True,
                               desc="a test participant from a site absent from training: "
                                    "refused, or its offsets estimated from its own rows "
                                    "(needed when folds are grouped by site)")
    bias_cv = traits.Either(None, traits.Range(low=2), default=5, usedefault=True,
                            desc="brain age: folds of the cross-validation, within each "
                                 "training set, whose predictions the age-bias line is fitted "
                                 "on (at most one per group); None: in-sample predictions, "
                                 "for cohorts too small to split")


class FitProbeOutputSpec(TraitedSpec):
    model = File(exists=True, desc="fitted probe (.skops), trained on all labelled subjects")
    model_card = File(exists=True, desc="JSON card: task, target, classes, feature source, "
                                        "n_train, CV metrics, versions")
    metrics_tsv = File(exists=True, desc="metrics per fold, then mean and sd")
    predictions_tsv = File(exists=True, desc="out-of-fold predictions")
    figures = OutputMultiObject(File(exists=True), desc="CV figure as SVG and PNG")
    out_json = File(exists=True, desc="summary: dropped subjects, metrics, permutation p")


class FitProbe(SimpleInterface):
    """Cross-validate a linear probe on feature tables, then fit it on every subject.

    Wraps :func:`~anatcl_nipype.prediction.study.fit_probe_study` (cross-validation,
    optional permutation test, the final probe saved with its card). Subjects without the
    target (``n/a``), or missing from a feature table, are left out and listed in
    ``out_json``. Outputs
    are named after the target: ``<target>_probe.skops``/``.json``,
    ``<target>_metrics.tsv``, ``<target>_predictions.tsv``, ``<target>_cv.svg``/``.png``
    and ``<target>_summary.json``.

    >>> fit = FitProbe(task="classification", target="diagnosis", group_column="site")
    >>> fit.inputs.group_column, fit.inputs.n_permutations
    ('site', 0)
    """

    input_spec = FitProbeInputSpec
    output_spec = FitProbeOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.prediction.study import fit_probe_study

        inputs = self.inputs
        self._results.update(fit_probe_study(
            [str(path) for path in inputs.features], inputs.participants_tsv, inputs.target,
            inputs.task, Path(runtime.cwd) / bids_label(inputs.target),
            features_json=_given(inputs.features_json), cv=inputs.cv,
            n_repeats=inputs.n_repeats, seed=inputs.seed, n_permutations=inputs.n_permutations,
            group_column=inputs.group_column if isdefined(inputs.group_column) else None,
            harmonize=None if inputs.harmonize == "none" else inputs.harmonize,
            site_column=inputs.site_column, covariate_columns=list(inputs.covariate_columns),
            unseen_sites=inputs.unseen_sites, bias_cv=inputs.bias_cv))
        return runtime


# --------------------------------------------------------------------------- ApplyProbe


class ApplyProbeInputSpec(BaseInterfaceInputSpec):
    model = File(exists=True, mandatory=True,
                 desc="probe saved by FitProbe (.skops, with its .json card beside it)")
    features = InputMultiObject(File(exists=True), mandatory=True,
                                desc="feature TSVs made the same way as the training ones")
    features_json = InputMultiObject(File(exists=True), desc=FEATURES_JSON_DESC)
    participants_tsv = File(exists=True,
                            desc="optional participants.tsv with a row per participant: "
                                 "adds the true target (n/a where unknown) and, for brain "
                                 "age, the bias-corrected age and gap")
    target = traits.Str(desc="optional: the target the probe must have been fitted for "
                             "(its card's); refused when it differs")


class ApplyProbeOutputSpec(TraitedSpec):
    predictions_tsv = File(exists=True, desc="participant_id, predicted (+ probabilities); "
                                             "in-sample for participants the probe was fitted on")
    out_json = File(exists=True, desc="sidecar: model file and sha256, its card, features, "
                                      "software")


class ApplyProbe(SimpleInterface):
    """Predict with a saved probe, after checking the features match its training.

    Wraps :func:`~anatcl_nipype.prediction.load_probe` and
    :func:`~anatcl_nipype.prediction.applying.prediction_table`: a model whose card names
    other encoder weights (descriptor, fold, sha256) or other feature columns than the
    given tables, or another ``target``, is refused. Writes
    ``<target>_applied_predictions.tsv`` and ``.json``; the sidecar says the predictions
    are not cross-validated (participants the probe was fitted on are predicted in sample).

    >>> from nipype import Node
    >>> sorted(Node(ApplyProbe(), name="apply_probe").outputs.copyable_trait_names())
    ['out_json', 'predictions_tsv']
    """

    input_spec = ApplyProbeInputSpec
    output_spec = ApplyProbeOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.prediction import load_probe, write_predictions_tsv
        from anatcl_nipype.prediction.applying import check_card_agrees, prediction_table

        feature_tables = [str(path) for path in self.inputs.features]
        features, dropped, _ = read_features(feature_tables)
        model, card = load_probe(self.inputs.model, feature_source(
            features, sidecar_paths(feature_tables, _given(self.inputs.features_json))))
        check_card_agrees(card, self.inputs.model,
                          target=self.inputs.target if isdefined(self.inputs.target) else None)
        predictions = prediction_table(model, card, features,
                                       self._true_labels(card, features.index),
                                       **self._harmonization_inputs(card, features.index))
        stem = Path(runtime.cwd) / f"{bids_label(card['target'])}_applied"
        sidecar = {"model": str(self.inputs.model), "model_sha256": card["model_sha256"],
                   "task": card["task"], "target": card["target"],
                   "validation": "none: predictions of a saved probe, not cross-validated "
                                 "(in sample for participants it was fitted on)",
                   "feature_source": {"weights": card["feature_source"]["weights"],
                                      "n_columns": len(features.columns)},
                   "feature_tables": feature_tables,
                   "dropped": [{"participant_id": pid, "reason": why} for pid, why in dropped],
                   "software": {"anatcl_nipype": anatcl_nipype.__version__,
                                "model_versions": card.get("versions")}}
        self._results.update(
            predictions_tsv=str(write_predictions_tsv(predictions, f"{stem}_predictions.tsv")),
            out_json=str(write_json_atomic(f"{stem}_predictions.json", sidecar)))
        return runtime

    def _harmonization_inputs(self, card, participant_ids):
        """A harmonised probe's ``sites`` and ``covariates`` from participants.tsv."""
        from anatcl_nipype.prediction.study import harmonization_columns

        harmonization = card.get("harmonization")
        if not harmonization:
            return {}
        if not isdefined(self.inputs.participants_tsv):
            raise PredictionError(f"{self.inputs.model} was fitted with ComBat site "
                                  "harmonisation: pass participants_tsv with the column "
                                  f"{harmonization['site_column']!r} (and "
                                  f"{', '.join(harmonization['covariates']) or 'no covariates'})")
        sites, covariates = harmonization_columns(
            self.inputs.participants_tsv, list(participant_ids), harmonization["site_column"],
            harmonization["covariates"])
        return dict(sites=sites, covariates=covariates)

    def _true_labels(self, card, participant_ids):
        """The target per participant (NaN or n/a where unknown), or None without a file."""
        import pandas as pd

        from anatcl_nipype.prediction import load_labels

        if not isdefined(self.inputs.participants_tsv):
            return None
        labels = load_labels(self.inputs.participants_tsv, card["target"], participant_ids,
                             card["task"])
        return pd.Series(labels.labels, index=labels.participant_ids).reindex(participant_ids)


# --------------------------------------------------------------------------- CombineFoldProbes


class CombineFoldProbesInputSpec(BaseInterfaceInputSpec):
    predictions_tsv = InputMultiObject(File(exists=True), mandatory=True,
                                       desc="each encoder fold's out-of-fold predictions "
                                            "(FitProbe's predictions_tsv), same CV splits")
    model_card = InputMultiObject(File(exists=True), mandatory=True,
                                  desc="each encoder fold's probe card, same order")
    fold_labels = traits.List(mandatory=True, desc="the encoder fold of each, same order")


class CombineFoldProbesOutputSpec(TraitedSpec):
    predictions_tsv = File(exists=True, desc="ensemble out-of-fold predictions (mean of folds)")
    metrics_tsv = File(exists=True, desc="ensemble metrics per CV fold, then mean and sd")
    folds_tsv = File(exists=True, desc="each encoder fold's CV mean, then mean and sd")
    out_json = File(exists=True, desc="summary: folds, each fold's and the ensemble's metrics")


class CombineFoldProbes(SimpleInterface):
    """Combine the probes of a fold ensemble (one per AnatCL encoder fold).

    Wraps :mod:`anatcl_nipype.prediction.ensemble`: the ensemble prediction is the mean of
    the per-fold probes' out-of-fold predictions (class probabilities for
    classification), scored per CV fold; each encoder fold's CV metrics are listed with
    their mean and sd. Refuses probes cross-validated with different splits.

    >>> CombineFoldProbes(fold_labels=[0, 1]).inputs.fold_labels
    [0, 1]
    """

    input_spec = CombineFoldProbesInputSpec
    output_spec = CombineFoldProbesOutputSpec

    def _run_interface(self, runtime):
        import json

        from anatcl_nipype.prediction.ensemble import (
            across_folds,
            ensemble_metrics,
            ensemble_predictions,
        )
        from anatcl_nipype.prediction.tables import (
            write_metrics_tsv,
            write_predictions_tsv,
            write_tsv,
        )
        from anatcl_nipype.prediction.validation import CrossValidationResult

        cards = [json.loads(Path(path).read_text()) for path in self.inputs.model_card]
        task = cards[0]["task"]
        tables = [_read_predictions(path, task) for path in self.inputs.predictions_tsv]
        predictions = ensemble_predictions(tables, task)
        fold_metrics, summary = ensemble_metrics(predictions, task)
        per_fold = across_folds([card["cv_metrics"] for card in cards],
                                list(self.inputs.fold_labels))
        stem = Path(runtime.cwd) / bids_label(cards[0]["target"])
        folds_tsv = str(write_tsv(per_fold, f"{stem}_folds.tsv"))
        result = CrossValidationResult(task, fold_metrics, summary, predictions)
        sidecar = {"target": cards[0]["target"], "task": task,
                   "encoder_folds": list(self.inputs.fold_labels),
                   "ensemble": "mean of the per-fold probes' out-of-fold "
                               + ("class probabilities" if PROBE_TASKS[task].categorical
                                  else "predictions") + ", same CV splits for every fold",
                   "ensemble_metrics": summary,
                   "fold_metrics": per_fold.to_dict(orient="records")}
        self._results.update(
            predictions_tsv=str(write_predictions_tsv(predictions,
                                                      f"{stem}_ensemble_predictions.tsv")),
            metrics_tsv=str(write_metrics_tsv(result, f"{stem}_ensemble_metrics.tsv")),
            folds_tsv=folds_tsv,
            out_json=str(write_json_atomic(f"{stem}_ensemble.json", sidecar)))
        return runtime


def _read_predictions(path, task):
    import pandas as pd

    table = pd.read_csv(path, sep="\t", na_values="n/a", dtype={"participant_id": str})
    if PROBE_TASKS[task].categorical:
        table["true"] = table["true"].astype(str)
    return table
