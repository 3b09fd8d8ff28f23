"""A whole study from files: features + participants.tsv -> CV, tables, figure, model."""

import numpy as np
import pytest

from anatcl_nipype.prediction import (
    cross_validate_probe,
    join_features,
    load_labels,
    load_probe,
    make_probe,
    plot_cv_results,
    save_probe,
    write_metrics_tsv,
    write_predictions_tsv,
)


def write_tsv(path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def study(tmp_path):
    """60 subjects; patients differ in emb_000 (embeddings) and the left amygdala volume."""
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:02d}" for i in range(60)]
    diagnosis = np.repeat(["AD", "CN"], 30)
    embeddings = rng.normal(size=(60, 4)) + np.where(diagnosis == "AD", 1.5, 0)[:, None] * [
        1, 0, 0, 0]
    volume = rng.normal(1.0, 0.1, 60) - np.where(diagnosis == "AD", 0.15, 0)
    write_tsv(tmp_path / "emb.tsv", ["participant_id"] + [f"emb_{i:03d}" for i in range(4)],
              [[pid, *row] for pid, row in zip(ids, embeddings)])
    write_tsv(tmp_path / "roi.tsv", ["participant_id", "neuromorphometrics_lAmy_Vgm"],
              [[pid, "n/a" if i % 10 == 0 else v] for i, (pid, v) in
               enumerate(zip(ids, volume))])
    # participants.tsv without the sub- prefix; one subject without a diagnosis.
    labels = [[pid[4:], "n/a" if pid == "sub-59" else dx] for pid, dx in zip(ids, diagnosis)]
    write_tsv(tmp_path / "participants.tsv", ["participant_id", "diagnosis"], labels)
    return tmp_path


def test_study_from_files(study):
    features = join_features([study / "emb.tsv", study / "roi.tsv"])
    labels = load_labels(study / "participants.tsv", "diagnosis", features.index,
                         "classification")
    assert labels.dropped == [("sub-59", "diagnosis is n/a")]
    X = features.loc[labels.participant_ids]
    probe = make_probe("classification", cs=[0.1, 1.0], inner_cv=3)
    result = cross_validate_probe(X, labels.labels, "classification", cv=3, estimator=probe)
    # 1.5-sd shift plus a 1.5-sd volume loss: Bayes balanced accuracy ~0.86.
    assert result.summary["balanced_accuracy"]["mean"] > 0.75
    assert set(result.predictions["participant_id"]) == set(labels.participant_ids)
    write_predictions_tsv(result.predictions, study / "predictions.tsv")
    write_metrics_tsv(result, study / "metrics.tsv")
    assert len(plot_cv_results(result, study / "diagnosis")) == 2
    model = probe.fit(X, labels.labels)
    source = {"columns": list(X.columns), "regional_measures": ["Vgm"]}
    path, _ = save_probe(model, study / "diagnosis.skops", {
        "task": "classification", "target": "diagnosis", "n_train": len(X),
        "cv_metrics": result.summary, "feature_source": source})
    loaded, card = load_probe(path, expected_feature_source=source)
    assert card["classes"] == ["AD", "CN"]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
