"""JoinEmbeddings names each session's row by default, as the group workflow's users need."""

from test_interfaces_prediction import read_tsv, run_node, write_embedding

from anatcl_nipype.interfaces.prediction import JoinEmbeddings


def test_two_sessions_of_one_participant_are_two_rows_without_participant_ids(tmp_path):
    files = [write_embedding(tmp_path, f"s{i}", [float(i), 1.0],
                             input_path=f"/d/sub-01/ses-{s}/anat/mri/mwp1sub-01_ses-{s}_T1w.nii")
             for i, s in enumerate(("bl", "m12"))]
    files.append(write_embedding(tmp_path, "sub-02_ses-bl_T1w", [5.0, 6.0]))  # file name only
    files.append(write_embedding(tmp_path, "x", [7.0, 8.0],  # session from the folder only
                                 input_path="/d/sub-03/ses-2/mri/mwp1scan.nii"))
    outputs = run_node(JoinEmbeddings(in_files=files), tmp_path / "work")
    expected = ["sub-01_ses-bl", "sub-01_ses-m12", "sub-02_ses-bl", "sub-03_ses-2"]
    assert outputs.participant_ids == expected
    rows = read_tsv(outputs.out_tsv)
    assert [row["participant_id"] for row in rows] == expected
    assert [row["emb_000"] for row in rows] == ["0", "1", "5", "7"]
