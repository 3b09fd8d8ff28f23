"""Regional workflows run end to end on the synthetic cohort, alone and after CAT12Segment."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from nipype.interfaces import cat12

from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.regional import (
    atlas_gm_volumes,
    measures_to_row,
    read_cat12_report,
    read_cat12_roi_xml,
    read_measures_tsv,
)
from anatcl_nipype.regional.pooled import region_pooled_features
from anatcl_nipype.regional.tables import report_to_row
from anatcl_nipype.workflows.cat12 import init_cat12_anatcl_wf
from anatcl_nipype.workflows.regional import (
    init_anatcl_group_regional_wf,
    init_anatcl_regional_wf,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=3)


def _subject(cohort, subject):
    return {"label_roi": cohort.roi_xml(subject), "label_rois": cohort.surface_roi_xml(subject),
            "report": cohort.report_xml(subject), "gm_modulated_image": cohort.gm_map(subject)}


def _direct_row(cohort, subject, atlas_name="boxes"):
    """What the readers give for one subject, in the workflow's column order."""
    files = _subject(cohort, subject)
    row = measures_to_row([*read_cat12_roi_xml(files["label_roi"]).values(),
                           *read_cat12_roi_xml(files["label_rois"]).values()])
    row.update(report_to_row(read_cat12_report(files["report"]))[0])
    row.update(measures_to_row([atlas_gm_volumes(files["gm_modulated_image"], cohort.atlas_image,
                                                 cohort.atlas_table, atlas_name=atlas_name)]))
    return row


def _outputs(graph, node_name):
    return next(node for node in graph.nodes() if node.name == node_name).result.outputs


def test_group_workflow_under_multiproc_equals_the_readers(cohort, tmp_path):
    wf = init_anatcl_group_regional_wf([_subject(cohort, s) for s in cohort.subjects],
                                       atlas=cohort.atlas_image, label_table=cohort.atlas_table,
                                       atlas_name="boxes")
    wf.base_dir = str(tmp_path)
    wf.config["execution"]["poll_sleep_duration"] = 0.2  # MultiProc polls every 2 s by default
    graph = wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
    group = _outputs(graph, "merge_subjects")
    participant_ids, columns, values = read_measures_tsv(group.out_tsv)
    assert participant_ids == ["sub-01", "sub-02", "sub-03"]
    assert len(columns) == 34 * 3 + 72 + 2 + 5 + 34 * 2
    for subject, line in zip(participant_ids, values):
        expected = _direct_row(cohort, subject)
        assert columns == list(expected)
        np.testing.assert_array_equal(line, np.array(list(expected.values())))
    per_subject = sorted(Path(tmp_path).rglob("merge_regional/regional.tsv"))
    assert len(per_subject) == 3
    assert {tuple(read_measures_tsv(path)[1]) for path in per_subject} == {tuple(columns)}


def test_unset_inputs_are_skipped_even_with_iterables(cohort, tmp_path):
    wf = init_anatcl_regional_wf(cat12_measures=["Vgm"])
    wf.base_dir = str(tmp_path)
    wf.get_node("inputnode").iterables = ("label_roi", [str(cohort.roi_xml(s))
                                                        for s in cohort.subjects[:2]])
    wf.run()
    tables = sorted(Path(tmp_path).rglob("merge_regional/regional.tsv"))
    assert len(tables) == 2
    for subject, table in zip(cohort.subjects[:2], sorted(tables, key=lambda p: p.read_text())):
        participant_ids, columns, values = read_measures_tsv(table)
        synthetic = read_cat12_roi_xml(cohort.roi_xml(subject))["synthetic"]
        assert participant_ids == [subject]
        assert columns == [f"synthetic_{name}_Vgm" for name in synthetic.names]
        assert values[0].tolist() == synthetic.measures["Vgm"].tolist()


def test_group_workflow_pools_features(cohort, random_weights, tmp_path):
    subjects = [{"gm_modulated_image": cohort.gm_map(s)} for s in cohort.subjects[:2]]
    wf = init_anatcl_group_regional_wf(subjects, cat12_rois=False, atlas=cohort.atlas_image,
                                       label_table=cohort.atlas_table, atlas_name="boxes",
                                       pooled_features=True, layers=["layer4"],
                                       weights=random_weights)
    wf.base_dir = str(tmp_path)
    graph = wf.run()
    pooled = _outputs(graph, "merge_pooled")
    participant_ids, columns, values = read_measures_tsv(pooled.out_tsv)
    assert participant_ids == ["sub-01", "sub-02"]
    assert columns[:2] == ["boxes_lCerebellum_anatcl_layer4", "boxes_rCerebellum_anatcl_layer4"]
    files = _outputs(graph, "join_pooled_features").pooled_features
    assert [[Path(f).name for f in per_subject] for per_subject in files] == [
        ["sub-01_atlas-boxes_layer4.npy"], ["sub-02_atlas-boxes_layer4.npy"]]
    expected = region_pooled_features(AnatCLEncoder(weights=random_weights),
                                      cohort.gm_map("sub-02"), cohort.atlas_image,
                                      cohort.atlas_table, layers=["layer4"])
    np.testing.assert_array_equal(np.load(files[1][0]), expected.features["layer4"])
    np.testing.assert_allclose(values[1], expected.features["layer4"].mean(axis=1,
                                                                           dtype=np.float64))
    regional = read_measures_tsv(_outputs(graph, "merge_subjects").out_tsv)
    assert regional[1][:2] == ["boxes_lCerebellum_Vgm", "boxes_lCerebellum_mean_gm"]


