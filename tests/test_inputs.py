"""anatcl_nipype.inputs: CAT12 discovery, the one participants.tsv reader, the one sanitiser."""

import pytest

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.inputs import (
    bids_label,
    discover_cat12,
    find_cat12_subjects,
    find_participants_tsv,
    infer_task,
    read_column,
    read_tsv_rows,
)


def touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_plain_layout_with_label_and_report_files(tmp_path):
    gm = touch(tmp_path / "s2" / "mri" / "mwp1sub-02_T1w.nii")
    roi = touch(tmp_path / "s2" / "label" / "catROI_sub-02_T1w.xml")
    touch(tmp_path / "s1" / "mri" / "mwp1sub-01_T1w.nii.gz")
    subjects = find_cat12_subjects(tmp_path)
    assert [s.participant_id for s in subjects] == ["sub-01", "sub-02"]
    assert subjects[1].as_inputs() == {"participant_id": "sub-02", "gm_modulated": str(gm),
                                       "label_roi": str(roi)}
    assert subjects[1].session_id is None and subjects[0].report is None


def test_selection_and_duplicates_are_explained(tmp_path):
    touch(tmp_path / "a" / "mri" / "mwp1sub-01_T1w.nii")
    assert [s.participant_id for s in find_cat12_subjects(tmp_path, ["01"])] == ["sub-01"]
    with pytest.raises(AnatCLError, match="no CAT12 maps for sub-09; found: sub-01"):
        find_cat12_subjects(tmp_path, ["sub-09"])
    touch(tmp_path / "b" / "mri" / "mwp1sub-01_T1w.nii")
    with pytest.raises(AnatCLError, match="two grey-matter maps for sub-01"):
        find_cat12_subjects(tmp_path)


def test_participants_tsv_with_bom_and_crlf(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_bytes(b"\xef\xbb\xbfparticipant_id\tage\tdx\r\nsub-01\t61\tAD\r\nsub-02\tn/a\tCN\r\n")
    assert read_tsv_rows(path) == [{"participant_id": "sub-01", "age": "61", "dx": "AD"},
                                   {"participant_id": "sub-02", "age": "n/a", "dx": "CN"}]
    assert read_column(path, "age") == ["61", "n/a"]
    with pytest.raises(AnatCLError, match="no column 'mmse'; columns are participant_id, age, dx"):
        read_column(path, "mmse")
    assert infer_task("mmse", read_column(path, "age")) == "regression"
    assert infer_task("dx", read_column(path, "dx")) == "classification"


def test_participants_tsv_is_found_up_to_three_folders_above(tmp_path):
    touch(tmp_path / "participants.tsv", "participant_id\n")
    deep = tmp_path / "derivatives" / "cat12"
    assert find_participants_tsv(deep) == tmp_path / "participants.tsv"
    assert find_participants_tsv(tmp_path / "a" / "b" / "c" / "d") is None
    with pytest.raises(AnatCLError, match="absent.tsv: no such participants.tsv"):
        find_participants_tsv(deep, tmp_path / "absent.tsv")


def test_one_sanitiser_for_labels_and_targets():
    assert bids_label("MMSE score (baseline)") == "MMSEscorebaseline"
    assert bids_label("sub_01-a") == "sub01a" and bids_label("") == "x"


def test_one_subject_folder_reports_no_empty_folders(tmp_path):
    touch(tmp_path / "mri" / "mwp1sub-01_T1w.nii")
    touch(tmp_path / "label" / "catROI_sub-01_T1w.xml")
    touch(tmp_path / "report" / "cat_sub-01_T1w.xml")
    discovery = discover_cat12(tmp_path)
    assert discovery.describe() == ["Found 1 grey-matter map(s) (mri/mwp1*.nii) for 1 scan(s)"]
    assert discovery.subjects[0].label_roi == tmp_path / "label" / "catROI_sub-01_T1w.xml"


def test_a_map_named_for_another_participant_than_its_folder_is_warned_about(tmp_path):
    """cat12/sub-05/mri/mwp1sub-02_T1w.nii: the map's name wins, said with both names."""
    touch(tmp_path / "sub-01" / "mri" / "mwp1sub-01_T1w.nii")
    misfiled = tmp_path / "sub-05" / "mri" / "mwp1sub-02_T1w.nii"
    touch(misfiled)
    discovery = discover_cat12(tmp_path)
    why = ("the map is named for sub-02 but lies in the folder sub-05; read as sub-02 (rename "
           "the map or the folder if it belongs to sub-05)")
    assert discovery.misfiled == [(misfiled, why)]
    assert f"  {misfiled}: {why}" in discovery.describe()
    assert [(s.participant_id, s.id_note) for s in discovery.subjects] == [
        ("sub-01", None), ("sub-02", why)]  # the note goes into the outputs' sidecars
    with pytest.warns(UserWarning, match="named for sub-02 but lies in the folder sub-05"):
        find_cat12_subjects(tmp_path)
    with pytest.raises(AnatCLError, match=r"no CAT12 maps for sub-05; found: sub-01, sub-02; "
                                          rf"{misfiled}: the map is named for sub-02"):
        discover_cat12(tmp_path, ["05"])


def test_two_maps_claiming_one_participant_are_refused_naming_both(tmp_path):
    touch(tmp_path / "sub-02" / "mri" / "mwp1sub-02_T1w.nii")
    touch(tmp_path / "sub-05" / "mri" / "mwp1sub-02_T1w.nii")
    with pytest.raises(AnatCLError) as error:
        discover_cat12(tmp_path)
    assert str(error.value).startswith(
        f"two grey-matter maps for sub-02: {tmp_path / 'sub-02' / 'mri' / 'mwp1sub-02_T1w.nii'} "
        f"and {tmp_path / 'sub-05' / 'mri' / 'mwp1sub-02_T1w.nii'}; ")
    assert "a map's name, not its folder, gives its participant" in str(error.value)


def test_a_folder_and_a_map_that_agree_are_not_misfiled(tmp_path):
    touch(tmp_path / "derivatives" / "CAT12.9" / "sub-01" / "ses-1" / "anat" / "mri" /
          "mwp1sub-01_ses-1_T1w.nii")
    touch(tmp_path / "derivatives" / "CAT12.9" / "sub-02" / "anat" / "mri" / "mwp1scan.nii")
    discovery = discover_cat12(tmp_path)
    assert [s.scan_id for s in discovery.subjects] == ["sub-01_ses-1", "sub-02"]
    assert discovery.misfiled == []
