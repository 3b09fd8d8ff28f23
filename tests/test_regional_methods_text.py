"""The regional methods are written once: the regional workflow's ``__desc__`` and the
report's methods page say the same sentences (anatcl_nipype.regional.methods_text), the
page for what the tables' sidecars say fed them."""

import shutil
from pathlib import Path

import pytest

from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.interfaces.regional import CAT12ROIMeasures
from anatcl_nipype.regional.methods_text import regional_text
from anatcl_nipype.reports.methods import regional_paragraph
from anatcl_nipype.workflows.regional import init_anatcl_regional_wf


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=2)


def _sink(table, out, label):
    """Place a regional table and its sidecar where the participant level writes them."""
    anat = out / label.split("_")[0] / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    for suffix in (".tsv", ".json"):
        shutil.copy(Path(table).with_suffix(suffix), anat / f"{label}_desc-cat12_regions{suffix}")


@pytest.mark.integration
def test_workflow_and_report_say_the_same_regional_sentences(cohort, tmp_path):
    wf = init_anatcl_regional_wf(atlas=cohort.atlas_image, label_table=cohort.atlas_table,
                                 atlas_name="boxes")
    inputs = wf.inputs.inputnode
    inputs.label_roi, inputs.label_rois = cohort.roi_xml("sub-01"), cohort.surface_roi_xml(
        "sub-01")
    inputs.report, inputs.gm_modulated_image = cohort.report_xml("sub-01"), cohort.gm_map(
        "sub-01")
    wf.base_dir = str(tmp_path / "work")
    wf.run()
    _sink(next((tmp_path / "work").rglob("merge_regional/regional.tsv")), tmp_path / "out",
          "sub-01")
    described = wf.__desc__.strip().split("\n")
    assert described == regional_text(atlas_name="boxes").split("\n")
    assert "[@gaser2024cat]" in described[0] and "boxes atlas" in described[1]
    assert regional_paragraph(tmp_path / "out") == (
        " ".join(described) + " Regional tables were written for 1 participant.")


def test_report_names_only_the_cat12_files_a_table_was_made_from(cohort, tmp_path):
    made = CAT12ROIMeasures(label_roi=str(cohort.roi_xml("sub-02"))).run(cwd=str(tmp_path))
    _sink(made.outputs.out_tsv, tmp_path / "out", "sub-02")
    paragraph = regional_paragraph(tmp_path / "out")
    assert paragraph.startswith(regional_text(surface=False, report=False))
    assert "catROI_*.xml" in paragraph and "catROIs_" not in paragraph
    assert "subject-level" not in paragraph and "atlas was computed" not in paragraph
