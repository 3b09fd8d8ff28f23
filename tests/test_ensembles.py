"""Fold ensembles at the group level: one probe per encoder fold, same splits, their mean."""

import json

import numpy as np
import pandas as pd
import pytest

from anatcl_nipype.encoder.embedding_files import write_embeddings_tsv
from anatcl_nipype.errors import AnatCLError, PredictionError
from anatcl_nipype.prediction.ensemble import across_folds, ensemble_predictions
from anatcl_nipype.workflows.group import init_anatcl_group_wf

FOLDS = (0, 1, 2)
N = 40


def _table(predicted, folds=(0, 1, 0, 1), **columns):
    return pd.DataFrame({"participant_id": ["a", "b", "c", "d"], "true": [1.0, 2.0, 3.0, 4.0],
                         "predicted": predicted, "fold": list(folds), "repeat": 0, **columns})


def test_regression_ensemble_is_the_mean_of_the_folds_predictions():
    ensemble = ensemble_predictions([_table([1.0, 2.0, 5.0, 0.0]),
                                     _table([3.0, 2.0, 1.0, 4.0])], "regression")
    assert ensemble["predicted"].tolist() == [2.0, 2.0, 3.0, 2.0]
    assert ensemble["true"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_classification_ensemble_averages_probabilities():
    first = _table(["x", "y", "x", "x"], probability_x=[0.9, 0.2, 0.6, 0.4],
                   probability_y=[0.1, 0.8, 0.4, 0.6])
    second = _table(["x", "x", "y", "y"], probability_x=[0.7, 0.6, 0.2, 0.2],
                    probability_y=[0.3, 0.4, 0.8, 0.8])
    ensemble = ensemble_predictions([first, second], "classification")
    assert np.allclose(ensemble["probability_x"], [0.8, 0.4, 0.4, 0.3])
    assert ensemble["predicted"].tolist() == ["x", "y", "y", "y"]


def test_probes_with_other_splits_are_refused():
    with pytest.raises(PredictionError, match="other splits"):
        ensemble_predictions([_table([1.0] * 4), _table([1.0] * 4, folds=(1, 0, 0, 1))],
                             "regression")
    with pytest.raises(PredictionError, match="2 or more"):
        ensemble_predictions([_table([1.0] * 4)], "regression")


@pytest.mark.parametrize("task", ["classification", "brain_age"])
def test_an_ensemble_of_one_probe_twice_scores_as_that_probe(task):
    """The ensemble is scored by the cross-validation's own metric functions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from anatcl_nipype.prediction import cross_validate_probe
    from anatcl_nipype.prediction.ensemble import ensemble_metrics

    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 60)
    X = np.outer(age - 50, [1.0, 0.5, 0.0]) / 10 + rng.normal(size=(60, 3))
    y = age if task == "brain_age" else np.where(age > 50, "old", "young")
    probe = make_pipeline(LogisticRegression()) if task == "classification" else None
    result = cross_validate_probe(X, y, task, cv=3, n_repeats=2, estimator=probe)
    twice = ensemble_predictions([result.predictions, result.predictions], task)
    table, summary = ensemble_metrics(twice, task)
    names = (["balanced_accuracy", "roc_auc"] if task == "classification"
             else ["mae", "rmse", "r2", "pearson_r"])
    assert table.columns.tolist() == ["repeat", "fold", *names]
    pd.testing.assert_frame_equal(table, result.fold_metrics[table.columns], rtol=1e-12)
    for name in names:
        assert summary[name] == pytest.approx(result.summary[name], rel=1e-12)


def test_across_folds_lists_each_fold_then_mean_and_sd():
    table = across_folds([{"mae": {"mean": 1.0}}, {"mae": {"mean": 2.0}},
                          {"mae": {"mean": 6.0}}], [0, 2, 4])
    assert table["encoder_fold"].tolist() == ["0", "2", "4", "mean", "sd"]
    assert table["mae"].tolist()[:4] == [1.0, 2.0, 6.0, 3.0]
    assert table["mae"].tolist()[4] == pytest.approx(np.std([1, 2, 6], ddof=1))


@pytest.fixture(scope="module")
def fold_tables(tmp_path_factory):
    """Per-fold embedding tables: a planted age signal plus each fold's own noise."""
    root = tmp_path_factory.mktemp("folds")
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:02d}" for i in range(1, N + 1)]
    age = rng.uniform(20, 80, N)
    pd.DataFrame({"participant_id": ids, "age": np.round(age, 2),
                  "site": np.repeat(["s1", "s2"], N // 2)}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    tables = {}
    for fold in FOLDS:
        signal = np.outer(age - 50, rng.normal(size=8)) / 10
        vectors = (signal + rng.normal(0, 3.0, (N, 8))).astype(np.float32)
        path = write_embeddings_tsv(root / f"fold{fold}.tsv", ids, vectors, "emb")
        path.with_suffix(".json").write_text(json.dumps(
            {"weights": {"descriptor": "global", "fold": fold, "sha256": f"{fold:064d}"},
             "precision": "fp32"}))
        tables[fold] = path
    return root, tables


def test_group_workflow_fits_a_probe_per_fold_and_their_ensemble(fold_tables, tmp_path):
    root, tables = fold_tables
    wf = init_anatcl_group_wf(target="age", task="regression", cv=4, folds=FOLDS,
                              output_dir=tmp_path / "out")
    wf.inputs.inputnode.embeddings = [[str(tables[fold])] for fold in FOLDS]  # one per fold
    wf.inputs.inputnode.embeddings_json = [[str(tables[fold].with_suffix(".json"))]
                                           for fold in FOLDS]
    wf.inputs.inputnode.participants_tsv = str(root / "participants.tsv")
    wf.base_dir = str(tmp_path / "work")
    wf.run()
    target = tmp_path / "out" / "group" / "target-age"
    assert sorted(p.name for p in target.iterdir()) == [
        "desc-ensemble_metrics.tsv", "desc-ensemble_predictions.tsv",
        "desc-ensemble_summary.json", "desc-folds_metrics.tsv",
        *(f"fold-{fold}" for fold in FOLDS)]
    for fold in FOLDS:  # written by one MapNode sink per kind of result
        assert sorted(p.name for p in (target / f"fold-{fold}").iterdir()) == [
            "cv.png", "cv.svg", "embeddings.json", "embeddings.tsv", "metrics.tsv",
            "predictions.tsv", "probe.json", "probe.skops", "summary.json"]
    fold_predictions = []
    for fold in FOLDS:
        card = json.loads((target / f"fold-{fold}" / "probe.json").read_text())
        assert card["feature_source"]["weights"]["fold"] == fold
        fold_predictions.append(pd.read_csv(target / f"fold-{fold}" / "predictions.tsv",
                                            sep="\t").sort_values("participant_id"))
    # the same splits for every fold
    assert all(p["fold"].tolist() == fold_predictions[0]["fold"].tolist()
               for p in fold_predictions)
    ensemble = pd.read_csv(target / "desc-ensemble_predictions.tsv", sep="\t"
                           ).sort_values("participant_id")
    expected = np.mean([p["predicted"].to_numpy() for p in fold_predictions], axis=0)
    assert np.allclose(ensemble["predicted"], expected)
    folds_table = pd.read_csv(target / "desc-folds_metrics.tsv", sep="\t")
    assert folds_table["encoder_fold"].astype(str).tolist() == ["0", "1", "2", "mean", "sd"]
    metrics = pd.read_csv(target / "desc-ensemble_metrics.tsv", sep="\t")
    ensemble_mae = float(metrics.loc[metrics["fold"] == "mean", "mae"].iloc[0])
    # independent fold noise averages out: the ensemble beats the folds' mean MAE
    assert ensemble_mae < float(folds_table.loc[3, "mae"])
    summary = json.loads((target / "desc-ensemble_summary.json").read_text())
    assert summary["encoder_folds"] == list(FOLDS)


def test_ensemble_options_that_cannot_work_are_refused(tmp_path):
    probe = tmp_path / "probe.skops"
    probe.touch()
    with pytest.raises(AnatCLError, match="drop folds"):
        init_anatcl_group_wf(target="age", folds=FOLDS, model=probe)
    with pytest.raises(AnatCLError, match="needs AnatCL embeddings"):
        init_anatcl_group_wf(target="age", folds=FOLDS, features="regional")
    with pytest.raises(AnatCLError, match="one probe per fold"):
        init_anatcl_group_wf(target="age", folds=FOLDS, relevance_maps=True)


def test_one_fold_is_no_ensemble():
    wf = init_anatcl_group_wf(target="age", folds=[3])
    assert "fit_probe" in wf.list_node_names() and "combine_folds" not in wf.list_node_names()


@pytest.mark.slow
def test_fold_all_through_the_command_line(tmp_path, monkeypatch):
    """Seeded random checkpoints as the released folds in the cache; six participants."""
    import subprocess
    import sys

    from anatcl_nipype.data import make_cat12_cohort
    from anatcl_nipype.encoder import write_random_checkpoint
    from anatcl_nipype.encoder.weights import cached_weights_path

    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path / "home"))
    for fold in range(5):
        path = cached_weights_path("global", fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(path, seed=30 + fold)
    cohort = make_cat12_cohort(tmp_path / "cat12", n_subjects=6, seed=2)

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "anatcl_nipype", cohort.root,
                               tmp_path / "out", *args, "-w", tmp_path / "work"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("participant", "--fold", "all")
    anat = tmp_path / "out" / "sub-01" / "anat"
    for fold in range(5):
        sidecar = json.loads((anat / f"sub-01_desc-anatclGlobalFold{fold}_embedding.json"
                              ).read_text())
        assert sidecar["weights"]["fold"] == fold
    out = run("group", "--fold", "all", "--target", "age", "--task", "regression", "--cv", "2")
    assert "Encoder fold 4: Cross-validated mae" in out
    assert "Ensemble (mean of the folds' out-of-fold predictions): Cross-validated mae" in out
    target = tmp_path / "out" / "group" / "target-age"
    assert sorted(p.name for p in target.iterdir()) == [
        "desc-ensemble_metrics.tsv", "desc-ensemble_predictions.tsv",
        "desc-ensemble_summary.json", "desc-folds_metrics.tsv",
        "fold-0", "fold-1", "fold-2", "fold-3", "fold-4"]
    assert "age: fold ensemble" in (tmp_path / "out" / "anatcl" / "report.html").read_text()
