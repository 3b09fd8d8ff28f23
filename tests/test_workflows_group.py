"""The group workflow (and its deprecated encoding wrapper): builds without torch/sklearn,
draws, pickles, fits then applies, writes its derivatives from inside the graph."""

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder.embedding_files import read_embeddings_tsv
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import sha256_file
from anatcl_nipype.prediction import join_features, load_probe
from anatcl_nipype.prediction.probes import DEFAULT_ALPHAS, DEFAULT_CS
from anatcl_nipype.regional import measures_to_row, read_cat12_roi_xml, write_measures_tsv
from anatcl_nipype.workflows.group import init_anatcl_group_wf
from anatcl_nipype.workflows.prediction import init_anatcl_prediction_wf

pytestmark = pytest.mark.filterwarnings("ignore:init_anatcl_prediction_wf is deprecated")

N_SUBJECTS = 12


def read_tsv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small synthetic cohort and its regional GM volumes (catROI XML -> TSV)."""
    cohort = make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=N_SUBJECTS, seed=1)
    rows = {s: measures_to_row(read_cat12_roi_xml(cohort.roi_xml(s)), ["Vgm"])
            for s in cohort.subjects}
    write_measures_tsv(rows, cohort.root / "regional.tsv")
    return cohort


@pytest.fixture
def model_file(tmp_path):
    """Any existing file will do to build (not run) an apply-mode workflow."""
    path = tmp_path / "age_probe.skops"
    path.touch()
    return path


def run_prediction_wf(cohort, weights, base_dir, **options):
    wf = init_anatcl_prediction_wf(task="brain_age", target="age", weights=weights,
                                   use_regional=True, cv=3, **options)
    wf.base_dir = str(base_dir)
    wf.inputs.inputnode.gm_modulated = [str(path) for path in cohort.gm_maps]
    wf.inputs.inputnode.participants_tsv = str(cohort.participants_tsv)
    wf.inputs.inputnode.regional_tsv = str(cohort.root / "regional.tsv")
    graph = wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
    return {node.name: node.result.outputs for node in graph.nodes()}


@pytest.mark.slow
@pytest.mark.integration
def test_fit_then_apply_under_multiproc(cohort, random_weights, tmp_path):
    results = run_prediction_wf(cohort, random_weights, tmp_path)
    fitted, features_tsv = results["fit_probe"], results["join_embeddings"].out_tsv
    ids, embeddings = read_embeddings_tsv(features_tsv)
    assert ids == list(cohort.subjects) and embeddings.shape == (N_SUBJECTS, 512)

    card = json.loads(Path(fitted.model_card).read_text())
    assert card["n_train"] == N_SUBJECTS and card["task"] == "brain_age"
    assert card["feature_source"]["weights"]["sha256"] == sha256_file(random_weights)
    regional = read_tsv(cohort.root / "regional.tsv")[0]
    assert card["feature_source"]["columns"] == (
        [f"emb_{i:03d}" for i in range(512)] + [c for c in regional if c != "participant_id"])
    assert len(read_tsv(fitted.metrics_tsv)) == 3 + 2  # 3 folds, mean, sd
    assert len(read_tsv(fitted.predictions_tsv)) == N_SUBJECTS
    assert [Path(f).suffix for f in fitted.figures] == [".svg", ".png"]

    # Same name and work folder: the encoding and join nodes are reused from the cache.
    applied = run_prediction_wf(cohort, random_weights, tmp_path, mode="apply",
                                model=fitted.model)["apply_probe"]
    rows = read_tsv(applied.predictions_tsv)
    model, _ = load_probe(fitted.model)
    features = join_features([features_tsv, cohort.root / "regional.tsv"])
    assert [row["participant_id"] for row in rows] == list(cohort.subjects)
    np.testing.assert_allclose([float(row["predicted"]) for row in rows],
                               model.predict(features), rtol=1e-9)  # 10 digits in the TSV
    assert [float(row["true"]) for row in rows] == [
        cohort.ground_truth["subjects"][s]["age"] for s in cohort.subjects]


def test_outputnode_contract_and_nodes(model_file):
    fit = init_anatcl_group_wf(target="diagnosis", task="classification", features="both")
    apply = init_anatcl_group_wf(target="diagnosis", model=model_file)
    for wf in (fit, apply):
        assert wf.get_node("inputnode").inputs.copyable_trait_names() == [
            "embeddings", "embeddings_json", "embedding_ids", "regional_tsv", "participants_tsv"]
        assert wf.get_node("outputnode").outputs.copyable_trait_names() == [
            "features_tsv", "embeddings_table", "embeddings_table_json", "regional_table",
            "regional_table_json", "model", "model_card", "metrics_tsv", "predictions_tsv",
            "figures", "summary_json"]
    assert sorted(fit.list_node_names()) == [
        "collect_features", "collect_sidecars", "fit_probe", "inputnode", "join_embeddings",
        "merge_regional", "outputnode", "regional_sidecars"]
    assert "apply_probe" in apply.list_node_names() and "fit_probe" not in apply.list_node_names()
    assert apply.get_node("apply_probe").inputs.target == "diagnosis"


def test_sinks_write_fitted_and_applied_results_to_their_own_names(model_file, tmp_path):
    fit = init_anatcl_group_wf(target="MMSE score", features="both", output_dir=tmp_path)
    apply = init_anatcl_group_wf(target="MMSE score", model=model_file, output_dir=tmp_path)
    sinks = {wf: wf.get_node("anatcl_group_derivatives_wf") for wf in (fit, apply)}
    names = {wf: {node: sinks[wf].get_node(node).inputs.out_name
                  for node in sinks[wf].list_node_names() if node.startswith("ds_")}
             for wf in (fit, apply)}
    assert sorted(names[fit].values()) == [
        "cv", "embeddings.json", "embeddings.tsv", "metrics.tsv", "predictions.tsv",
        "probe.json", "probe.skops", "regional.json", "regional.tsv", "summary.json"]
    assert sorted(names[apply].values()) == ["desc-applied_predictions.json",
                                             "desc-applied_predictions.tsv"]
    assert {sinks[fit].get_node(n).inputs.folder for n in names[fit]} == {
        "group/target-MMSEscore"}
    # fed from the outputnode, field by field of the same name
    edges = {(u.name, v.name): d["connect"] for u, v, d in fit._graph.edges(data=True)}
    assert ("model", "inputnode.model") in edges[("outputnode", "anatcl_group_derivatives_wf")]


def test_group_column_and_options_reach_the_probe():
    wf = init_anatcl_group_wf(task="regression", target="mmse", group_column="site", cv=2,
                              n_repeats=3, n_permutations=50, seed=4)
    inputs = wf.get_node("fit_probe").interface.inputs
    assert (inputs.group_column, inputs.cv, inputs.n_repeats, inputs.n_permutations,
            inputs.seed) == ("site", 2, 3, 50, 4)


def test_extra_probe_options_pass_through_to_fit_probe(model_file):
    wf = init_anatcl_group_wf(target="age", features="regional",
                              participants_tsv=str(model_file))
    assert wf.get_node("fit_probe").interface.inputs.participants_tsv == str(model_file)
    with pytest.raises(Exception, match="harmonise"):
        init_anatcl_group_wf(target="age", harmonise="combat")


def test_harmonisation_options_reach_the_probe():
    wf = init_anatcl_group_wf(target="age", harmonize="combat", site_column="scanner",
                              covariate_columns=["sex"], unseen_sites="estimate")
    inputs = wf.get_node("fit_probe").interface.inputs
    assert (inputs.harmonize, inputs.site_column, inputs.covariate_columns,
            inputs.unseen_sites) == ("combat", "scanner", ["sex"], "estimate")


def test_relevance_node_explains_the_fitted_probe(tmp_path):
    wf = init_anatcl_group_wf(target="age", output_dir=tmp_path, relevance_maps=True,
                              relevance_options={"steps": 4, "atlas": None})
    relevance = wf.get_node("relevance_maps")
    assert relevance.interface.inputs.steps == 4
    edges = {(u.name, v.name): d["connect"] for u, v, d in wf._graph.edges(data=True)}
    assert ("model", "model") in edges[("fit_probe", "relevance_maps")]
    assert ("gm_maps", "in_files") in edges[("inputnode", "relevance_maps")]
    derivatives = wf.get_node("anatcl_group_derivatives_wf")
    sinks = {n: derivatives.get_node(n).inputs.out_name for n in derivatives.list_node_names()
             if n.startswith("ds_relevance")}
    assert sinks == {"ds_relevance_map": "desc-relevance_statmap.nii.gz",
                     "ds_relevance_json": "desc-relevance_statmap.json"}  # no atlas, no table
    assert "relevance_maps" not in init_anatcl_group_wf(target="age").list_node_names()
    for options, why in (({"features": "both"}, "fitted on both features"),
                         ({"harmonize": "combat"}, "has a ComBat step")):
        with pytest.raises(AnatCLError, match=why):
            init_anatcl_group_wf(target="age", relevance_maps=True, **options)


def test_bad_options_are_refused(model_file):
    with pytest.raises(AnatCLError, match="mode='apply' needs model="):
        init_anatcl_prediction_wf(task="brain_age", target="age", mode="apply")
    with pytest.raises(AnatCLError, match="task='age': choose one of classification"):
        init_anatcl_group_wf(task="age", target="age")
    with pytest.raises(AnatCLError, match="features='pixels': choose one of embeddings"):
        init_anatcl_group_wf(target="age", features="pixels")
    with pytest.raises(AnatCLError, match="no such probe file"):
        init_anatcl_group_wf(target="age", model=model_file.with_name("absent.skops"))
    with pytest.raises(AnatCLError, match="mode='train': choose 'fit'"):
        init_anatcl_prediction_wf(task="brain_age", target="age", mode="train")


def test_building_imports_neither_torch_nor_sklearn():
    code = ("import sys; from anatcl_nipype.workflows import "
            "init_anatcl_group_wf as f; f(task='brain_age', target='age', "
            "features='both', output_dir='/tmp').visit_desc(); "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_methods_text_describes_the_probe():
    text = init_anatcl_group_wf(task="classification", target="diagnosis", cv=10,
                                n_repeats=5, n_permutations=1000, features="both").visit_desc()
    assert "joined with the region-wise measures" in text
    assert "each feature was standardised" in text
    # The numbers in the text are the probe's defaults.
    assert (len(DEFAULT_CS), min(DEFAULT_CS), max(DEFAULT_CS)) == (7, 1e-4, 1e2)
    assert "chosen among 7 values from 1e-4 to 1e2 by an inner stratified 5-fold" in text
    assert "stratified 10-fold cross-validation, repeated 5 times" in text
    assert "balanced accuracy and the area under the ROC curve" in text
    assert "1000 label permutations" in text and "GroupKFold" not in text
    # Grouped folds (the command line groups sessions by participant): GroupKFold, inside
    # and out, as the report says.
    grouped = init_anatcl_group_wf(task="classification", target="diagnosis",
                                   group_column="participant_id").visit_desc()
    assert "by an inner 5-fold GroupKFold cross-validation" in grouped
    assert "5-fold GroupKFold cross-validation keeping every value of 'participant_id'" in grouped
    assert "stratified" not in grouped
    age = init_anatcl_group_wf(target="age").visit_desc()  # auto: brain age for 'age'
    assert (len(DEFAULT_ALPHAS), min(DEFAULT_ALPHAS), max(DEFAULT_ALPHAS)) == (15, 1e-2, 1e5)
    assert "ridge regression, its penalty chosen among 15 values from 1e-2 to 1e5" in age
    assert "age-bias correction" in age and "mean absolute error (MAE)" in age
    wrapped = init_anatcl_prediction_wf(task="brain_age", target="age").visit_desc()
    assert "[@barbano2026anatcl]" in wrapped and "age-bias correction" in wrapped


def test_applying_is_never_called_cross_validated(model_file):
    text = init_anatcl_group_wf(target="age", model=model_file).visit_desc()
    assert "previously fitted" in text and "not cross-validated" in text
    assert "fold cross-validation" not in text


def test_workflows_pickle(model_file):
    for wf in (init_anatcl_group_wf(target="diagnosis", output_dir="/tmp/out"),
               init_anatcl_prediction_wf(task="brain_age", target="age", mode="apply",
                                         model=model_file, use_regional=True)):
        clone = pickle.loads(pickle.dumps(wf))
        assert sorted(clone.list_node_names()) == sorted(wf.list_node_names())


@pytest.mark.parametrize("graph2use", ["colored", "hierarchical"])
@pytest.mark.parametrize("image_format", ["svg", "png"])
def test_workflow_draws(tmp_path, graph2use, image_format):
    wf = init_anatcl_prediction_wf(task="classification", target="diagnosis", use_regional=True)
    wf.base_dir = str(tmp_path)
    wf.write_graph(graph2use=graph2use, format=image_format, simple_form=True)
    drawn = list((tmp_path / wf.name).glob(f"graph*.{image_format}"))
    assert drawn and all(path.stat().st_size > 500 for path in drawn)


def small_study(folder, n, ages):
    """``n`` participants: one embeddings table (with its sidecar), a regional table each,
    and ``participants.tsv`` with ``ages``."""
    from anatcl_nipype.encoder.embedding_files import write_embeddings_tsv

    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"sub-{i:02d}" for i in range(1, n + 1)]
    rng = np.random.default_rng(0)
    embeddings = write_embeddings_tsv(folder / "emb.tsv", ids,
                                      rng.normal(size=(n, 4)).astype(np.float32), "emb")
    embeddings.with_suffix(".json").write_text(json.dumps(
        {"weights": {"descriptor": "global", "fold": 0, "sha256": "0" * 64},
         "precision": "fp32"}))
    regional = []
    for pid, value in zip(ids, rng.normal(size=n)):
        regional.append(folder / f"{pid}_regions.tsv")
        regional[-1].write_text(f"participant_id\tf1\n{pid}\t{value:.3f}\n")
    participants = folder / "participants.tsv"
    participants.write_text("participant_id\tage\n" + "".join(
        f"{pid}\t{age}\n" for pid, age in zip(ids, ages)))
    return embeddings, regional, participants


@pytest.mark.parametrize("fails", [True, False])
def test_feature_tables_are_written_only_after_the_fit(tmp_path, fails):
    """A failed fit leaves no group feature table under its final name, as if it had
    succeeded: the table sinks wait for the probe's summary."""
    n = 4 if fails else 12  # 4 participants cannot be cross-validated in 5 folds
    embeddings, regional, participants = small_study(tmp_path / "in", n,
                                                     [20 + 5 * i for i in range(n)])
    wf = init_anatcl_group_wf(target="age", task="regression", features="both", cv=5,
                              output_dir=tmp_path / "out")
    wf.base_dir = str(tmp_path / "work")
    wf.inputs.inputnode.embeddings = [str(embeddings)]
    wf.inputs.inputnode.regional_tsv = [str(p) for p in regional]
    wf.inputs.inputnode.participants_tsv = str(participants)
    edges = {(u.name, v.name): d["connect"]
             for u, v, d in wf.get_node("anatcl_group_derivatives_wf")._graph.edges(data=True)}
    assert ("summary_json", "trigger") in edges[("inputnode", "ds_embeddings_tsv")]
    assert ("summary_json", "trigger") in edges[("inputnode", "ds_regional_json")]
    target = tmp_path / "out" / "group" / "target-age"
    wf.config["execution"]["stop_on_first_crash"] = "false"  # the other nodes go on
    if fails:
        with pytest.raises(RuntimeError, match="Node fit_probe"):
            wf.run()
        # the tables were made (and checked for session columns) but never sunk
        made = tmp_path / "work" / wf.name / "anatcl_group_derivatives_wf"
        assert (made / "sessions_ds_embeddings_tsv" /
                "result_sessions_ds_embeddings_tsv.pklz").is_file()
        written = sorted(p.name for p in target.rglob("*")) if target.exists() else []
        assert written == [], f"a failed fit left {written} in {target}"
    else:
        wf.run()
        assert sorted(p.name for p in target.iterdir()) == [
            "cv.png", "cv.svg", "embeddings.json", "embeddings.tsv", "metrics.tsv",
            "predictions.tsv", "probe.json", "probe.skops", "regional.json", "regional.tsv",
            "summary.json"]
