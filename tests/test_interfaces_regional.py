"""Regional interfaces as Nipype nodes: exact values from cohort files, sidecars, clear crashes."""

import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype import Node

from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.regional import (
    AtlasGMVolumes,
    CAT12ROIMeasures,
    FreeSurferAparcMeasures,
    MergeRegionalTables,
    RegionPooledFeatures,
)
from anatcl_nipype.regional import (
    atlas_gm_volumes,
    measures_to_row,
    read_aparc_pair,
    read_cat12_report,
    read_cat12_roi_xml,
    read_measures_tsv,
)
from anatcl_nipype.regional.pooled import region_pooled_features

FREESURFER = Path(__file__).parent / "data" / "freesurfer"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=2)


def _run(interface, folder):
    return Node(interface, name="node", base_dir=str(folder)).run().outputs


def _table(path):
    """{column: value} of a one-row table, and its participant id."""
    ids, columns, values = read_measures_tsv(path)
    assert len(ids) == 1
    return ids[0], dict(zip(columns, values[0].tolist()))


def _assert_same_values(row, expected):
    assert list(row) == list(expected)
    for column, value in expected.items():
        assert row[column] == value or (math.isnan(row[column]) and math.isnan(value)), column


def _crash_message(interface, folder):
    with pytest.raises(Exception) as error:
        Node(interface, name="node", base_dir=str(folder)).run()
    return str(error.value)


def test_cat12_roi_measures_row_equals_the_readers(cohort, tmp_path):
    files = {"label_roi": cohort.roi_xml("sub-02"), "label_rois": cohort.surface_roi_xml("sub-02"),
             "report": cohort.report_xml("sub-02")}
    outputs = _run(CAT12ROIMeasures(**{k: str(v) for k, v in files.items()}), tmp_path)
    assert Path(outputs.out_tsv).name == "sub-02_cat12rois.tsv"
    participant_id, row = _table(outputs.out_tsv)
    report = read_cat12_report(files["report"])
    atlases = [*read_cat12_roi_xml(files["label_roi"]).values(),
               *read_cat12_roi_xml(files["label_rois"]).values()]
    expected = measures_to_row(atlases)
    expected.update(cat12_TIV=report["tiv_cm3"], cat12_IQR=report["quality_ratings"]["IQR"],
                    **{f"cat12_vol_abs_{k}": v for k, v in report["abs_volumes_cm3"].items()})
    assert participant_id == "sub-02"
    _assert_same_values(row, expected)
    assert len(row) == 34 * 3 + 72 + 2 + 5
    assert math.isnan(row["aparc_DK40_lunknown_thickness"])
    sidecar = json.loads(Path(outputs.out_json).read_text())
    assert sidecar["Sources"] == [{"path": str(Path(f).resolve()), "sha256": sha256_file(f)}
                                  for f in files.values()]
    assert sidecar["GeneratedBy"][0]["Interface"] == "CAT12ROIMeasures"
    assert sidecar["synthetic_lPrecuneus_Vgm"] == {
        "Atlas": "synthetic", "RegionID": 25, "RegionName": "lPrecuneus", "Measure": "Vgm",
        "Units": "cm3", "Description": "grey-matter volume (Vgm) of region lPrecuneus (id 25) "
                                       "of atlas synthetic"}
    assert sidecar["cat12_TIV"]["Units"] == "cm3"
    assert sidecar["participant_id"]["Sources"]["sub-02"] == sorted(
        str(files[k]) for k in ("label_roi", "label_rois"))


def test_cat12_roi_measures_keeps_chosen_atlases_and_measures(cohort, tmp_path):
    outputs = _run(CAT12ROIMeasures(label_roi=str(cohort.roi_xml("sub-01")),
                                    atlases=["synthetic"], measures=["Vgm"],
                                    participant_id="sub-01_ses-1"), tmp_path)
    participant_id, row = _table(outputs.out_tsv)
    synthetic = read_cat12_roi_xml(cohort.roi_xml("sub-01"))["synthetic"]
    assert participant_id == "sub-01_ses-1"
    assert list(row) == [f"synthetic_{name}_Vgm" for name in synthetic.names]
    assert list(row.values()) == synthetic.measures["Vgm"].tolist()


def test_cat12_roi_measures_refuses_missing_atlases_and_no_input(cohort, tmp_path):
    roi = cohort.roi_xml("sub-01")
    message = _crash_message(CAT12ROIMeasures(label_roi=str(roi), atlases=["neuromorphometrics"]),
                             tmp_path / "a")
    assert f"atlas(es) neuromorphometrics not found in {roi}; found: synthetic" in message
    message = _crash_message(CAT12ROIMeasures(participant_id="sub-01"), tmp_path / "b")
    assert "CAT12ROIMeasures: no input file; connect label_roi" in message


