"""The prediction interfaces as a Nipype user meets them: files in, tables and models out."""

import csv
import json

import numpy as np
import pytest
from nipype import JoinNode, Node, Workflow
from nipype.interfaces import utility as niu
from nipype.pipeline.engine.nodes import NodeExecutionError

from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.encoder.embedding_files import read_embeddings_tsv
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.encoder import AnatCLEncode
from anatcl_nipype.interfaces.prediction import TASKS, ApplyProbe, FitProbe, JoinEmbeddings
from anatcl_nipype.prediction import TASKS as PREDICTION_TASKS
from anatcl_nipype.prediction import default_estimator, join_features, load_labels, load_probe

N_SUBJECTS = 40
WEIGHTS = {"descriptor": "global", "fold": 0, "path": "/cache/anatcl-global-fold0.pth",
           "sha256": "a" * 64}
OTHER_WEIGHTS = {"descriptor": "global", "fold": 1, "path": "/cache/anatcl-global-fold1.pth",
                 "sha256": "b" * 64}
IDENTITY = {"descriptor": "global", "fold": 0, "sha256": "a" * 64}


def write_tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, row)) for row in [header, *rows]) + "\n")
    return path


def read_tsv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def write_embeddings_table(path, ids, matrix, weights):
    columns = [f"emb_{i:03d}" for i in range(matrix.shape[1])]
    write_tsv(path, ["participant_id", *columns],
              [[pid, *(f"{v:.9g}" for v in row)] for pid, row in zip(ids, matrix)])
    path.with_suffix(".json").write_text(json.dumps({"weights": weights, "precision": "fp32"}))
    return path


@pytest.fixture
def study(tmp_path):
    """40 subjects: AD/CN alternate, 4 sites in turn, ages 20-80.

    emb_000 is 2 sd higher in AD, emb_001 tracks age (sd 2 years), a regional volume is
    1.5 sd lower in AD. sub-39 has no diagnosis; sub-40 has no regional measures.
    """
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:02d}" for i in range(1, N_SUBJECTS + 1)]
    diagnosis = np.resize(["AD", "CN"], N_SUBJECTS)
    age = np.round(rng.uniform(20, 80, N_SUBJECTS), 1)
    sick = (diagnosis == "AD").astype(float)
    embeddings = rng.normal(size=(N_SUBJECTS, 6))
    embeddings[:, 0] += 2 * sick
    embeddings[:, 1] = age / 10 + rng.normal(0, 0.2, N_SUBJECTS)
    volume = 5 - 1.5 * 0.3 * sick + rng.normal(0, 0.3, N_SUBJECTS)
    write_embeddings_table(tmp_path / "embeddings.tsv", ids, embeddings, WEIGHTS)
    write_tsv(tmp_path / "regional.tsv", ["participant_id", "synthetic_lMedialTemporal_Vgm"],
              [[pid, v] for pid, v in zip(ids[:-1], volume)])
    write_tsv(tmp_path / "participants.tsv", ["participant_id", "diagnosis", "age", "site"],
              [[pid, "n/a" if pid == "sub-39" else dx, a, f"site{i % 4 + 1}"]
               for i, (pid, dx, a) in enumerate(zip(ids, diagnosis, age))])
    return tmp_path


def run_node(interface, base_dir, name="node"):
    return Node(interface, name=name, base_dir=str(base_dir)).run().outputs


def crash_message(run, *args, **kwargs):
    """Run a node that must crash; check the crash is a PredictionError; return its text."""
    with pytest.raises(NodeExecutionError) as error:
        run(*args, **kwargs)
    assert "anatcl_nipype.errors.PredictionError: " in str(error.value)
    return str(error.value)


def fit(study, task="classification", target="diagnosis", **options):
    interface = FitProbe(features=[str(study / "embeddings.tsv"), str(study / "regional.tsv")],
                         participants_tsv=str(study / "participants.tsv"), target=target,
                         task=task, **options)
    return run_node(interface, study / "work", name=f"fit_{task}")


def test_interface_tasks_are_the_prediction_layers():
    assert TASKS == PREDICTION_TASKS


# --------------------------------------------------------------------------- JoinEmbeddings


def write_embedding(folder, name, vector, weights=WEIGHTS, input_path=None):
    path = folder / f"{name}_anatcl.npy"
    np.save(path, np.asarray(vector, dtype=np.float32))
    content = {"weights": weights, "precision": "fp32", "output": "backbone representation",
               "preprocessing": {"crop": "centre"}, "software": {"anatcl_nipype": "x"}}
    if input_path:
        content["input"] = {"path": input_path, "sha256": "c" * 64}
    path.with_suffix(".json").write_text(json.dumps(content))
    return str(path)


