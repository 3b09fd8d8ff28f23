"""One id per scan whatever the file: CAT12 output kinds, non-BIDS and non-ASCII names,
long labels (bounded, run through MultiProc), symbolic links to folders."""

import os
import re
import shutil

import pytest
from nipype.pipeline import engine as pe

from anatcl_nipype.bids import participant_id_from_path, participant_id_with_note, unnamed_id
from anatcl_nipype.cli.participant import failures_by_scan
from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.inputs import discover_cat12
from anatcl_nipype.regional.tables import read_measures_tsv
from anatcl_nipype.workflows.base import scan_of_branch, single_subject_wf_name
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf

IXI = "IXI002-Guys-0828-T1"
BIDS_ID = re.compile(r"^sub-[A-Za-z0-9]+$")


def touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=2)


def renamed_subject(cohort, folder, stem):
    """Cohort subject 1's CAT12 files (map, ROI and report XML) renamed after ``stem``."""
    for source, kind, prefix, extension in (
            (cohort.gm_map("sub-01"), "mri", "mwp1", ".nii"),
            (cohort.roi_xml("sub-01"), "label", "catROI_", ".xml"),
            (cohort.surface_roi_xml("sub-01"), "label", "catROIs_", ".xml"),
            (cohort.report_xml("sub-01"), "report", "cat_", ".xml")):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / kind / f"{prefix}{stem}{extension}")
    return folder


def test_every_cat12_output_kind_of_a_non_bids_scan_gives_one_id(tmp_path):
    names = [f"mri/{prefix}{IXI}{ext}" for prefix in ("mwp1", "mwp2", "wm", "p0", "p1", "p2",
                                                      "m", "wp1")
             for ext in (".nii", ".nii.gz")]
    names += [f"label/catROI_{IXI}.xml", f"label/catROIs_{IXI}.xml", f"label/catROI_{IXI}",
              f"report/cat_{IXI}.xml", f"report/cat_{IXI}", f"report/catlog_{IXI}.txt"]
    assert {participant_id_from_path(tmp_path / "s" / name) for name in names} == \
        {"sub-IXI002Guys0828T1"}
    bids = {participant_id_from_path(tmp_path / name) for name in (
        "mri/mwp1sub-07_ses-2_T1w.nii", "label/catROIs_sub-07_ses-2_T1w.xml",
        "report/cat_sub-07_ses-2_T1w.xml", "mri/p1sub-07_ses-2_T1w.nii")}
    assert bids == {"sub-07"}


def test_regional_rows_of_a_non_bids_scan_match_its_map(tmp_path, cohort):
    """The issue's case: catROI_<name>.xml and mri/mwp1<name>.nii gave two rows."""
    folder = renamed_subject(cohort, tmp_path / "cat12" / "scan1", IXI)
    (subject,) = discover_cat12(tmp_path / "cat12").subjects
    assert subject.participant_id == "sub-IXI002Guys0828T1" and subject.id_note is None
    assert subject.label_roi == folder / "label" / f"catROI_{IXI}.xml"
    workflow = pe.Workflow("ids", base_dir=str(tmp_path / "work"))
    regional = init_anatcl_regional_wf()
    regional.inputs.inputnode.label_roi = str(subject.label_roi)
    regional.inputs.inputnode.label_rois = str(subject.label_rois)
    regional.inputs.inputnode.report = str(subject.report)
    workflow.add_nodes([regional])
    result = workflow.run()
    (merge,) = [node for node in result.nodes() if node.name == "merge_regional"]
    ids, columns, _ = read_measures_tsv(merge.result.outputs.out_tsv)
    assert ids == ["sub-IXI002Guys0828T1"] and "cat12_TIV" in columns


def test_non_ascii_names_are_transliterated_or_hashed_and_noted(tmp_path):
    jose = participant_id_with_note(tmp_path / "mri" / "mwp1José_Müller.nii")
    assert jose == ("sub-JoseMuller",
                    "participant id transliterated from the file name stem José_Müller")
    first, note = participant_id_with_note(tmp_path / "mri" / "mwp1张三.nii")
    second, _ = participant_id_with_note(tmp_path / "other" / "mri" / "mwp1李四.nii")
    assert BIDS_ID.match(first) and BIDS_ID.match(second) and first != second
    assert first == participant_id_from_path(tmp_path / "label" / "catROI_张三.xml")
    assert note == "participant id hashed from the file name stem 张三"
    mixed, note = participant_id_with_note(tmp_path / "mri" / "mwp1Ωmega7.nii")
    assert mixed.startswith("sub-mega7h") and note.startswith("participant id hashed")


def test_discovery_notes_the_id_and_the_sidecar_says_so(tmp_path):
    touch(tmp_path / "a" / "mri" / "mwp1Zoë.nii")
    (subject,) = discover_cat12(tmp_path).subjects
    assert subject.participant_id == "sub-Zoe"
    assert subject.as_inputs()["id_note"] == ("participant id transliterated from the file "
                                              "name stem Zoë")
    from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf

    derivatives = init_anatcl_derivatives_wf(output_dir=tmp_path / "out",
                                             id_note=subject.id_note)
    note = derivatives.get_node("note_embedding_json")
    sidecar = touch(tmp_path / "emb.json", '{"input": {"path": "x"}}')
    note.inputs.in_file = str(sidecar)
    note.base_dir = str(tmp_path / "work")
    written = note.run().outputs.embedding_json
    assert open(written).read().count('"ParticipantIdSource": "participant id transliterated')
    plain = init_anatcl_derivatives_wf(output_dir=tmp_path / "out")
    assert "note_embedding_json" not in plain.list_node_names()


