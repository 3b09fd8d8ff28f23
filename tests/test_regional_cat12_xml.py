"""CAT12 ROI XML and report reading: exact values from files in CAT12's own format."""

import math
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.errors import RegionalError
from anatcl_nipype.regional import parse_matlab_array, read_cat12_report, read_cat12_roi_xml

DATA = Path(__file__).parent / "data" / "cat12"
NAN = float("nan")


def _equal_with_nan(values, expected):
    return len(values) == len(expected) and all(
        a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(values, expected))


@pytest.mark.parametrize("text, expected", [
    ("[4;11;23]", [[4.0], [11.0], [23.0]]),
    ("[4 11 23]", [[4.0, 11.0, 23.0]]),
    ("1523.4", [[1523.4]]),
    ("[1 2 3;4 5 6]", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
    ("[int32([1;2])]", [[1.0], [2.0]]),
    ("[int32(5)]", [[5.0]]),
    ("[true]", [[1.0]]),
    ("[true false]", [[1.0, 0.0]]),
    ("  [ 1.5e-05 ;\n  -2E+3 ]  ", [[1.5e-05], [-2000.0]]),
    ("[Inf -Inf]", [[math.inf, -math.inf]]),
    ("[1, 2]", [[1.0, 2.0]]),
])
def test_parse_matlab_array_reads_mat2str_forms(text, expected):
    assert parse_matlab_array(text).tolist() == expected


def test_parse_matlab_array_reads_nan_and_empty():
    assert math.isnan(parse_matlab_array("NaN")[0, 0])
    assert parse_matlab_array("").shape == (0, 0)
    assert parse_matlab_array("[]").shape == (0, 0)


@pytest.mark.parametrize("text, message", [
    ("[1 2;3]", "rows of different lengths"),
    ("[1 abc]", "'abc' in '\\[1 abc\\]' is not a number"),
])
def test_parse_matlab_array_refuses_other_text(text, message):
    with pytest.raises(RegionalError, match=message):
        parse_matlab_array(text)


def test_volume_rois_every_atlas_in_file_order():
    atlases = read_cat12_roi_xml(DATA / "catROI_sub-01_T1w.xml")
    assert list(atlases) == ["cobra", "lpba40", "neuromorphometrics"]

    neuro = atlases["neuromorphometrics"]
    assert neuro.atlas == "neuromorphometrics"
    assert neuro.ids == (31, 32, 47, 48, 4)
    assert neuro.names == ("lAmy", "rAmy", "lHip", "rHip", "l3thVen")
    assert list(neuro.measures) == ["Vcsf", "Vgm", "Vwm"]
    assert neuro.units == {"Vcsf": "cm3", "Vgm": "cm3", "Vwm": "cm3"}
    assert neuro.measures["Vgm"].tolist() == [
        0.944060919684824, 0.86744644760713, 3.13387917505763, 3.47862616792135,
        0.0493704024095787]
    assert neuro.measures["Vcsf"].tolist() == [
        0.0485698166934308, 0.063457133595366, 0.11300141755566, 0.17131888870753,
        0.290696074739099]
    assert _equal_with_nan(neuro.measures["Vwm"].tolist(), [
        0.0371040519130693, 0.0447740163008857, 1.44319485407323e-05, NAN,
        0.105673054782942])
    assert math.isnan(neuro.measures["Vwm"][3])
    assert neuro.source == str(DATA / "catROI_sub-01_T1w.xml")


def test_volume_rois_field_order_row_vectors_and_int_wrappers():
    atlases = read_cat12_roi_xml(DATA / "catROI_sub-01_T1w.xml")
    lpba = atlases["lpba40"]  # ids/names/version/data order, Vwm as a row vector
    assert lpba.ids == (21, 22, 165, 166)
    assert lpba.names == ("lSupFroG", "rSupFroG", "lHip", "rHip")
    assert lpba.measures["Vgm"].tolist() == [
        30.2669254071117, 30.3598856254904, 4.21670720836282, 4.19928517995472]
    assert lpba.measures["Vwm"].tolist()[:3] == [
        25.5975820973844, 24.8129814045288, 0.0388292075444479]
    assert math.isnan(lpba.measures["Vwm"][3])  # Inf in the file: n/a, with a warning
    assert lpba.warnings == (f"{DATA / 'catROI_sub-01_T1w.xml'}: atlas lpba40, measure Vwm: "
                             "1 infinite value(s) (regions rHip) written as n/a",)

    cobra = atlases["cobra"]  # [int32([...])] ids, a colors matrix that is not a measure
    assert cobra.ids == (1, 2, 3)
    assert cobra.names == ("Left CA1", "Left subiculum", "Left CA4/dentate gyrus")
    assert list(cobra.measures) == ["Vgm"]
    assert cobra.measures["Vgm"].tolist() == [0.951532077789307, 0.421390026807785,
                                              0.61003851890564]
    assert cobra.measures["Vgm"].dtype == np.float64
    assert not cobra.measures["Vgm"].flags.writeable


def test_surface_rois_keep_repeated_ids_and_all_measures():
    atlases = read_cat12_roi_xml(DATA / "catROIs_sub-01_T1w.xml")
    assert list(atlases) == ["aparc_DK40", "aparc_a2009s"]

    dk = atlases["aparc_DK40"]
    assert dk.ids == (1639705, 1639705, 2647065, 2647065, 2146559, 2146559)
    assert dk.names == ("lunknown", "runknown", "lbankssts", "rbankssts", "linsula",
                        "rinsula")
    assert list(dk.measures) == ["gyrification", "thickness"]
    assert dk.units == {"gyrification": "", "thickness": "mm"}
    assert _equal_with_nan(dk.measures["thickness"].tolist(), [
        2.21386992931366, NAN, 2.43147667713906, 2.68353114286624, 3.89206562003024,
        3.92076771493511])
    assert math.isnan(dk.measures["gyrification"][1])
    assert dk.measures["gyrification"][5] == 27.0831999640334

    destrieux = atlases["aparc_a2009s"]
    assert destrieux.ids == (0, 0, 3988503, 3988503)
    assert destrieux.names[2] == "lG_and_S_frontomargin"
    assert destrieux.measures["thickness"].tolist() == [
        2.17119134308976, 2.40308339364846, 2.94234150545791, 3.15826613122509]


def test_single_region_names_without_items_and_legacy_roi_root(tmp_path):
    xml = tmp_path / "catROI_old.xml"
    xml.write_text("<S><ROI><thalamus><ids>7</ids><names>lTha</names>"
                   "<data><Vgm>2.5</Vgm></data></thalamus></ROI></S>")
    thalamus = read_cat12_roi_xml(xml)["thalamus"]
    assert (thalamus.ids, thalamus.names, thalamus.measures["Vgm"].tolist()) == (
        (7,), ("lTha",), [2.5])


def _roi_xml(tmp_path, vgm_text):
    xml = tmp_path / "catROI_sub-02_T1w.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<S>\n   <hammers>\n'
        f"      <data>\n         <Vgm>{vgm_text}</Vgm>\n      </data>\n"
        "      <ids>[1;2;3]</ids>\n"
        "      <names><item>lHip</item><item>rHip</item><item>lAmy</item></names>\n"
        "   </hammers>\n</S>\n")
    return xml