def test_join_embeddings_table_ids_and_sidecar(tmp_path):
    source = "/d/sub-07/mri/mwp1sub-07_T1w.nii"
    files = [write_embedding(tmp_path, "a", [0.5, 1.5], input_path=source),
             write_embedding(tmp_path, "sub-03_T1w", [2.0, -1.0])]  # no input path: file name
    outputs = run_node(JoinEmbeddings(in_files=files), tmp_path / "work")
    assert outputs.participant_ids == ["sub-07", "sub-03"]
    assert open(outputs.out_tsv).read().splitlines() == [
        "participant_id\temb_000\temb_001", "sub-07\t0.5\t1.5", "sub-03\t2\t-1"]
    sidecar = json.loads(open(outputs.out_json).read())
    assert sidecar["weights"] == IDENTITY  # the machine-specific path is left out
    assert sidecar["precision"] == "fp32"
    assert sidecar["inputs"] == {"sub-07": {"path": source, "sha256": "c" * 64}, "sub-03": None}


def test_join_embeddings_refuses_mixed_weights_and_bare_files(tmp_path):
    files = [write_embedding(tmp_path, "sub-01", [1.0]),
             write_embedding(tmp_path, "sub-02", [2.0], weights=OTHER_WEIGHTS)]
    message = crash_message(run_node, JoinEmbeddings(in_files=files), tmp_path / "work")
    assert (f"{files[1]} was computed differently from {files[0]} (weights: "
            "{'descriptor': 'global', 'fold': 1, 'sha256': 'bbbb") in message
    assert "encode every subject with the same weights" in message
    bare = tmp_path / "sub-03_anatcl.npy"
    np.save(bare, np.ones(1, np.float32))
    message = crash_message(run_node, JoinEmbeddings(in_files=[str(bare)]), tmp_path / "work2")
    assert f"{bare}: no sidecar sub-03_anatcl.json beside it" in message


@pytest.mark.slow
def test_join_node_after_iterated_encoders(random_weights, cat12_maps, tmp_path):
    """The JoinNode pattern: per-subject AnatCLEncode nodes joined into the group table."""
    wf = Workflow(name="encode_and_join", base_dir=str(tmp_path))
    subjects = Node(niu.IdentityInterface(fields=["gm"]), name="subjects")
    subjects.iterables = ("gm", [str(m) for m in cat12_maps])
    encode = Node(AnatCLEncode(weights=str(random_weights)), name="encode")
    join = JoinNode(JoinEmbeddings(), joinsource="subjects", joinfield=["in_files", "in_jsons"],
                    name="join_embeddings")
    wf.connect([(subjects, encode, [("gm", "in_file")]),
                # Connect the sidecars: Nipype deletes outputs no node uses.
                (encode, join, [("out_file", "in_files"), ("out_json", "in_jsons")])])
    result = wf.run()
    outputs = next(n for n in result.nodes() if n.name == "join_embeddings").result.outputs
    ids, table = read_embeddings_tsv(outputs.out_tsv)
    assert ids == ["sub-01", "sub-02", "sub-03"]
    np.testing.assert_allclose(table, AnatCLEncoder(weights=random_weights).encode(cat12_maps),
                               atol=1e-6)
    sidecar = json.loads(open(outputs.out_json).read())
    assert sidecar["weights"] == {"descriptor": None, "fold": None,
                                  "sha256": sha256_file(random_weights)}


# --------------------------------------------------------------------------- FitProbe