@pytest.mark.parametrize("field, text, expected", [
    ("label_roi", "<S><synthetic><data><Vgm>[1;2]</Vgm></data>", "malformed XML"),
    ("label_roi", "<html><body><p>catROI</p></body></html>", "not a CAT12 ROI file"),
    ("report", "<S><qualityratings><IQR>2.1</IQR></qualityratings></S>",
     "no subjectmeasures/vol_TIV; not a CAT12 report"),
    ("label_rois", "<S><aparc_DK40><data><thickness>[2.5;2.6;2.7]</thickness></data>"
                   "<ids>[1;2]</ids><names><item>a</item><item>b</item></names>"
                   "</aparc_DK40></S>", "'thickness': 3 values for 2 regions"),
])
def test_bad_cat12_files_crash_with_the_file_named(tmp_path, field, text, expected):
    bad = tmp_path / "catROI_sub-03_T1w.xml"
    bad.write_text(text)
    message = _crash_message(CAT12ROIMeasures(**{field: str(bad)}), tmp_path / "work")
    assert f"{bad}: " in message and expected in message


def test_freesurfer_aparc_measures_triplet_first(tmp_path):
    stats = tmp_path / "freesurfer" / "sub-07" / "stats"
    stats.mkdir(parents=True)
    for hemi in ("lh", "rh"):
        shutil.copy(FREESURFER / f"{hemi}.aparc.stats", stats)
    outputs = _run(FreeSurferAparcMeasures(lh_stats=str(stats / "lh.aparc.stats"),
                                           rh_stats=str(stats / "rh.aparc.stats")),
                   tmp_path / "work")
    participant_id, row = _table(outputs.out_tsv)
    parcellation = read_aparc_pair(stats / "lh.aparc.stats", stats / "rh.aparc.stats")
    order = ["ThickAvg", "GrayVol", "SurfArea", "NumVert", "ThickStd", "MeanCurv", "GausCurv",
             "FoldInd", "CurvInd"]
    assert participant_id == "sub-07"
    _assert_same_values(row, measures_to_row([parcellation], order))
    assert list(row)[:4] == ["aparc_lhbankssts_ThickAvg", "aparc_lhbankssts_GrayVol",
                             "aparc_lhbankssts_SurfArea", "aparc_lhbankssts_NumVert"]
    assert row["aparc_rhinsula_ThickAvg"] == 3.201 and row["aparc_lhinsula_GrayVol"] == 7030.0
    sidecar = json.loads(Path(outputs.out_json).read_text())
    assert sidecar["aparc_lhinsula_GrayVol"]["Units"] == "mm3"
    assert sidecar["aparc_rhinsula_ThickAvg"]["RegionID"] == 2035


def test_freesurfer_stats_without_thickness_crash_with_the_file_named(tmp_path):
    lh = FREESURFER / "lh.aparc.nothick.stats"
    message = _crash_message(FreeSurferAparcMeasures(lh_stats=str(lh),
                                                     rh_stats=str(FREESURFER / "rh.aparc.stats"),
                                                     participant_id="sub-01"), tmp_path)
    assert f"{lh}: missing column(s) ThickAvg" in message


def test_atlas_gm_volumes_equal_the_science_function(cohort, tmp_path):
    outputs = _run(AtlasGMVolumes(gm_modulated=str(cohort.gm_map("sub-01")),
                                  atlas=str(cohort.atlas_image),
                                  label_table=str(cohort.atlas_table),
                                  atlas_name="boxes"), tmp_path)
    assert Path(outputs.out_tsv).name == "sub-01_atlas-boxes_gmvolumes.tsv"
    participant_id, row = _table(outputs.out_tsv)
    volumes = atlas_gm_volumes(cohort.gm_map("sub-01"), cohort.atlas_image, cohort.atlas_table,
                               atlas_name="boxes")
    assert participant_id == "sub-01"
    _assert_same_values(row, measures_to_row([volumes]))
    assert list(row)[:2] == ["boxes_lCerebellum_Vgm", "boxes_lCerebellum_mean_gm"]
    synthetic = read_cat12_roi_xml(cohort.roi_xml("sub-01"))["synthetic"]
    np.testing.assert_allclose([row[f"boxes_{n}_Vgm"] for n in synthetic.names],
                               synthetic.measures["Vgm"], rtol=1e-13)
    sources = json.loads(Path(outputs.out_json).read_text())["Sources"]
    assert [s["sha256"] for s in sources] == [sha256_file(f) for f in (
        cohort.gm_map("sub-01"), cohort.atlas_image, cohort.atlas_table)]