def test_r_plus_one_quirk_is_refused_not_shifted(tmp_path):
    xml = _roi_xml(tmp_path, "[0 2.11 2.28 1.77]")
    with pytest.raises(RegionalError, match=r"catROI_sub-02_T1w.xml: atlas 'hammers', "
                       r"measure 'Vgm': 4 values for 3 regions with a leading 0: the r\+1 "
                       r"layout of CAT12's csvtab2xmlroi"):
        read_cat12_roi_xml(xml)


def test_too_few_values_is_refused(tmp_path):
    xml = _roi_xml(tmp_path, "[2.11;2.28]")
    with pytest.raises(RegionalError, match="measure 'Vgm': 2 values for 3 regions; "):
        read_cat12_roi_xml(xml)


def test_non_numeric_measure_is_refused(tmp_path):
    xml = _roi_xml(tmp_path, "[2.11;big;1.77]")
    with pytest.raises(RegionalError, match="atlas 'hammers', measure 'Vgm': 'big'"):
        read_cat12_roi_xml(xml)


def test_nested_measure_is_refused(tmp_path):
    xml = _roi_xml(tmp_path, "<mean>[1;2;3]</mean>")
    with pytest.raises(RegionalError, match="measure 'Vgm': nested elements where numbers"):
        read_cat12_roi_xml(xml)