@pytest.mark.slow
def test_fit_probe_outputs(study):
    outputs = fit(study, cv=3, n_repeats=2, n_permutations=3)
    labelled = [f"sub-{i:02d}" for i in range(1, 39)]  # sub-39: no label, sub-40: no regions

    metrics = read_tsv(outputs.metrics_tsv)
    assert list(metrics[0]) == ["repeat", "fold", "balanced_accuracy", "roc_auc",
                                "recall_AD", "recall_CN"]
    assert [(m["repeat"], m["fold"]) for m in metrics[-2:]] == [("all", "mean"), ("all", "sd")]
    folds = [float(m["balanced_accuracy"]) for m in metrics[:-2]]
    assert len(folds) == 6
    assert float(metrics[-2]["balanced_accuracy"]) == pytest.approx(np.mean(folds), rel=1e-9)

    predictions = read_tsv(outputs.predictions_tsv)
    assert list(predictions[0]) == ["participant_id", "true", "predicted", "probability_AD",
                                    "probability_CN", "fold", "repeat"]
    assert len(predictions) == 2 * len(labelled)  # out of fold: once per repeat
    assert sorted({p["participant_id"] for p in predictions}) == labelled

    card = json.loads(open(outputs.model_card).read())
    assert outputs.model.endswith("/probe.skops")
    assert card["task"] == "classification" and card["target"] == "diagnosis"
    assert card["classes"] == ["AD", "CN"] and card["n_train"] == 38
    assert card["feature_source"] == {
        "weights": IDENTITY,
        "columns": [f"emb_{i:03d}" for i in range(6)] + ["synthetic_lMedialTemporal_Vgm"]}
    assert card["cv_metrics"]["balanced_accuracy"]["mean"] == pytest.approx(np.mean(folds))
    assert card["validation"] == {"cv": 3, "n_repeats": 2, "seed": 0, "group_column": None}
    assert set(card["versions"]) == {"anatcl_nipype", "scikit-learn", "skops", "numpy"}
    assert [p.rsplit("/", 1)[1] for p in outputs.figures] == ["diagnosis_cv.svg",
                                                              "diagnosis_cv.png"]

    summary = json.loads(open(outputs.out_json).read())
    assert summary["dropped"] == [
        {"participant_id": "sub-40", "reason": "missing from at least one feature table"},
        {"participant_id": "sub-39", "reason": "diagnosis is n/a"}]
    # A 2-sd planted shift: the real score beats all 3 shuffles, so p is its floor 1/4.
    assert summary["permutation_test"]["pvalue"] == pytest.approx(1 / 4)
    assert summary["permutation_test"]["score"] > 0.8


def test_fit_probe_groups_folds_by_site(study):
    outputs = fit(study, task="brain_age", target="age", cv=4, group_column="site")
    sites = {row["participant_id"]: row["site"] for row in read_tsv(study / "participants.tsv")}
    predictions = read_tsv(outputs.predictions_tsv)
    sites_per_fold = {}
    for row in predictions:
        sites_per_fold.setdefault(row["fold"], set()).add(sites[row["participant_id"]])
    assert sorted(map(len, sites_per_fold.values())) == [1, 1, 1, 1]  # one site per test fold
    assert list(predictions[0]) == ["participant_id", "true", "predicted", "predicted_corrected",
                                    "brain_age_gap", "fold", "repeat"]
    # age = 10 * emb_001 +- 2 years: the MAE of the ridge probe stays under 3 years.
    assert json.loads(open(outputs.out_json).read())["cv_metrics"]["mae"]["mean"] < 3


def test_fit_probe_needs_the_weights_of_embeddings(study):
    moved = study / "elsewhere.json"
    (study / "embeddings.json").rename(moved)
    message = crash_message(fit, study, task="brain_age", target="age")
    assert ("the features hold AnatCL embeddings (emb_000, ...) but no JSON sidecar names the "
            "weights that made them; pass the embeddings table's sidecar") in message
    outputs = fit(study, task="brain_age", target="age", features_json=[str(moved)])
    assert json.loads(open(outputs.model_card).read())["feature_source"]["weights"] == IDENTITY


def test_fit_probe_missing_target_column(study):
    assert (f"{study / 'participants.tsv'}: no column 'mmse'; available columns: "
            "participant_id, diagnosis, age, site") in crash_message(fit, study, target="mmse")


def test_fit_probe_subjects_missing_from_participants(study):
    rows = read_tsv(study / "participants.tsv")[:-3]  # drop sub-38, sub-39, sub-40
    write_tsv(study / "participants.tsv", list(rows[0]), [list(r.values()) for r in rows])
    assert ("2 participant(s) with features have no row: sub-38, sub-39; add them to the "
            "file or drop their features") in crash_message(fit, study)


# --------------------------------------------------------------------------- ApplyProbe


def features_and_labels(study, task, target):
    features = join_features([study / "embeddings.tsv", study / "regional.tsv"])
    labels = load_labels(study / "participants.tsv", target, features.index, task)
    return features, labels


