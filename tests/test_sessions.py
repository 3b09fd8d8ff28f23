"""Longitudinal studies: sessions in both CAT12 layouts, one embedding and one regional row
per session, labels from sessions.tsv, folds grouped by participant, --session-label and
--reports-only on the command line."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from nipype.pipeline import engine as pe

from anatcl_nipype.bids import bids_source_for
from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.inputs import discover_cat12, find_cat12_subjects
from anatcl_nipype.prediction.features import read_features_tsv
from anatcl_nipype.prediction.labels import load_labels
from anatcl_nipype.prediction.study import fit_probe_study
from anatcl_nipype.workflows.base import init_anatcl_participant_wf
from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf
from anatcl_nipype.workflows.group import init_anatcl_group_wf
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf

SESSIONS = ("1", "2")


def touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read_tsv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=2)


def copy_scan(cohort, subject, anat, name):
    """Cohort ``subject``'s map, ROI XML and report, into ``anat/{mri,label,report}``
    named after the scan ``name`` (CAT12's prefixes added)."""
    for source, kind, prefix, extension in (
            (cohort.gm_map(subject), "mri", "mwp1", ".nii"),
            (cohort.roi_xml(subject), "label", "catROI_", ".xml"),
            (cohort.report_xml(subject), "report", "cat_", ".xml")):
        (anat / kind).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, anat / kind / f"{prefix}{name}{extension}")
    return anat / "mri" / f"mwp1{name}.nii"


@pytest.fixture(scope="module")
def bids_sessions(cohort, tmp_path_factory):
    """derivatives/CAT12.9/sub-<l>/ses-<s>/anat/{mri,label,report}, 2 subjects x 2 sessions,
    with participants.tsv (no age) and sessions.tsv (age per visit)."""
    root = tmp_path_factory.mktemp("bids")
    for subject in cohort.subjects:
        for session in SESSIONS:
            copy_scan(cohort, subject, root / "derivatives" / "CAT12.9" / subject /
                      f"ses-{session}" / "anat", f"{subject}_ses-{session}_T1w")
        touch(root / subject / f"{subject}_sessions.tsv",
              f"session_id\tage\nses-1\t7{subject[-1]}\nses-2\t7{int(subject[-1]) + 2}\n")
    touch(root / "participants.tsv", "participant_id\tdiagnosis\nsub-01\tAD\nsub-02\tCN\n")
    touch(root / "sub-01" / "anat" / "sub-01_T1w.nii")  # raw data beside: not a CAT12 folder
    return root


def test_bids_layout_gives_one_scan_per_session_with_its_files(bids_sessions):
    discovery = discover_cat12(bids_sessions)
    assert [s.scan_id for s in discovery.subjects] == [
        "sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1", "sub-02_ses-2"]
    assert discovery.describe() == ["Found 4 grey-matter map(s) (mri/mwp1*.nii) for 4 scan(s)"]
    scan = discovery.subjects[1]
    anat = bids_sessions / "derivatives" / "CAT12.9" / "sub-01" / "ses-2" / "anat"
    assert scan.as_inputs() == {
        "participant_id": "sub-01", "session_id": "ses-2",
        "gm_modulated": str(anat / "mri" / "mwp1sub-01_ses-2_T1w.nii"),
        "label_roi": str(anat / "label" / "catROI_sub-01_ses-2_T1w.xml"),
        "report": str(anat / "report" / "cat_sub-01_ses-2_T1w.xml")}
    chosen = find_cat12_subjects(bids_sessions, ["02"], ["ses-2"])
    assert [s.scan_id for s in chosen] == ["sub-02_ses-2"]
    with pytest.raises(AnatCLError, match="no CAT12 maps for ses-3; found: ses-1, ses-2"):
        find_cat12_subjects(bids_sessions, session_labels=["3"])


def test_plain_layout_with_one_folder_per_scan(tmp_path):
    touch(tmp_path / "sub-01_ses-bl" / "mri" / "mwp1sub-01_ses-bl_T1w.nii")
    touch(tmp_path / "sub-01_ses-m12" / "mri" / "mwp1sub-01_ses-m12_T1w.nii")
    touch(tmp_path / "sub-02" / "ses-bl" / "mri" / "mwp1scan.nii")  # sessions as folders
    scans = find_cat12_subjects(tmp_path)
    assert [(s.participant_id, s.session_id) for s in scans] == [
        ("sub-01", "ses-bl"), ("sub-01", "ses-m12"), ("sub-02", "ses-bl")]
    touch(tmp_path / "copy" / "mri" / "mwp1sub-01_ses-bl_T1w.nii")
    with pytest.raises(AnatCLError, match="two grey-matter maps for sub-01_ses-bl"):
        find_cat12_subjects(tmp_path)


