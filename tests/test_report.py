"""The report: automatic checks, true methods, and the page in a real headless Chromium.

The fixture writes a small synthetic cohort's participant outputs directly, in the layout
the participant level writes (embedding .npy + JSON sidecar per participant, failed.tsv,
a run record), with one map shifted by 25 voxels (a failed normalisation), one outlier
embedding and one failed participant; the group outputs come from the prediction layer
(a cross-validated brain-age probe and its figures) plus an applied probe's predictions.
"""

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.cli.report import record_run, report_dir, write_report
from anatcl_nipype.reports import qc
from anatcl_nipype.reports.collect import (
    TargetResults,
    collect_output_folder,
    decode_traceback,
    encode_traceback,
)
from anatcl_nipype.reports.methods import (
    ensemble_paragraph,
    harmonization_paragraph,
    methods_markdown,
    methods_paragraphs,
    probe_paragraph,
    weights_sentence,
)

SCREENSHOTS = Path(__file__).parent / "_screenshots"
SHIFTED, OUTLIER, FAILED = "sub-03", "sub-05", "sub-08"
RANDOM_WEIGHTS = {"descriptor": None, "fold": None, "path": "/w/weights.pth", "random": True,
                  "run_id": "random-seed7", "sha256": "49" * 32}
TRACEBACK = ('Traceback (most recent call last):\n  File "runner.py", line 80, in encode\n'
             "    check_volume_values(volume)\nanatcl_nipype.errors.VolumeError: "
             "mwp1sub-08_T1w.nii: the map is empty (all zeros)")


#: What tests ask a loaded page, as JavaScript expressions.
QUERIES = {
    "images": "Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])",
    "svgs": "document.querySelectorAll('svg').length",
    "sections": "Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)",
    "widths": "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
    "participants": "Array.from(document.querySelectorAll('div.participant')).map("
                    "d => [d.id, d.classList.contains('flagged'), d.innerText])",
    "nav": "Array.from(document.querySelectorAll('nav a')).map(a => a.textContent)",
    "graph": "(() => { const g = document.querySelector('.graph svg');"
             " return g ? [g.getBoundingClientRect().right,"
             " document.querySelector('main').getBoundingClientRect().right] : null })()",
    "text": "document.body.innerText",
}


def inspect_page(page, width=1280, screenshot=None, full_page=None):
    """Load ``page`` in headless Debian Chromium at ``width`` px; return (SEVERE console
    entries, ``{query: answer}`` for :data:`QUERIES`); save screenshots of the first
    screen and of the whole page when asked."""
    driver = _chromium(width)
    try:
        driver.get(Path(page).as_uri())
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        answers = {name: driver.execute_script(f"return {query}")
                   for name, query in QUERIES.items()}
        if screenshot:
            driver.save_screenshot(str(screenshot))
        if full_page:
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(width, min(height, 16000))
            driver.save_screenshot(str(full_page))
    finally:
        driver.quit()
    return errors, answers


def open_in_chromium(page, screenshot, width=1200):
    """(console errors, images, svg count, section titles) of ``page``; a screenshot."""
    errors, answers = inspect_page(page, width, screenshot)
    return errors, answers["images"], answers["svgs"], answers["sections"]


def _chromium(width):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", f"--window-size={width},900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def write_embedding(anat, label, vector, gm_map, weights=RANDOM_WEIGHTS):
    """An embedding and its sidecar, as the participant level writes them."""
    anat.mkdir(parents=True, exist_ok=True)
    desc = "anatclRandom" if weights.get("random") else "anatclCustom"  # as the sinks name them
    stem = anat / f"{label}_desc-{desc}_embedding"
    np.save(stem.with_suffix(".npy"), vector.astype(np.float32))
    stem.with_suffix(".json").write_text(json.dumps({
        "device": "cpu", "input": {"path": str(gm_map), "sha256": "ab" * 32},
        "output": "backbone representation (512-d)", "precision": "fp32",
        "preprocessing": {"crop": "axis 1 indices 8..135 -> 121x128x121"}, "shape": [512],
        "software": {"anatcl_nipype": "0.1.0", "torch": "2.13.0+cpu"}, "weights": weights}))


