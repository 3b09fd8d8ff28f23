"""FreeSurfer aparc.stats reading: columns by header, hemisphere prefixes, pairs, errors."""

import os
from pathlib import Path

import pytest

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional import read_aparc_pair, read_aparc_stats

DATA = Path(__file__).parent / "data" / "freesurfer"
REGIONS = ("bankssts", "caudalanteriorcingulate", "entorhinal", "precuneus", "insula")


def test_lh_stats_exact_values_names_ids_units():
    lh = read_aparc_stats(DATA / "lh.aparc.stats")
    assert lh.atlas == "aparc"
    assert lh.names == tuple(f"lh_{name}" for name in REGIONS)
    assert lh.ids == (1001, 1002, 1006, 1025, 1035)  # FreeSurferColorLUT ctx-lh-*
    assert list(lh.measures) == ["NumVert", "SurfArea", "GrayVol", "ThickAvg", "ThickStd",
                                 "MeanCurv", "GausCurv", "FoldInd", "CurvInd"]
    assert lh.measures["ThickAvg"].tolist() == [2.440, 2.703, 3.339, 2.412, 3.152]
    assert lh.measures["GrayVol"].tolist() == [2377.0, 2294.0, 1896.0, 10087.0, 7030.0]
    assert lh.measures["SurfArea"].tolist() == [982.0, 744.0, 377.0, 4067.0, 2199.0]
    assert lh.measures["NumVert"].tolist() == [1472.0, 1128.0, 551.0, 6033.0, 3360.0]
    assert lh.measures["CurvInd"].tolist() == [1.0, 1.0, 0.6, 5.4, 3.2]
    assert lh.units == {"NumVert": "", "SurfArea": "mm2", "GrayVol": "mm3", "ThickAvg": "mm",
                        "ThickStd": "mm", "MeanCurv": "mm-1", "GausCurv": "mm-2",
                        "FoldInd": "", "CurvInd": ""}
    assert lh.source == str(DATA / "lh.aparc.stats")


def test_reordered_columns_are_read_by_header():
    rh = read_aparc_stats(DATA / "rh.aparc.stats")
    assert rh.names == tuple(f"rh_{name}" for name in REGIONS)
    assert rh.ids == (2001, 2002, 2006, 2025, 2035)
    assert list(rh.measures)[:4] == ["ThickAvg", "GrayVol", "SurfArea", "NumVert"]
    assert rh.measures["ThickAvg"].tolist() == [2.617, 2.598, 3.412, 2.451, 3.201]
    assert rh.measures["GrayVol"].tolist() == [2551.0, 2437.0, 1744.0, 10442.0, 7319.0]
    assert rh.measures["SurfArea"].tolist() == [1104.0, 811.0, 349.0, 4220.0, 2315.0]
    assert rh.measures["NumVert"].tolist() == [1592.0, 1201.0, 512.0, 6211.0, 3497.0]


def test_pair_combines_hemispheres_lh_first():
    both = read_aparc_pair(DATA / "lh.aparc.stats", DATA / "rh.aparc.stats")
    assert both.atlas == "aparc"
    assert both.names[:2] == ("lh_bankssts", "lh_caudalanteriorcingulate")
    assert both.names[5:] == tuple(f"rh_{name}" for name in REGIONS)
    assert both.measures["ThickAvg"].tolist() == [2.440, 2.703, 3.339, 2.412, 3.152,
                                                  2.617, 2.598, 3.412, 2.451, 3.201]
    assert both.units["SurfArea"] == "mm2"
    assert both.source == os.pathsep.join([str(DATA / "lh.aparc.stats"),
                                           str(DATA / "rh.aparc.stats")])


def test_pair_in_the_wrong_order_is_refused():
    with pytest.raises(RegionalError, match="rh.aparc.stats: expected the lh hemisphere"):
        read_aparc_pair(DATA / "rh.aparc.stats", DATA / "lh.aparc.stats")


def test_pair_of_different_annotations_is_refused(tmp_path):
    rh = tmp_path / "rh.aparc.a2009s.stats"
    rh.write_text("# hemi rh\n# AnnotationFile ../label/rh.aparc.a2009s.annot\n"
                  "# ColHeaders StructName SurfArea GrayVol ThickAvg\n"
                  "G_and_S_frontomargin 840 1758 1.925\n")
    assert read_aparc_stats(rh).atlas == "aparc_a2009s"
    assert read_aparc_stats(rh).ids == (2001,)  # not a DK name: 2000 + row number
    with pytest.raises(RegionalError, match="different annotations \\(aparc vs aparc_a2009s\\)"):
        read_aparc_pair(DATA / "lh.aparc.stats", rh)


def test_pair_with_different_columns_is_refused(tmp_path):
    rh = tmp_path / "rh.aparc.stats"
    rh.write_text("# ColHeaders StructName SurfArea GrayVol ThickAvg\ninsula 2315 7319 3.2\n")
    with pytest.raises(RegionalError, match="different columns \\(CurvInd, FoldInd, GausCurv, "
                                            "MeanCurv, NumVert, ThickStd in only one\\)"):
        read_aparc_pair(DATA / "lh.aparc.stats", rh)


def test_missing_required_columns_are_named():
    with pytest.raises(RegionalError, match=r"lh.aparc.nothick.stats: missing column\(s\) "
                                            r"ThickAvg in '# ColHeaders StructName NumVert"):
        read_aparc_stats(DATA / "lh.aparc.nothick.stats")


def test_missing_colheaders_is_refused(tmp_path):
    stats = tmp_path / "lh.aparc.stats"
    stats.write_text("# hemi lh\nbankssts 1472 982 2377 2.440\n")
    with pytest.raises(RegionalError, match="lh.aparc.stats: no '# ColHeaders' line"):
        read_aparc_stats(stats)


def test_hemisphere_from_file_name_when_header_lacks_it(tmp_path):
    stats = tmp_path / "rh.aparc.stats"
    stats.write_text("# ColHeaders StructName SurfArea GrayVol ThickAvg\ninsula 2315 7319 3.2\n")
    assert read_aparc_stats(stats).names == ("rh_insula",)
    unnamed = tmp_path / "aparc.stats"
    unnamed.write_text(stats.read_text())
    with pytest.raises(RegionalError, match="aparc.stats: cannot tell the hemisphere"):
        read_aparc_stats(unnamed)


@pytest.mark.parametrize("row, message", [
    ("insula 2315 7319", "line 3: 3 fields for 4 columns"),
    ("insula 2315 big 3.2", "line 3: GrayVol value 'big' is not a number"),
])
def test_malformed_rows_are_refused(tmp_path, row, message):
    stats = tmp_path / "lh.aparc.stats"
    stats.write_text(f"# hemi lh\n# ColHeaders StructName SurfArea GrayVol ThickAvg\n{row}\n")
    with pytest.raises(RegionalError, match=message):
        read_aparc_stats(stats)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RegionalError, match="lh.none.stats: cannot read the file"):
        read_aparc_stats(tmp_path / "lh.none.stats")


def test_empty_table_is_refused(tmp_path):
    stats = tmp_path / "lh.aparc.stats"
    stats.write_text("# hemi lh\n# ColHeaders StructName SurfArea GrayVol ThickAvg\n")
    with pytest.raises(RegionalError, match="no region rows"):
        read_aparc_stats(stats)