def test_derivatives_of_a_session_go_under_its_folder_with_its_entity(tmp_path):
    assert bids_source_for("sub-02", "ses-bl", tmp_path / "sub-02/ses-bl/mri/mwp1scan.nii") == \
        "sub-02/ses-bl/anat/sub-02_ses-bl_T1w.nii"
    workflow = init_anatcl_participant_wf(subjects=[
        {"participant_id": "sub-01", "session_id": "ses-2",
         "gm_modulated": "/d/sub-01/ses-2/anat/mri/mwp1sub-01_ses-2_T1w.nii",
         "label_roi": "/d/sub-01/ses-2/anat/label/catROI_sub-01_ses-2_T1w.xml"},
        {"participant_id": "sub-01", "gm_modulated": "/d/sub-01/mri/mwp1sub-01_T1w.nii"}],
        output_dir=tmp_path)
    branch = workflow.get_node("single_subject_01_ses_2_wf")
    assert branch.get_node("inputnode").inputs.source_file == \
        "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii"
    regional = branch.get_node("anatcl_regional_wf").get_node("inputnode")
    assert regional.inputs.participant_id == "sub-01_ses-2"
    assert workflow.get_node("single_subject_01_wf").get_node("inputnode").inputs.source_file \
        == "sub-01/anat/sub-01_T1w.nii"
    sinks = init_anatcl_derivatives_wf(output_dir=tmp_path / "out", name="ds")
    sinks.base_dir = str(tmp_path / "work")
    np.save(tmp_path / "e.npy", np.zeros(4, dtype=np.float32))
    sinks.inputs.inputnode.embedding = str(tmp_path / "e.npy")
    sinks.inputs.inputnode.embedding_json = str(touch(tmp_path / "e.json", "{}"))
    sinks.inputs.inputnode.source_file = "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii"
    sinks.run()
    anat = tmp_path / "out" / "sub-01" / "ses-2" / "anat"
    assert sorted(p.name for p in anat.iterdir()) == [
        "sub-01_ses-2_desc-anatclGlobalFold0_embedding.json",
        "sub-01_ses-2_desc-anatclGlobalFold0_embedding.npy"]


def test_one_regional_row_per_session_from_the_file_names(bids_sessions, tmp_path):
    workflow = pe.Workflow("sessions", base_dir=str(tmp_path / "work"))
    for scan in discover_cat12(bids_sessions).subjects[:2]:
        regional = init_anatcl_regional_wf(name=f"regional_{scan.session_id.replace('-', '')}")
        regional.inputs.inputnode.label_roi = str(scan.label_roi)  # no participant_id given
        regional.inputs.inputnode.report = str(scan.report)
        workflow.add_nodes([regional])
    result = workflow.run()
    tables = sorted(node.result.outputs.out_tsv for node in result.nodes()
                    if node.name == "merge_regional")
    rows = [read_tsv(table)[0]["participant_id"] for table in tables]
    assert rows == ["sub-01_ses-1", "sub-01_ses-2"]


def test_labels_per_session_come_from_sessions_tsv(bids_sessions):
    participants = bids_sessions / "participants.tsv"
    rows = ["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-2"]
    ages = load_labels(participants, "age", rows, "brain_age")
    assert ages.participant_ids == rows and ages.labels.tolist() == [71.0, 73.0, 74.0]
    assert load_labels(participants, "diagnosis", rows, "classification").labels.tolist() == \
        ["AD", "AD", "CN"]
    with pytest.raises(Exception, match="no column 'mmse'"):
        load_labels(participants, "mmse", rows, "regression")


def session_study(folder, n_subjects=10, n_sessions=3, seed=0):
    """Features tracking age (plus noise) for each session of ``n_subjects``, with their
    participants.tsv and sessions.tsv; returns the feature table."""
    rng = np.random.default_rng(seed)
    lines, participants = ["participant_id\tsession_id\tf1\tf2\tf3"], ["participant_id\tsex"]
    for number in range(1, n_subjects + 1):
        subject = f"sub-{number:02d}"
        participants.append(f"{subject}\t{'FM'[number % 2]}")
        ages = 60 + 2 * number + 2 * np.arange(n_sessions)
        touch(folder / subject / f"{subject}_sessions.tsv", "session_id\tage\n" + "".join(
            f"ses-{s + 1}\t{age}\n" for s, age in enumerate(ages)))
        for session, age in enumerate(ages, start=1):
            x = [age / 10 + rng.normal(0, 0.1), rng.normal(), number + rng.normal(0, 0.1)]
            lines.append(f"{subject}\tses-{session}\t" + "\t".join(f"{v:.4f}" for v in x))
    touch(folder / "participants.tsv", "\n".join(participants) + "\n")
    return touch(folder / "features.tsv", "\n".join(lines) + "\n")