def test_measure_given_as_items_is_read(tmp_path):
    xml = _roi_xml(tmp_path, "<item>2.5</item><item>NaN</item><item>[1.25]</item>")
    values = read_cat12_roi_xml(xml)["hammers"].measures["Vgm"]
    assert _equal_with_nan(values.tolist(), [2.5, NAN, 1.25])


def test_ids_and_names_must_match(tmp_path):
    xml = tmp_path / "catROI_bad.xml"
    xml.write_text("<S><hammers><ids>[1;2]</ids><names><item>lHip</item></names>"
                   "<data><Vgm>[1;2]</Vgm></data></hammers></S>")
    with pytest.raises(RegionalError, match="atlas 'hammers' has 2 ids but 1 names"):
        read_cat12_roi_xml(xml)


def test_non_integer_ids_are_refused(tmp_path):
    xml = tmp_path / "catROI_bad.xml"
    xml.write_text("<S><cobra><ids>[1.5]</ids><names><item>a</item></names>"
                   "<data><Vgm>1</Vgm></data></cobra></S>")
    with pytest.raises(RegionalError, match="atlas 'cobra': region ids are not all integers"):
        read_cat12_roi_xml(xml)


def test_matrix_measure_is_refused(tmp_path):
    xml = _roi_xml(tmp_path, "[1 2 3;4 5 6]")
    with pytest.raises(RegionalError, match="measure 'Vgm': a matrix where a vector"):
        read_cat12_roi_xml(xml)


def test_atlas_given_twice_is_refused(tmp_path):
    atlas = "<cobra><ids>[1]</ids><names><item>a</item></names><data><Vgm>1</Vgm></data></cobra>"
    xml = tmp_path / "catROI_twice.xml"
    xml.write_text(f"<S>{atlas}{atlas}</S>")
    with pytest.raises(RegionalError, match="catROI_twice.xml: atlas 'cobra' appears twice"):
        read_cat12_roi_xml(xml)


def test_missing_ids_is_refused(tmp_path):
    xml = tmp_path / "catROI_bad.xml"
    xml.write_text("<S><hammers><names><item>lHip</item></names>"
                   "<data><Vgm>[1]</Vgm></data></hammers></S>")
    with pytest.raises(RegionalError, match="atlas 'hammers' has data but no <ids>"):
        read_cat12_roi_xml(xml)


def test_malformed_xml_names_the_file(tmp_path):
    xml = tmp_path / "catROI_broken.xml"
    xml.write_text("<S><lpba40><ids>[1;2]</ids></S>")
    with pytest.raises(RegionalError, match=r"catROI_broken.xml: malformed XML \(mismatched"):
        read_cat12_roi_xml(xml)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(RegionalError, match="catROI_none.xml: cannot read the file"):
        read_cat12_roi_xml(tmp_path / "catROI_none.xml")


def test_other_xml_is_not_a_cat12_roi_file(tmp_path):
    xml = tmp_path / "catROI_other.xml"
    xml.write_text("<config><atlas>lpba40</atlas><names><item>x</item></names></config>")
    with pytest.raises(RegionalError, match="catROI_other.xml: not a CAT12 ROI file: no atlas "
                       "element with ids, names and data under <config>"):
        read_cat12_roi_xml(xml)


def test_report_xml_is_not_a_roi_file():
    with pytest.raises(RegionalError, match="not a CAT12 ROI file"):
        read_cat12_roi_xml(DATA / "report" / "cat_sub-01_T1w.xml")


