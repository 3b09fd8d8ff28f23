"""Wide regional tables: column names and order, union over subjects, n/a, round trip."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional import (
    RegionMeasures,
    column_descriptions,
    measures_to_row,
    read_cat12_roi_xml,
    read_measures_tsv,
    region_labels,
    write_measures_tsv,
)
from anatcl_nipype.regional.tables import merge_measures_tables

DATA = Path(__file__).parent / "data" / "cat12"


def _lpba(names, ids, vgm, vwm, source="catROI_sub-01_T1w.xml"):
    return RegionMeasures("lpba40", ids, names, {"Vgm": vgm, "Vwm": vwm},
                          {"Vgm": "cm3", "Vwm": "cm3"}, source)


def _aparc(thickness, source="lh.aparc.stats"):
    return RegionMeasures("aparc", (1035,), ("lh_insula",), {"ThickAvg": thickness},
                          {"ThickAvg": "mm"}, source)


def test_row_order_atlases_then_regions_then_measures():
    row = measures_to_row([_aparc([3.15]), _lpba(("lHip", "rHip"), (165, 166),
                                                 [4.2, 4.1], [1.0, 1.1])])
    assert list(row) == ["aparc_lhinsula_ThickAvg", "lpba40_lHip_Vgm", "lpba40_lHip_Vwm",
                         "lpba40_rHip_Vgm", "lpba40_rHip_Vwm"]
    assert list(row.values()) == [3.15, 4.2, 1.0, 4.1, 1.1]


def test_measure_names_select_and_order_measures():
    rm = _lpba(("lHip",), (165,), [4.2], [1.0])
    assert measures_to_row([rm], measure_names=["Vwm", "Vgm", "Vcsf"]) == {
        "lpba40_lHip_Vwm": 1.0, "lpba40_lHip_Vgm": 4.2}


def test_row_from_a_cat12_file_keeps_file_order_and_nan():
    row = measures_to_row(read_cat12_roi_xml(DATA / "catROI_sub-01_T1w.xml"),
                          measure_names=["Vgm", "Vwm"])
    assert list(row)[:4] == ["cobra_LeftCA1_Vgm", "cobra_Leftsubiculum_Vgm",
                             "cobra_LeftCA4dentategyrus_Vgm", "lpba40_lSupFroG_Vgm"]
    assert row["neuromorphometrics_l3thVen_Vgm"] == 0.0493704024095787
    assert math.isnan(row["neuromorphometrics_rHip_Vwm"])
    assert len(row) == 3 + 4 * 2 + 5 * 2


def test_region_labels_are_unique_and_readable():
    assert region_labels(["lCbeLoCbe1-5", "lCbeLoCbe15", "G&S_frontomargin", "???"]) == (
        "lCbeLoCbe151", "lCbeLoCbe152", "GSfrontomargin", "region")
    labels = region_labels(["a b", "ab", "ab1", "a-b"])
    assert len(set(labels)) == 4 and labels[2] == "ab1"


def test_region_measures_checks_lengths_and_fills_units():
    rm = RegionMeasures("x", [1, 2], ["a", "b"], {"Vgm": (1, 2), "Tgm": [3, 4]}, {}, "f.xml")
    assert (rm.ids, rm.names, rm.units) == ((1, 2), ("a", "b"), {"Vgm": "cm3", "Tgm": ""})
    with pytest.raises(RegionalError, match="f.xml: atlas 'x' has 2 region ids but 1 names"):
        RegionMeasures("x", (1, 2), ("a",), {}, {}, "f.xml")
    with pytest.raises(RegionalError, match="f.xml: atlas 'x', measure 'Vgm': 3 values for 2"):
        RegionMeasures("x", (1, 2), ("a", "b"), {"Vgm": [1, 2, 3]}, {}, "f.xml")


def test_rows_need_region_measures():
    with pytest.raises(TypeError, match="expected RegionMeasures, got str"):
        measures_to_row(["lpba40"])


def test_same_atlas_twice_is_refused():
    with pytest.raises(RegionalError, match="atlas 'aparc' given twice"):
        measures_to_row([_aparc([3.1]), _aparc([3.2])])


def test_column_descriptions_match_row_columns():
    rm = _lpba(("lHip",), (165,), [4.2], [1.0])
    descriptions = column_descriptions([rm])
    assert list(descriptions) == list(measures_to_row([rm]))
    assert descriptions["lpba40_lHip_Vgm"] == {
        "Atlas": "lpba40", "RegionID": 165, "RegionName": "lHip", "Measure": "Vgm",
        "Units": "cm3", "Source": "catROI_sub-01_T1w.xml",
        "Description": "grey-matter volume (Vgm) of region lHip (id 165) of atlas lpba40"}


def test_two_subjects_with_different_regions_round_trip(tmp_path):
    sub01 = [_lpba(("lHip", "rHip"), (165, 166), [4.25, 4.125], [1.5, 1.75], "a/catROI_01.xml")]
    sub02 = [_lpba(("lHip", "lAmy", "rHip"), (165, 31, 166), [3.5, 0.75, 3.25],
                   [1.25, 0.5, math.nan], "b/catROI_02.xml"),
             _aparc([2.5], source=os.pathsep.join(["b/lh.aparc.stats", "b/rh.aparc.stats"]))]
    rows = {"sub-01": measures_to_row(sub01), "sub-02": measures_to_row(sub02)}
    tsv, sidecar = write_measures_tsv(rows, tmp_path / "regional.tsv",
                                      measures={"sub-01": sub01, "sub-02": iter(sub02)})

    expected_columns = ["lpba40_lHip_Vgm", "lpba40_lHip_Vwm", "lpba40_lAmy_Vgm",
                        "lpba40_lAmy_Vwm", "lpba40_rHip_Vgm", "lpba40_rHip_Vwm",
                        "aparc_lhinsula_ThickAvg"]
    lines = tsv.read_text().splitlines()
    assert lines[0].split("\t") == ["participant_id", *expected_columns]
    assert lines[1].split("\t") == ["sub-01", "4.25", "1.5", "n/a", "n/a", "4.125", "1.75",
                                    "n/a"]
    assert lines[2].split("\t") == ["sub-02", "3.5", "1.25", "0.75", "0.5", "3.25", "n/a",
                                    "2.5"]

    participants, columns, values = read_measures_tsv(tsv)
    assert participants == ["sub-01", "sub-02"]
    assert columns == expected_columns
    expected = np.array([[4.25, 1.5, np.nan, np.nan, 4.125, 1.75, np.nan],
                         [3.5, 1.25, 0.75, 0.5, 3.25, np.nan, 2.5]])
    np.testing.assert_array_equal(values, expected)

    described = json.loads(sidecar.read_text())
    assert sidecar == tmp_path / "regional.json"
    assert set(described) == {"participant_id", *expected_columns}
    assert described["lpba40_lAmy_Vgm"]["RegionID"] == 31
    assert described["aparc_lhinsula_ThickAvg"]["Units"] == "mm"
    assert described["participant_id"]["Sources"] == {
        "sub-01": ["a/catROI_01.xml"],
        "sub-02": ["b/catROI_02.xml", "b/lh.aparc.stats", "b/rh.aparc.stats"]}


def test_values_round_trip_exactly(tmp_path):
    values = [0.1 + 0.2, 1e-17, 123456789.123456789, -0.0, 2.0 / 3.0]
    row = {f"a_r{i}_Vgm": value for i, value in enumerate(values)}
    tsv, _ = write_measures_tsv({"sub-01": row}, tmp_path / "t.tsv",
                                sidecar_path=tmp_path / "t_desc.json")
    assert read_measures_tsv(tsv)[2][0].tolist() == values
    assert (tmp_path / "t_desc.json").exists()


def test_columns_without_description_get_a_generic_one(tmp_path):
    _, sidecar = write_measures_tsv({"sub-01": {"x_r_Vgm": 1.0}}, tmp_path / "t.tsv")
    assert json.loads(sidecar.read_text())["x_r_Vgm"] == {
        "Description": "region-wise measure x_r_Vgm", "Units": ""}


def test_failed_write_leaves_the_previous_table(tmp_path):
    tsv, _ = write_measures_tsv({"sub-01": {"a_r_Vgm": 1.0}}, tmp_path / "t.tsv")
    before = tsv.read_text()
    with pytest.raises(ValueError):
        write_measures_tsv({"sub-01": {"a_r_Vgm": "not a number"}}, tsv)
    assert tsv.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.tsv"]


def test_missing_table_is_named(tmp_path):
    with pytest.raises(RegionalError, match="none.tsv: cannot read the table"):
        read_measures_tsv(tmp_path / "none.tsv")


@pytest.mark.parametrize("text, message", [
    ("subject\ta_r_Vgm\nsub-01\t1\n", "the first column must be participant_id"),
    ("participant_id\ta_r_Vgm\nsub-01\t1\t2\n", "line 2: 3 fields for 2 columns"),
    ("participant_id\ta_r_Vgm\nsub-01\tbig\n", "line 2: 'big' is not a number or n/a"),
])
def test_bad_tables_are_refused(tmp_path, text, message):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(text)
    with pytest.raises(RegionalError, match=message):
        read_measures_tsv(tsv)


def test_infinite_region_values_are_n_a_and_the_merged_sidecar_keeps_the_warnings(tmp_path):
    first = _lpba(("lHip", "rHip"), (165, 166), [4.2, math.inf], [1.0, 2.0], "sub-01.xml")
    second = _lpba(("lHip", "rHip"), (165, 166), [4.0, 4.1], [-math.inf, 2.5], "sub-02.xml")
    assert first.measures["Vgm"][0] == 4.2 and math.isnan(first.measures["Vgm"][1])
    assert first.warnings == ("sub-01.xml: atlas lpba40, measure Vgm: 1 infinite value(s) "
                              "(regions rHip) written as n/a",)
    tables = [write_measures_tsv({pid: measures_to_row([rm])}, tmp_path / f"{pid}.tsv",
                                 measures={pid: [rm]})
              for pid, rm in (("sub-01", first), ("sub-02", second))]
    merged, sidecar = merge_measures_tables([table for table, _ in tables],
                                            tmp_path / "group.tsv",
                                            sidecar_paths=[json_path for _, json_path in tables])
    assert merged.read_text().splitlines()[1:] == [
        "sub-01\t4.2\t1.0\tn/a\t2.0", "sub-02\t4.0\tn/a\t4.1\t2.5"]
    assert json.loads(sidecar.read_text())["participant_id"]["Warnings"] == {
        "sub-01": list(first.warnings), "sub-02": list(second.warnings)}