def shift_map(path, voxels=25):
    import nibabel as nib

    image = nib.load(path)
    shifted = np.roll(np.asarray(image.dataobj), voxels, axis=1)
    nib.save(nib.Nifti1Image(shifted, image.affine, image.header), path)


def write_classification_results(out, ids, embeddings, diagnoses):
    """A cross-validated diagnosis probe's tables and figure, by the prediction layer."""
    from anatcl_nipype.prediction.figures import plot_cv_results
    from anatcl_nipype.prediction.probes import make_probe
    from anatcl_nipype.prediction.tables import write_metrics_tsv
    from anatcl_nipype.prediction.validation import cross_validate_probe

    folder = out / "group" / "target-diagnosis"
    folder.mkdir(parents=True)
    result = cross_validate_probe(embeddings, diagnoses, "classification", cv=2,
                                  participant_ids=ids,
                                  estimator=make_probe("classification", inner_cv=2))
    write_metrics_tsv(result, folder / "metrics.tsv")
    plot_cv_results(result, folder / "cv")
    (folder / "summary.json").write_text(json.dumps(
        {"target": "diagnosis", "task": "classification", "n_train": len(ids),
         "cv_metrics": result.summary, "permutation_test": None,
         "validation": {"cv": 2, "n_repeats": 1, "seed": 0, "group_column": "site"}}))