def test_external_entity_is_refused_not_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xml = tmp_path / "catROI_xxe.xml"
    xml.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE S [<!ENTITY leak SYSTEM "file://{secret}">]>'
                   "\n<S><lpba40><ids>[1]</ids><names><item>&leak;</item></names>"
                   "<data><Vgm>[1]</Vgm></data></lpba40></S>")
    with pytest.raises(RegionalError, match="catROI_xxe.xml: refused to parse: the XML "
                       "declares a DTD or entities") as caught:
        read_cat12_roi_xml(xml)
    assert "TOP-SECRET-CONTENT" not in str(caught.value)


def test_billion_laughs_is_refused_not_expanded(tmp_path):
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">'
        for i in range(1, 10)]
    xml = tmp_path / "catROI_lol.xml"
    xml.write_text('<?xml version="1.0"?>\n<!DOCTYPE S [' + "".join(entities) + "]>\n"
                   "<S><lpba40><ids>[1]</ids><names><item>&lol9;</item></names>"
                   "<data><Vgm>[1]</Vgm></data></lpba40></S>")
    with pytest.raises(RegionalError, match="catROI_lol.xml: refused to parse"):
        read_cat12_roi_xml(xml)


def test_report_reads_tiv_volumes_and_ratings():
    report = read_cat12_report(DATA / "report" / "cat_sub-01_T1w.xml")
    assert report["tiv_cm3"] == 1439.18627929688  # subjectmeasures, not subjectratings
    assert report["abs_volumes_cm3"] == {
        "CSF": 233.439971923828, "GM": 677.416137695312, "WM": 528.303894042969,
        "WMH": 0.0263671167194843}
    assert report["rel_volumes"] == {
        "CSF": 0.162202745676041, "GM": 0.470693856477737, "WM": 0.367085129022598,
        "WMH": 1.83208503585774e-05}
    assert report["quality_ratings"] == {
        "res_RMS": 2.0648825276317, "res_BB": 0.5, "contrastr": 4.09079170227051,
        "NCR": 1.83243155479431, "ICR": 1.46182894706726, "IQR": 1.97212245311552}
    assert report["quality_measures"] == {
        "res_RMS": 1.03244126381585, "NCR": 0.104587182402611, "ICR": 0.404009461402893}
    assert report["cat_version"] == "2577"
    assert report["source"] == str(DATA / "report" / "cat_sub-01_T1w.xml")


def test_report_without_optional_parts(tmp_path):
    xml = tmp_path / "cat_min.xml"
    xml.write_text("<S><subjectmeasures><vol_TIV>1500</vol_TIV>"
                   "<vol_abs_CGW>[300 700 480 5 15]</vol_abs_CGW></subjectmeasures></S>")
    report = read_cat12_report(xml)
    assert report["tiv_cm3"] == 1500.0
    assert report["abs_volumes_cm3"] == {"CSF": 300.0, "GM": 700.0, "WM": 480.0, "WMH": 5.0,
                                         "SL": 15.0}
    assert (report["rel_volumes"], report["quality_ratings"], report["cat_version"]) == (
        {}, {}, None)


def test_report_names_unknown_extra_tissue_classes(tmp_path):
    xml = tmp_path / "cat_future.xml"
    xml.write_text("<S><subjectmeasures><vol_TIV>1500</vol_TIV>"
                   "<vol_rel_CGW>[0.2 0.45 0.32 0.01 0.01 0.01]</vol_rel_CGW>"
                   "</subjectmeasures></S>")
    assert list(read_cat12_report(xml)["rel_volumes"]) == ["CSF", "GM", "WM", "WMH", "SL",
                                                            "class6"]


def test_report_without_tiv_is_refused(tmp_path):
    xml = tmp_path / "cat_none.xml"
    xml.write_text("<S><subjectratings><vol_TIV>1.03</vol_TIV></subjectratings></S>")
    with pytest.raises(RegionalError, match="cat_none.xml: no subjectmeasures/vol_TIV"):
        read_cat12_report(xml)


def test_report_with_unusable_tiv_is_refused(tmp_path):
    xml = tmp_path / "cat_nan.xml"
    xml.write_text("<S><subjectmeasures><vol_TIV>NaN</vol_TIV></subjectmeasures></S>")
    with pytest.raises(RegionalError, match="vol_TIV is 'NaN', not one finite number"):
        read_cat12_report(xml)