def test_atlas_of_another_shape_crashes_with_the_file_named(cohort, tmp_path):
    atlas = tmp_path / "atlas-small_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((91, 109, 91), np.int16), np.diag([2.0, 2, 2, 1])), atlas)
    message = _crash_message(AtlasGMVolumes(gm_modulated=str(cohort.gm_map("sub-01")),
                                            atlas=str(atlas)), tmp_path / "work")
    assert f"{atlas}: the atlas is on another grid (shape (91, 109, 91)" in message
    assert "pass resample=True" in message


@pytest.mark.slow
def test_region_pooled_features_node_equals_the_science_function(cohort, random_weights, tmp_path):
    interface = RegionPooledFeatures(weights=str(random_weights),
                                     gm_modulated=str(cohort.gm_map("sub-02")),
                                     atlas=str(cohort.atlas_image),
                                     label_table=str(cohort.atlas_table), layers=["layer4"])
    outputs = _run(interface, tmp_path)
    expected = region_pooled_features(AnatCLEncoder(weights=random_weights),
                                      cohort.gm_map("sub-02"), cohort.atlas_image,
                                      cohort.atlas_table, layers=["layer4"])
    assert [Path(f).name for f in outputs.out_features] == [
        "sub-02_atlas-atlas-synthetic_dseg_layer4.npy"]
    np.testing.assert_array_equal(np.load(outputs.out_features[0]), expected.features["layer4"])
    assert Path(outputs.out_regions).read_text().splitlines()[1].startswith("1\tlCerebellum\t")
    participant_id, row = _table(outputs.out_tsv)
    assert participant_id == "sub-02" and len(row) == 34
    assert row["atlas-synthetic_dseg_rOccipital_anatcl_layer4"] == pytest.approx(
        float(expected.features["layer4"][-1].mean(dtype=np.float64)), rel=1e-12)
    sidecar = json.loads(Path(outputs.out_json).read_text())
    assert sidecar["AnatCL"]["weights"]["sha256"] == sha256_file(random_weights)
    assert sidecar["AnatCL"]["features"]["Description"].startswith("EXPLORATORY")
    assert sidecar["AnatCL"]["features"]["Layers"]["layer4"] == {
        "stride": 32, "shape": [34, 512], "empty_regions": 0}
    message = _crash_message(RegionPooledFeatures(weights=str(random_weights), use_head=True,
                                                  gm_modulated=str(cohort.gm_map("sub-02")),
                                                  atlas=str(cohort.atlas_image)), tmp_path / "b")
    assert "use_head does not apply" in message


def _one_row(folder, participant_id, row):
    from anatcl_nipype.regional import write_measures_tsv

    folder.mkdir(parents=True, exist_ok=True)
    return write_measures_tsv({participant_id: row}, folder / f"{participant_id}.tsv",
                              extra_sidecar={"Sources": [{"path": participant_id}]})


def test_merge_joins_by_participant_and_keeps_every_column(tmp_path):
    a1 = _one_row(tmp_path / "cat12", "sub-01", {"x_r1_Vgm": 1.5, "x_r2_Vgm": 2.5})
    a2 = _one_row(tmp_path / "cat12", "sub-02", {"x_r1_Vgm": 1.25})
    b1 = _one_row(tmp_path / "atlas", "sub-01", {"y_r1_Vgm": 9.0, "x_r1_Vgm": 1.5})
    outputs = _run(MergeRegionalTables(in_files=[str(a1[0]), str(a2[0]), str(b1[0])],
                                       in_jsons=[str(a1[1]), str(a2[1]), str(b1[1])],
                                       out_name="group"), tmp_path / "work")
    assert Path(outputs.out_tsv).name == "group.tsv"
    assert Path(outputs.out_tsv).read_text().splitlines() == [
        "participant_id\tx_r1_Vgm\tx_r2_Vgm\ty_r1_Vgm",
        "sub-01\t1.5\t2.5\t9.0",
        "sub-02\t1.25\tn/a\tn/a",
    ]
    sidecar = json.loads(Path(outputs.out_json).read_text())
    assert sidecar["Sources"] == [{"path": "sub-01"}, {"path": "sub-02"}]
    assert set(sidecar) == {"participant_id", "Sources", "x_r1_Vgm", "x_r2_Vgm", "y_r1_Vgm"}


def test_merge_refuses_two_values_for_one_participant(tmp_path):
    first = _one_row(tmp_path / "a", "sub-01", {"x_r1_Vgm": 1.5})[0]
    second = _one_row(tmp_path / "b", "sub-01", {"x_r1_Vgm": 1.75})[0]
    message = _crash_message(MergeRegionalTables(in_files=[str(first), str(second)]),
                             tmp_path / "work")
    assert f"{second}: x_r1_Vgm of sub-01 is 1.75, but {first} gives 1.5" in message