def test_a_map_that_gives_no_id_is_a_failure_naming_the_file(tmp_path):
    good = touch(tmp_path / "s1" / "mri" / "mwp1sub-01_T1w.nii")
    bad = touch(tmp_path / "s2" / "mri" / "mwp1_-_.nii")
    with pytest.raises(AnatCLError, match=re.escape(f"{bad}: no participant id can be made")):
        participant_id_from_path(bad)
    discovery = discover_cat12(tmp_path)
    assert [s.gm_modulated for s in discovery.subjects] == [good]
    assert discovery.unusable == [(bad, "no participant id can be made from this file name "
                                        "(no letters or digits in it); rename the scan (e.g. "
                                        "sub-01_T1w.nii) or pass participant ids explicitly")]
    failures = failures_by_scan({}, discovery.subjects, discovery.unusable)
    assert failures == {unnamed_id(bad): (bad, discovery.unusable[0][1])}
    assert BIDS_ID.match(unnamed_id(bad))


def test_failures_keyed_by_node_names_are_traced_to_the_scan_and_its_map(tmp_path):
    touch(tmp_path / "sub-01" / "ses-1" / "anat" / "mri" / "mwp1sub-01_ses-1_T1w.nii")
    long = touch(tmp_path / "x" / "mri" / f"mwp1{'a' * 240}.nii")
    subjects = discover_cat12(tmp_path).subjects
    by_node = {
        "anatcl_participant_wf.single_subject_01_ses_1_wf.anatcl_encoding_wf.anatcl_encode":
            "the map is empty",
        f"anatcl_participant_wf.{single_subject_wf_name(subjects[1].as_inputs())}.x": "bad"}
    failures = failures_by_scan(by_node, subjects)
    assert failures == {"sub-01_ses-1": (subjects[0].gm_modulated, "the map is empty"),
                        subjects[1].participant_id: (long, "bad")}
    assert scan_of_branch("anatcl_group_wf.fit_probe") is None


def test_long_labels_are_bounded(tmp_path):
    pid, note = participant_id_with_note(tmp_path / "mri" / f"mwp1{'b' * 240}.nii")
    assert len(pid) == 68 and BIDS_ID.match(pid) and note.startswith("participant id shortened")
    assert pid != participant_id_from_path(tmp_path / "mri" / f"mwp1{'b' * 239}c.nii")
    bids, note = participant_id_with_note(tmp_path / "mri" / f"mwp1sub-{'c' * 240}_T1w.nii")
    assert len(bids) == 68 and note == f"participant id shortened from sub-{'c' * 240}"
    name = single_subject_wf_name({"participant_id": "sub-" + "d" * 240,
                                   "session_id": "ses-" + "e" * 200})
    assert len(name) < 100 and scan_of_branch(name).startswith("sub-ddd")


def test_a_240_character_label_runs_through_multiproc_to_completion(tmp_path, cohort):
    stem = "L" * 240  # catROI_<stem>.xml is 251 bytes: at the limit of a file name
    renamed_subject(cohort, tmp_path / "cat12" / "scan", stem)
    (subject,) = discover_cat12(tmp_path / "cat12").subjects
    assert len(subject.participant_id) == 68
    parent = pe.Workflow("anatcl_participant_wf", base_dir=str(tmp_path / "work"))
    branch = pe.Workflow(single_subject_wf_name(subject.as_inputs()))
    regional = init_anatcl_regional_wf()
    regional.inputs.inputnode.label_roi = str(subject.label_roi)
    regional.inputs.inputnode.report = str(subject.report)
    branch.add_nodes([regional])
    parent.add_nodes([branch])
    result = parent.run(plugin="MultiProc", plugin_args={"n_procs": 2})
    (merge,) = [node for node in result.nodes() if node.name == "merge_regional"]
    ids, _, _ = read_measures_tsv(merge.result.outputs.out_tsv)
    assert ids == [subject.participant_id]
    longest = max(len(os.fsencode(name)) for _, folders, files in os.walk(tmp_path / "work")
                  for name in folders + files)
    assert longest < 255


def test_symlinked_folders_are_followed_once_and_empty_ones_explained(tmp_path):
    store, cat12 = tmp_path / "store", tmp_path / "cat12"
    touch(store / "s3" / "mri" / "mwp1sub-03_T1w.nii")
    touch(cat12 / "s1" / "mri" / "mwp1sub-01_T1w.nii")
    touch(cat12 / "s2" / "mri" / "mwp1sub-02_T1w.nii")
    (cat12 / "s3").symlink_to(store / "s3", target_is_directory=True)
    (cat12 / "s1" / "loop").symlink_to(cat12, target_is_directory=True)  # a link loop
    (cat12 / "t3").symlink_to(store / "s3", target_is_directory=True)  # after s3 by name
    (cat12 / "broken").symlink_to(tmp_path / "absent")
    touch(cat12 / "s4" / "mri" / "p1sub-04_T1w.nii")
    (cat12 / "s5").mkdir()
    touch(cat12 / "atlas" / "atlas-synthetic_dseg.nii.gz")  # not a subject: not reported
    discovery = discover_cat12(cat12)
    assert [s.participant_id for s in discovery.subjects] == ["sub-01", "sub-02", "sub-03"]
    assert discovery.subjects[2].gm_modulated == cat12 / "s3" / "mri" / "mwp1sub-03_T1w.nii"
    assert discovery.describe() == [
        "Found 3 grey-matter map(s) (mri/mwp1*.nii) for 3 scan(s)",
        f"  {cat12 / 'broken'}: a broken symbolic link",
        f"  {cat12 / 's4'}: no mwp1*.nii grey-matter map in mri/ (found p1sub-04_T1w.nii)",
        f"  {cat12 / 's5'}: no mri/ folder with CAT12 outputs",
        f"  {cat12 / 't3'}: the same folder as another one (a symbolic link), read once"]