def write_group_results(out, ids, embeddings, ages):
    """A cross-validated brain-age probe's outputs, written by the prediction layer."""
    from anatcl_nipype.prediction.figures import plot_cv_results
    from anatcl_nipype.prediction.tables import write_metrics_tsv, write_predictions_tsv
    from anatcl_nipype.prediction.validation import cross_validate_probe

    folder = out / "group" / "target-age"
    folder.mkdir(parents=True)
    result = cross_validate_probe(embeddings, ages, "brain_age", cv=3, participant_ids=ids)
    write_metrics_tsv(result, folder / "metrics.tsv")
    write_predictions_tsv(result.predictions, folder / "predictions.tsv")
    plot_cv_results(result, folder / "cv")
    (folder / "cv.png").unlink()
    summary = {"target": "age", "task": "brain_age", "features": "embeddings",
               "n_train": len(ids), "cv_metrics": result.summary,
               "validation": {"cv": 3, "n_repeats": 1, "seed": 0, "group_column": None},
               "permutation_test": {"metric": "mae", "score": 9.1, "pvalue": 0.0476,
                                    "n_permutations": 20}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "probe.json").write_text(json.dumps({**summary, "model_sha256": "cd" * 32}))
    applied = folder / "desc-applied_predictions"
    applied.with_suffix(".tsv").write_text("participant_id\tpredicted\n" + "".join(
        f"{pid}\t{age + 3.14159:.5f}\n" for pid, age in zip(ids, ages)))
    applied.with_suffix(".json").write_text(json.dumps(
        {"model": "/models/age_probe.skops", "model_sha256": "ef" * 32, "task": "brain_age",
         "target": "age"}))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Participant and group outputs of a 10-participant synthetic cohort (see module doc)."""
    from anatcl_nipype.data import make_cat12_cohort

    root = tmp_path_factory.mktemp("report")
    cohort = make_cat12_cohort(root / "cat12", n_subjects=10, seed=2)
    out = root / "out"
    shift_map(cohort.gm_map(SHIFTED))
    rng = np.random.default_rng(0)
    base = rng.normal(size=512)
    ids, vectors, ages, diagnoses = [], [], [], []
    rows = {r.split("\t")[0]: r.split("\t") for r in
            cohort.participants_tsv.read_text().splitlines()[1:]}
    for subject in cohort.subjects:
        if subject == FAILED:
            continue
        vector = base + 0.2 * rng.normal(size=512) + (3.0 if subject == OUTLIER else 0.0)
        write_embedding(out / subject / "anat", subject, vector, cohort.gm_map(subject))
        ids.append(subject)
        vectors.append(vector)
        ages.append(float(rows[subject][1]))
        diagnoses.append(rows[subject][4])
    folder = report_dir(out)
    (folder / "failed.tsv").write_text(
        "participant_id\tpath\treason\ttraceback\n"
        f"{FAILED}\t{cohort.gm_map(FAILED)}\tthe map is empty\t{encode_traceback(TRACEBACK)}\n")
    (folder / "graph.svg").write_text(
        '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="3000pt" '
        'height="200pt" viewBox="0 0 3000 200"><rect width="3000" height="200" fill="#9cf"/>'
        '<text x="2900" y="100">right end</text></svg>')
    started = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    record_run(out, "participant", [str(cohort.root), str(out), "participant"], started,
               started + timedelta(seconds=75), {"check inputs": 1.5, "encode": 70.25},
               "MultiProc", {"n_procs": 2})
    write_group_results(out, ids, np.stack(vectors), np.array(ages))
    write_classification_results(out, ids, np.stack(vectors), np.array(diagnoses))
    return cohort, out


def test_shifted_map_is_flagged_and_a_correct_one_is_not():
    prior = np.array(qc.template_prior())
    assert qc.map_checks(prior)["flags"] == []
    shifted = qc.map_checks(np.roll(prior, 25, axis=1))
    assert shifted["correlation"] < qc.MIN_PRIOR_CORRELATION
    assert any("correlation with the MNI GM prior" in flag for flag in shifted["flags"])
    assert any("overlap (Dice)" in flag for flag in shifted["flags"])


def test_the_prior_is_resampled_once_per_machine_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))
    qc.template_prior.cache_clear()
    try:
        computed = qc.template_prior()
        cached = qc.prior_cache_path()
        assert cached.parent == tmp_path / "reports" and cached.is_file()
        assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp left
        np.save(cached, np.full((2, 2, 2), 0.5, np.float32))  # what is there is what is read
        qc.template_prior.cache_clear()
        assert qc.template_prior().shape == (2, 2, 2)
        cached.write_bytes(b"not a numpy file")  # a damaged cache is recomputed
        qc.template_prior.cache_clear()
        np.testing.assert_array_equal(qc.template_prior(), computed)
        assert computed.shape == (121, 128, 121) and not computed.flags.writeable
    finally:
        qc.template_prior.cache_clear()
        qc._smoothed_prior.cache_clear()


def test_panels_show_the_left_hemisphere_on_the_left_and_the_front_on_the_right():
    """A bright block at x < 0 (left) and y > 0 (front) lands where nilearn shows it: the
    left half of the coronal and axial planes, the right half of the sagittal plane."""
    import base64
    import io

    from PIL import Image

    from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CROP_OFFSET
    from anatcl_nipype.reports.figures import CUT_COORDS, GreyMatterPanels

    def index(axis, mm):  # voxel of the cropped grid at world coordinate mm
        origin = CAT12_AFFINE[axis, 3] + (CAT12_AFFINE[1, 1] * CROP_OFFSET if axis == 1 else 0)
        return int(round((mm - origin) / CAT12_AFFINE[axis, axis]))

    volume = np.zeros((121, 128, 121), np.float32)
    x, y, z = (sorted((index(a, CUT_COORDS[a] - 6), index(a, CUT_COORDS[a] + 6)))
               for a in range(3))
    front = sorted((index(1, 40), index(1, 60)))
    volume[x[0]:x[1], y[0]:y[1], z[0]:z[1]] = 1.0  # at the cuts' crossing: left of midline
    volume[x[0]:x[1], front[0]:front[1], z[0]:z[1]] = 1.0  # the same, further forward
    uri = GreyMatterPanels(np.zeros_like(volume)).draw(volume)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))))[..., 1]
    bright = pixels > 200
    width = pixels.shape[1]
    columns = np.flatnonzero(bright.any(axis=0))
    sagittal = columns[columns < 0.33 * width]
    coronal = columns[(columns > 0.36 * width) & (columns < 0.64 * width)]
    axial = columns[columns > 0.68 * width]
    assert sagittal.size and coronal.size and axial.size
    # sagittal: the front block lies right of the crossing's block
    assert sagittal.max() - sagittal.min() > 0.1 * width
    # coronal and axial: the block is left of each panel's midline (x = 0 at 1/2 + 1/2)
    assert coronal.mean() < (0.36 + 0.64) / 2 * width
    assert axial.mean() < (0.68 + 1.0) / 2 * width


def test_principal_components_equal_scikit_learn_pca():
    from sklearn.decomposition import PCA

    from anatcl_nipype.reports.figures import principal_components

    X = np.random.default_rng(4).normal(size=(24, 512)) @ np.diag(np.linspace(3, 0.1, 512))
    scores, ratio = principal_components(X)
    pca = PCA(n_components=2, svd_solver="full").fit(X)  # "auto" is randomised here
    np.testing.assert_allclose(scores, pca.transform(X), atol=1e-9)
    np.testing.assert_allclose(ratio, pca.explained_variance_ratio_, rtol=1e-9)


def test_an_unreadable_map_is_a_flag_of_its_participant_only(tmp_path, outputs):
    from anatcl_nipype.reports.assemble import participant_checks

    cohort, out = outputs
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    damaged = tmp_path / "mwp1sub-02_T1w.nii.gz"
    damaged.write_bytes(b"not gzip")
    sidecar = next((copy / "sub-02" / "anat").glob("*_embedding.json"))
    content = json.loads(sidecar.read_text())
    content["input"]["path"] = str(damaged)
    sidecar.write_text(json.dumps(content))
    folder = collect_output_folder(copy, cohort.participants_tsv)
    checks = participant_checks(folder, tmp_path / "cache")
    assert list(checks) == [p.label for p in folder.participants]
    assert checks["sub-02"]["figure"] is None and str(damaged) in checks["sub-02"]["flags"][0]
    others = [label for label in checks if label not in ("sub-02", FAILED)]
    assert all(checks[label]["figure"].startswith("data:image/png") for label in others)
    assert checks[SHIFTED]["flags"] and not checks["sub-01"]["flags"]


def test_odd_intensities_and_poor_cat12_grade_are_flagged():
    normal = np.full((10, 10, 10), 0.3, np.float32)
    assert qc.intensity_flags(normal) == []
    assert "maximum 3.00 > 1.5" in qc.intensity_flags(normal * 10)[1]
    assert "mean GM density 0.01" in qc.intensity_flags(normal / 30)[0]
    assert qc.iqr_flag(2.0) == ""  # 85 %, grade B
    assert qc.iqr_grade(4.2) == "D" and "63.0 %" in qc.iqr_flag(4.2)


def test_the_planted_outlier_embedding_and_only_it_is_flagged():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(24, 512)) * 0.1 + rng.normal(size=512)
    embeddings[11] += 0.5
    scores = qc.embedding_outlier_scores(embeddings)
    assert np.flatnonzero(scores > qc.OUTLIER_Z).tolist() == [11]
    assert np.isnan(qc.embedding_outlier_scores(embeddings[:4])).all()  # too few


def test_traceback_survives_failed_tsv_as_one_field():
    text = "Traceback:\n\tFile 'C:\\data\\x.nii'\nValueError: bad"
    field = encode_traceback(text)
    assert "\n" not in field and "\t" not in field
    assert decode_traceback(field) == text


def test_weights_are_described_as_they_were():
    assert "never trained" in weights_sentence(RANDOM_WEIGHTS)
    released = weights_sentence({"descriptor": "local", "fold": 2, "sha256": "aa"})
    assert "released AnatCL weights of the local descriptor, fold 2 (sha256 aa)" in released
    user = weights_sentence({"descriptor": None, "fold": None, "path": "/x/mine.pth",
                             "sha256": "bb"})
    assert "user-supplied AnatCL checkpoint, mine.pth (sha256 bb)" in user
    assert "OpenBHB" not in user and "OpenBHB" not in weights_sentence(RANDOM_WEIGHTS)


def test_methods_have_one_paragraph_per_step(outputs):
    cohort, out = outputs
    folder = collect_output_folder(out, cohort.participants_tsv)
    paragraphs = methods_paragraphs(folder)
    assert len(paragraphs) == len(set(paragraphs))
    text = " ".join(paragraphs)
    assert "seeded random weights" in text and "pretrained on about 4,000" not in text
    assert "3-fold cross-validation" in text and "p = 0.0476" in text
    assert "2-fold GroupKFold cross-validation keeping every value of 'site'" in text
    assert "training folds only" in text  # the brain-age correction
    assert "age_probe.skops" in text and "ef" * 32 in text  # the applied probe
    assert "CAT12's total intracranial volume" in text  # the CAT12 reports were read
    assert text.count("Region-wise") == 0  # no regional tables were written here


HARMONIZATION = {"method": "combat", "site_column": "site", "covariates": ["age", "sex"],
                 "unseen_sites": None, "sites": ["s1", "s2", "s3"], "site_separability": None}
CV_SUMMARY = {"target": "age", "task": "brain_age", "n_train": 30,
              "cv_metrics": {"mae": {"mean": 5.123, "sd": 0.5}},
              "validation": {"cv": 5, "n_repeats": 1, "seed": 0, "group_column": "site"}}


def test_references_are_cited_by_key_and_listed_from_the_bibtex():
    from anatcl_nipype.citations import bibtex_entries, cite, cited_keys, reference

    assert all(cite(key) == f"[@{key}]" for key in bibtex_entries())
    assert reference("fortin2018combat") == (
        "Fortin JP, et al. Harmonization of cortical thickness measurements across scanners "
        "and sites. NeuroImage 167:104-120, 2018. doi:10.1016/j.neuroimage.2017.11.024 "
        "(ComBat, as implemented in neuroCombat).")
    assert reference("skops") == ("skops: secure persistence of scikit-learn models. "
                                  "https://skops.readthedocs.io")
    assert cited_keys("a [@b] c [@d] e [@b]") == ["b", "d"]
    with pytest.raises(KeyError, match="nobody2020: no such reference; add its entry"):
        cite("nobody2020")


def test_combat_grouped_search_and_ensemble_have_a_paragraph_each_only_when_they_ran(
        tmp_path, outputs):
    cohort, out = outputs
    plain = collect_output_folder(out, cohort.participants_tsv)
    plain_text = " ".join(methods_paragraphs(plain))
    assert "ComBat" not in plain_text and "fold ensemble" not in plain_text
    assert "by efficient leave-one-out" in plain_text  # the age probe: no groups
    assert "by an inner 5-fold GroupKFold" in plain_text  # the diagnosis probe: by site

    for k in (0, 1):
        (tmp_path / f"fold-{k}").mkdir()
        (tmp_path / f"fold-{k}" / "probe.json").write_text(json.dumps(
            {**CV_SUMMARY, "harmonization": HARMONIZATION}))
    (tmp_path / "desc-ensemble_metrics.tsv").write_text("fold\tmae\n0\t5.0\n")
    target = TargetResults(name="age", folder=tmp_path)
    plain.targets = [target]
    paragraphs = methods_paragraphs(plain)
    assert len(paragraphs) == len(set(paragraphs))
    combat = [p for p in paragraphs if "ComBat" in p]
    ensemble = [p for p in paragraphs if "fold ensemble" in p]
    assert combat == [harmonization_paragraph(target)] and ensemble == [
        ensemble_paragraph(target)]
    assert "neuroCombat" in combat[0] and "age, sex" in combat[0]
    assert "inside each training fold" in combat[0] and "3 site(s)" in combat[0]
    assert "2 released AnatCL encoder folds (0, 1)" in ensemble[0]
    probe = probe_paragraph(target)  # one paragraph, from the first fold's card
    assert [p for p in paragraphs if p.startswith("The target")] == [probe]
    assert "by an inner 5-fold GroupKFold cross-validation" in probe
    assert "5-fold GroupKFold cross-validation keeping every value of 'site'" in probe
    markdown = methods_markdown(plain)
    assert "Fortin JP" in markdown and "@article{fortin2018combat," in markdown


def test_two_sessions_and_a_placeholder_failure_are_counted_as_scans(tmp_path, outputs):
    from anatcl_nipype.reports.assemble import build_report

    cohort, _ = outputs
    out = tmp_path / "out"
    rng = np.random.default_rng(3)
    subjects = list(cohort.subjects)[:3]
    for subject in subjects:
        for session in ("1", "2"):
            label = f"{subject}_ses-{session}"
            write_embedding(out / subject / f"ses-{session}" / "anat", label,
                            rng.normal(size=512), cohort.gm_map(subject))
    folder = report_dir(out)
    (folder / "failed.tsv").write_text("participant_id\tpath\treason\ttraceback\n"
                                       "n/a\t\tno map found\t\n")
    html = build_report(out, cohort.participants_tsv).read_text()
    assert "6 scans of 3 participants" in html  # encoded
    assert "1 participant</b>failed" in html.replace("\n", "")
    for subject in subjects:
        assert f'id="{subject}_ses-1"' in html and f'id="{subject}_ses-2"' in html
    assert 'id="n/a"' in html and "no map found" in html
    methods = (report_dir(out) / "methods.md").read_text()
    assert "map of each of the 6 scans of 3 participants, written by CAT12" in methods


@pytest.mark.slow
def test_report_in_chromium(outputs):
    cohort, out = outputs
    page = write_report(out, cohort.participants_tsv)
    methods = (page.parent / "methods.md").read_text()
    SCREENSHOTS.mkdir(exist_ok=True)
    errors, answers = inspect_page(page, 1280, SCREENSHOTS / "report_top.png",
                                   SCREENSHOTS / "report_full.png")
    widths, graph, nav, text = (answers[k] for k in ("widths", "graph", "nav", "text"))
    participants = answers["participants"]
    images = [loaded for _, loaded in answers["images"]]
    assert errors == []
    assert widths[0] <= widths[1]  # no horizontal scrolling at 1280 px
    assert graph[0] <= graph[1] + 1  # the 3000-pt graph is scaled into the page
    by_id = {pid: (flagged, body) for pid, flagged, body in participants}
    assert sorted(by_id) == list(cohort.subjects)  # every participant has its section
    assert all(f"{s} \u2691" in nav for s in (SHIFTED, OUTLIER, FAILED))
    assert "correlation with the MNI GM prior" in by_id[SHIFTED][1] and by_id[SHIFTED][0]
    assert "embedding outlier" in by_id[OUTLIER][1] and by_id[OUTLIER][0]
    assert "VolumeError: mwp1sub-08_T1w.nii: the map is empty" in by_id[FAILED][1]
    assert not by_id["sub-01"][0] and "No automatic check flagged" in by_id["sub-01"][1]
    assert "CAT12 IQR" in by_id["sub-01"][1] and "TIV" in by_id["sub-01"][1]
    assert len(images) == len(cohort.subjects) and all(images)
    assert "RANDOM WEIGHTS" in text and "seeded random weights" in text
    assert "ef" * 32 in text and "age_probe.skops" in text  # the applied probe, named
    assert "Cross-validated metrics per fold" in text  # and the fitted one
    assert "Confusion matrix and ROC curve" in text and "diagnosis: balanced accuracy" in text
    assert "encode 70.2 s" in text and "MultiProc n_procs=2" in text
    paragraphs = [p for p in methods.split("\n\n") if p.strip()]
    assert len(paragraphs) == len(set(paragraphs)) and "random" in methods


@pytest.mark.slow
def test_metrics_are_shown_with_three_significant_digits(outputs):
    cohort, out = outputs
    page = write_report(out, cohort.participants_tsv)
    prediction = page.read_text().split('id="Prediction"')[1].split('id="Applied-probes"')[0]
    tables = re.findall(r"<table>.*?</table>", prediction, re.S)
    numbers = re.findall(r'<td class="num">([^<]*)</td>', "".join(tables))
    assert numbers and all(len(n.lstrip("-").replace(".", "").lstrip("0")) <= 3
                           for n in numbers), numbers


@pytest.mark.slow
def test_report_of_an_empty_folder_opens(tmp_path):
    page = write_report(tmp_path / "empty")
    html = page.read_text()
    assert "No participant outputs in this folder yet." in html
    assert "No probe fitted yet" in html
def test_a_scan_without_session_shows_only_its_own_section(tmp_path):
    """sub-01 has a scan without a session and one in ses-2: each section is its own."""
    from anatcl_nipype.reports.assemble import build_report

    rng = np.random.default_rng(3)
    out = tmp_path / "out"
    for label, anat in (("sub-01", out / "sub-01" / "anat"),
                        ("sub-01_ses-2", out / "sub-01" / "ses-2" / "anat")):
        write_embedding(anat, label, rng.normal(size=512), tmp_path / f"{label}.nii.gz")
    page = build_report(out).read_text()
    sections = re.findall(r'<div class="participant[^"]*" id="([^"]+)"', page)
    assert sorted(sections) == ["sub-01", "sub-01_ses-2"], sections


def test_the_registry_names_each_section_and_reportlet_once():
    """Two rows with one desc would write one reportlet over the other; two with one
    heading would give two sections one anchor on the page."""
    from anatcl_nipype.reports.assemble import report_spec
    from anatcl_nipype.reports.sections import PARTICIPANTS, SECTIONS

    assert len({s.desc for s in SECTIONS}) == len({s.heading for s in SECTIONS}) == len(SECTIONS)
    assert PARTICIPANTS in SECTIONS
    assert all(s.build for s in SECTIONS if s != PARTICIPANTS)
    spec = report_spec(SECTIONS, {"sub-01": "sub-01"})["sections"]
    assert [s["name"] for s in spec] == [s.heading for s in SECTIONS]
    assert [[r.get("title") for r in s["reportlets"]] for s in spec if s["name"] != "Participants"
            ] == [[s.title] for s in SECTIONS if s != PARTICIPANTS]


def test_the_registry_alone_decides_the_reportlets_and_the_sections(tmp_path, monkeypatch):
    """A registry of a new section, the participants, a section with nothing to show and the
    summary, in that order: the new one gets its reportlet and its section first; the empty
    one is in the spec but writes no reportlet and is not on the page."""
    import yaml

    from anatcl_nipype.reports import assemble
    from anatcl_nipype.reports.sections import PARTICIPANTS, ReportSection, summary_fragment

    registry = (
        ReportSection("notes", "Notes", lambda context: f"<p>{len(context.folder.encoded)} "
                                                        "encoded</p>", "A new section"),
        PARTICIPANTS,
        ReportSection("nothing", "Nothing", lambda context: ""),
        ReportSection("summary", "Summary", summary_fragment))
    monkeypatch.setattr(assemble, "SECTIONS", registry)
    rng = np.random.default_rng(6)
    out = tmp_path / "out"
    for label in ("sub-01", "sub-02"):
        write_embedding(out / label / "anat", label, rng.normal(size=512),
                        tmp_path / f"{label}.nii.gz")
    page = assemble.build_report(out, work_dir=tmp_path / "work").read_text()
    reportlets = tmp_path / "work" / "reportlets"
    assert sorted(p.name for p in (reportlets / "figures").iterdir()) == [
        "desc-notes_T1w.html", "desc-summary_T1w.html"]
    spec = yaml.safe_load((reportlets / "report.yml").read_text())
    assert [s["name"] for s in spec["sections"]] == ["Notes", "Participants", "Nothing",
                                                     "Summary"]
    assert re.findall(r"<h2>([^<]*)</h2>", page) == ["Notes", "Participants", "Summary"]
    assert "<h3>A new section</h3>" in page and "<p>2 encoded</p>" in page


def test_a_large_cohort_has_its_panels_on_pages_linked_from_the_index(tmp_path, monkeypatch):
    """Beyond PAGE_SIZE participants the panels go on pages; the index keeps the QC table
    (sortable, each row linked to its panel); a smaller rerun removes the pages."""
    from anatcl_nipype.reports import assemble

    monkeypatch.setattr(assemble, "PAGE_SIZE", 2)
    rng = np.random.default_rng(4)
    out = tmp_path / "out"
    labels = [f"sub-{i:02d}" for i in range(1, 6)]
    for label in labels:
        write_embedding(out / label / "anat", label, rng.normal(size=512),
                        tmp_path / f"{label}.nii.gz")
    page = assemble.build_report(out)
    index = page.read_text()
    assert 'class="participant' not in index
    assert '<table class="sortable">' in index
    expected = {"sub-01": 1, "sub-02": 1, "sub-03": 2, "sub-04": 2, "sub-05": 3}
    assert re.findall(r'<a href="(participants-\d\.html)#(sub-\d\d)">', index) == [
        (f"participants-{k}.html", label) for label, k in expected.items()]
    pages = sorted(p.name for p in page.parent.glob("participants-*.html"))
    assert pages == ["participants-1.html", "participants-2.html", "participants-3.html"]
    for number in (1, 2, 3):
        html = (page.parent / f"participants-{number}.html").read_text()
        shown = re.findall(r'<div class="participant[^"]*" id="([^"]+)"', html)
        assert shown == [label for label, k in expected.items() if k == number]
        assert ('href="participants-2.html">next page' in html) == (number == 1)
        assert ('href="participants-2.html">previous page' in html) == (number == 3)
        assert 'href="report.html">the report' in html
    shutil.rmtree(out / "sub-05")
    shutil.rmtree(out / "sub-04")
    shutil.rmtree(out / "sub-03")
    index = assemble.build_report(out).read_text()
    assert re.findall(r'<div class="participant[^"]*" id="([^"]+)"', index) == labels[:2]
    assert list(page.parent.glob("participants-*.html")) == []


@pytest.mark.slow
def test_the_quality_control_table_sorts_by_a_click_in_chromium(tmp_path):
    """A click on "outlier z" sorts the rows by its numbers (not as text), a second click
    reverses them; "participant" sorts as text."""
    from selenium.webdriver.common.by import By

    from anatcl_nipype.reports.assemble import build_report

    rng = np.random.default_rng(5)
    out = tmp_path / "out"
    labels = [f"sub-{i:02d}" for i in range(1, 8)]
    for label, scale in zip(labels, (1, 1, 9, 1, 30, 1, 3)):
        write_embedding(out / label / "anat", label, rng.normal(size=512) * scale,
                        tmp_path / f"{label}.nii.gz")
    page = build_report(out)
    column = ("return Array.from(document.querySelectorAll('table.sortable tr')).slice(1)"
              ".map(r => r.cells[{}].textContent)")
    driver = _chromium(1280)
    try:
        driver.get(page.as_uri())
        headers = driver.find_elements(By.CSS_SELECTOR, "table.sortable th")
        participant, outlier = headers[0], headers[7]
        assert outlier.text == "outlier z"
        shown = [float(z) for z in driver.execute_script(column.format(7))]
        assert shown != sorted(shown)  # listed by participant at first
        outlier.click()
        assert [float(z) for z in driver.execute_script(column.format(7))] == sorted(shown)
        assert outlier.get_attribute("aria-sort") == "ascending"
        outlier.click()
        assert [float(z) for z in driver.execute_script(column.format(7))] == sorted(
            shown, reverse=True)
        participant.click()
        assert driver.execute_script(column.format(0)) == labels
        assert outlier.get_attribute("aria-sort") is None
    finally:
        driver.quit()