@pytest.mark.parametrize("task, target", [("classification", "diagnosis"), ("brain_age", "age")])
def test_saved_probe_predicts_like_the_fitted_one(study, task, target):
    fitted = fit(study, task=task, target=target)
    features, labels = features_and_labels(study, task, target)
    # The same default probe, fitted in memory on the same subjects: deterministic.
    model = default_estimator(task, seed=0).fit(features.loc[labels.participant_ids],
                                                labels.labels)
    loaded, _ = load_probe(fitted.model)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))

    applied = run_node(ApplyProbe(model=fitted.model,
                                  participants_tsv=str(study / "participants.tsv"),
                                  features=[str(study / "embeddings.tsv"),
                                            str(study / "regional.tsv")]),
                       study / "work", name=f"apply_{task}")
    rows = read_tsv(applied.predictions_tsv)
    # 39 rows: sub-40 has no regional measures.
    assert [row["participant_id"] for row in rows] == list(features.index)
    if task == "classification":
        assert list(rows[0]) == ["participant_id", "true", "predicted", "probability_AD",
                                 "probability_CN"]
        assert [row["predicted"] for row in rows] == model.predict(features).tolist()
        assert rows[-1]["true"] == "n/a"  # sub-39 has no diagnosis
        # The TSV keeps 10 significant digits.
        np.testing.assert_allclose([float(row["probability_AD"]) for row in rows],
                                   model.predict_proba(features)[:, 0], rtol=1e-9)
    else:
        assert list(rows[0]) == ["participant_id", "true", "predicted", "predicted_corrected",
                                 "brain_age_gap"]
        age = np.array([float(row["true"]) for row in rows])
        np.testing.assert_allclose([float(row["predicted"]) for row in rows],
                                   model.predict(features), rtol=1e-9)
        np.testing.assert_allclose([float(row["brain_age_gap"]) for row in rows],
                                   model.predict(features, age=age) - age, rtol=1e-8, atol=1e-8)
    sidecar = json.loads(open(applied.out_json).read())
    assert sidecar["model_sha256"] == sha256_file(fitted.model)
    assert sidecar["feature_source"] == {"weights": IDENTITY, "n_columns": 7}


def test_apply_refuses_features_from_other_weights_or_columns(study):
    fitted = fit(study)
    ids, matrix = read_embeddings_tsv(study / "embeddings.tsv")
    (study / "other").mkdir()
    other = write_embeddings_table(study / "other" / "embeddings.tsv", ids, matrix, OTHER_WEIGHTS)
    features = [str(other), str(study / "regional.tsv")]
    message = crash_message(run_node, ApplyProbe(model=fitted.model, features=features),
                            study / "work", name="apply_other_weights")
    assert (f"{fitted.model}: the probe was trained on other features than expected: "
            "weights.fold: card has 0, expected 1; weights.sha256: card has 'aaaa") in message
    assert "Use features made the same way (same encoder weights and fold" in message
    message = crash_message(
        run_node, ApplyProbe(model=fitted.model, features=[str(study / "embeddings.tsv")]),
        study / "work", name="apply_fewer_columns")
    assert "columns: 1 in the card but not expected (synthetic_lMedialTemporal_Vgm)" in message


@pytest.mark.parametrize("target, task", [("age", "brain_age"), ("diagnosis", "classification")])
def test_fit_probe_auto_task_follows_the_target(study, target, task):
    fitted = fit(study, task="auto", target=target)
    card = json.loads(open(fitted.model_card).read())
    assert (card["task"], card["features"]) == (task, "both")


def test_apply_probe_refuses_another_target(study):
    fitted = fit(study)
    message = crash_message(run_node, ApplyProbe(model=fitted.model, target="age", features=[
        str(study / "embeddings.tsv"), str(study / "regional.tsv")]), study / "work",
        name="apply_other_target")
    assert f"{fitted.model} was fitted for target 'diagnosis', not 'age'" in message


def test_harmonised_brain_age_probe_is_saved_and_applied_with_its_sites(study):
    fitted = fit(study, task="brain_age", target="age", cv=4, harmonize="combat")
    card = json.loads(open(fitted.model_card).read())
    assert card["harmonization"]["sites"] == ["site1", "site2", "site3", "site4"]
    assert card["harmonization"]["method"] == "combat"
    features = [str(study / "embeddings.tsv"), str(study / "regional.tsv")]
    message = crash_message(run_node, ApplyProbe(model=fitted.model, features=features),
                            study / "work", name="apply_without_sites")
    assert "fitted with ComBat site harmonisation: pass participants_tsv" in message
    applied = run_node(ApplyProbe(model=fitted.model, features=features,
                                  participants_tsv=str(study / "participants.tsv")),
                       study / "work", name="apply_with_sites")
    rows = read_tsv(applied.predictions_tsv)
    assert len(rows) == 39 and {"predicted", "predicted_corrected", "brain_age_gap"} <= set(rows[0])