class _StandInCAT12Segment(cat12.CAT12Segment):
    """nipype's CAT12Segment without MATLAB: puts what CAT12 writes beside its input.

    The cohort subject's mri/label/report files (``written_by_cat12``) are copied; the
    other outputs nipype checks for (mwp2, surfaces...) are left as empty files.
    """

    written_by_cat12 = None

    def _run_interface(self, runtime):
        folder = Path(self.inputs.in_files[0]).parent
        for kind in ("mri", "label", "report"):
            shutil.copytree(self.written_by_cat12 / kind, folder / kind, dirs_exist_ok=True)
        for output in self._list_outputs().values():
            if isinstance(output, str) and not Path(output).exists():
                Path(output).parent.mkdir(exist_ok=True)
                Path(output).touch()
        return runtime


def test_cat12_workflow_runs_regional_after_cat12segment(cohort, random_weights, tmp_path,
                                                          monkeypatch):
    t1w = tmp_path / "bids" / "sub-03_T1w.nii"
    t1w.parent.mkdir()
    t1w.write_bytes(cohort.gm_map("sub-03").read_bytes())  # any image: CAT12 does not run
    monkeypatch.setattr(_StandInCAT12Segment, "written_by_cat12", cohort.anat_dir("sub-03"))
    monkeypatch.setattr(cat12, "CAT12Segment", _StandInCAT12Segment)
    wf = init_cat12_anatcl_wf(weights=random_weights,
                              regional_options={"atlas": cohort.atlas_image,
                                                "label_table": cohort.atlas_table,
                                                "atlas_name": "boxes"})
    wf.base_dir = str(tmp_path)
    wf.inputs.inputnode.t1w = str(t1w)
    graph = wf.run()
    participant_ids, columns, values = read_measures_tsv(_outputs(graph, "merge_regional").out_tsv)
    expected = _direct_row(cohort, "sub-03")
    assert participant_ids == ["sub-03"] and columns == list(expected)
    np.testing.assert_array_equal(values[0], np.array(list(expected.values())))
    embedding = np.load(_outputs(graph, "anatcl_encode").out_file)
    assert embedding.shape == (512,) and np.isfinite(embedding).all()


def test_workflows_pickle_draw_and_describe(cohort, tmp_path):
    workflows = [
        init_anatcl_regional_wf(atlas=cohort.atlas_image, pooled_features=True),
        init_anatcl_group_regional_wf([{"label_roi": cohort.roi_xml("sub-01")}]),
        init_cat12_anatcl_wf(),
    ]
    for wf in workflows:
        assert type(pickle.loads(pickle.dumps(wf))) is type(wf)
        wf.base_dir = str(tmp_path)
        wf.write_graph(graph2use="colored", format="svg", simple_form=True)
        drawn = list((tmp_path / wf.name).glob("graph*.svg"))
        assert drawn and all(path.stat().st_size > 500 for path in drawn)
    description = workflows[0].visit_desc()
    assert "exploratory" in description and "not a validated measure" in description
    assert "sum of the modulated grey-matter map" in description


def test_factories_refuse_what_cannot_run(cohort):
    with pytest.raises(AnatCLError, match="nothing to measure"):
        init_anatcl_regional_wf(cat12_rois=False)
    with pytest.raises(AnatCLError, match="pooled_features needs an atlas"):
        init_anatcl_regional_wf(pooled_features=True)
    with pytest.raises(AnatCLError, match=r"subject 2 has fields \['report'\]"):
        init_anatcl_group_regional_wf([{"label_roi": "a.xml"}, {"report": "b.xml"}])
    with pytest.raises(AnatCLError, match=r"fields \['t1w'\] not understood"):
        init_anatcl_group_regional_wf([{"t1w": "a.nii"}])
    assert sorted(init_anatcl_regional_wf().list_node_names()) == [
        "cat12_roi_measures", "collect_sidecars", "collect_tables", "inputnode",
        "merge_regional", "outputnode"]