@pytest.mark.slow
def test_brain_age_per_session_with_folds_grouped_by_participant(tmp_path):
    table = session_study(tmp_path)
    assert read_features_tsv(table).index[:2].tolist() == ["sub-01_ses-1", "sub-01_ses-2"]
    written = fit_probe_study([str(table)], tmp_path / "participants.tsv", "age", "auto",
                              str(tmp_path / "study"), cv=5)
    summary = json.loads(open(written["out_json"]).read())
    assert summary["task"] == "brain_age"
    assert summary["validation"]["group_column"] == "participant_id"
    predictions = read_tsv(written["predictions_tsv"])
    assert len(predictions) == 30
    folds = {}
    for row in predictions:
        folds.setdefault(row["participant_id"].split("_ses-")[0], set()).add(row["fold"])
    assert len(folds) == 10 and all(len(f) == 1 for f in folds.values())
    true = np.array([float(row["true"]) for row in predictions])
    predicted = np.array([float(row["predicted"]) for row in predictions])
    assert np.corrcoef(true, predicted)[0, 1] > 0.9  # the planted age signal, per session


@pytest.mark.slow
def test_group_tables_have_participant_and_session_columns(tmp_path):
    table = session_study(tmp_path, n_subjects=8, n_sessions=2)
    per_scan = []
    for row in read_tsv(table):  # one regional table per session, as the participant level
        scan = f"{row['participant_id']}_{row['session_id']}"
        per_scan.append(touch(tmp_path / "scans" / f"{scan}_desc-cat12_regions.tsv",
                              f"participant_id\tf1\tf2\n{scan}\t{row['f1']}\t{row['f2']}\n"))
    workflow = init_anatcl_group_wf(target="age", features="regional", cv=4,
                                    output_dir=tmp_path / "out")
    workflow.base_dir = str(tmp_path / "work")
    workflow.inputs.inputnode.regional_tsv = [str(p) for p in per_scan]
    workflow.inputs.inputnode.participants_tsv = str(tmp_path / "participants.tsv")
    workflow.run()
    group = tmp_path / "out" / "group" / "target-age"
    regional = read_tsv(group / "regional.tsv")
    assert list(regional[0])[:3] == ["participant_id", "session_id", "f1"]
    assert [(r["participant_id"], r["session_id"]) for r in regional[:3]] == [
        ("sub-01", "ses-1"), ("sub-01", "ses-2"), ("sub-02", "ses-1")]
    predictions = read_tsv(group / "predictions.tsv")
    assert list(predictions[0])[:2] == ["participant_id", "session_id"] and len(predictions) == 16


# --------------------------------------------------------------------------- the command


def anatcl_nipype(*args):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


def test_reports_only_needs_an_output_folder(tmp_path):
    (tmp_path / "in").mkdir()
    code, out, err = anatcl_nipype(tmp_path / "in", tmp_path / "absent", "participant",
                                   "--reports-only")
    assert code == 1 and "absent: no such output folder; --reports-only rebuilds" in err


@pytest.mark.slow
def test_sessions_through_the_command(bids_sessions, random_weights, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    code, stdout, err = anatcl_nipype(bids_sessions, out, "participant", "--weights",
                                      random_weights, "--session-label", "2", "--nprocs", "2",
                                      "-w", work)
    assert code == 0, err
    assert "Found 4 grey-matter map(s) (mri/mwp1*.nii) for 2 scan(s)" in stdout
    assert "Done: 2 of 2 scan(s) of 2 participant(s)" in stdout
    assert "sub-02_ses-2: anatcl_encode done" in stdout
    anat = out / "sub-01" / "ses-2" / "anat"
    assert sorted(p.name for p in anat.iterdir()) == [
        "sub-01_ses-2_desc-anatclRandom_embedding.json",
        "sub-01_ses-2_desc-anatclRandom_embedding.npy",
        "sub-01_ses-2_desc-cat12_regions.json", "sub-01_ses-2_desc-cat12_regions.tsv"]
    assert read_tsv(anat / "sub-01_ses-2_desc-cat12_regions.tsv")[0]["participant_id"] == \
        "sub-01_ses-2"
    assert not (out / "sub-01" / "ses-1").exists()
    report = out / "anatcl" / "report.html"
    embedding = anat / "sub-01_ses-2_desc-anatclRandom_embedding.npy"
    stamp = embedding.stat().st_mtime_ns
    report.unlink()
    code, stdout, err = anatcl_nipype(bids_sessions, out, "participant", "--reports-only",
                                      "-w", work)
    assert code == 0, err
    assert "nothing is recomputed" in stdout and report.is_file()
    assert embedding.stat().st_mtime_ns == stamp and "Encoding" not in stdout
