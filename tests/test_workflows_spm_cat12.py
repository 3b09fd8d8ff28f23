"""The CAT12 and SPM routes build, draw and pickle on a machine without MATLAB."""

import pickle

import pytest

from anatcl_nipype.workflows.spm import (
    CAT12_BOUNDING_BOX,
    CAT12_VOXEL_MM,
    _dartel_image_sets,
    _grey_matter,
    _tissues,
    init_spm_anatcl_wf,
)


def test_spm_normalisation_writes_the_cat12_grid():
    shape = tuple(round((high - low) / voxel) + 1 for low, high, voxel in
                  zip(CAT12_BOUNDING_BOX[:3], CAT12_BOUNDING_BOX[3:], CAT12_VOXEL_MM))
    assert shape == (121, 145, 121)
    normalise = init_spm_anatcl_wf().get_node("normalise_to_mni")
    assert normalise.inputs.modulate is True
    assert normalise.inputs.fwhm == [0.0, 0.0, 0.0]  # no smoothing: prefix mw, like mwp1
    assert normalise.inputs.bounding_box == CAT12_BOUNDING_BOX


def test_tissue_classes_keep_grey_and_white_matter_for_dartel():
    tissues = _tissues("TPM.nii")
    assert [t[0] for t in tissues] == [("TPM.nii", k) for k in range(1, 7)]
    assert tissues[0][2] == (True, True) and tissues[1][2] == (True, True)  # c1/rc1, c2/rc2
    assert all(t[2][1] is False for t in tissues[2:])


def test_dartel_and_grey_matter_selection():
    per_subject = [[["rc1a"], ["rc2a"], [], [], [], []], [["rc1b"], ["rc2b"], [], [], [], []]]
    assert _dartel_image_sets(per_subject) == [["rc1a", "rc1b"], ["rc2a", "rc2b"]]
    natives = [[["c1a"], ["c2a"], ["c3a"]], [["c1b"], ["c2b"], ["c3b"]]]
    assert _grey_matter(natives) == ["c1a", "c1b"]


@pytest.mark.parametrize("graph2use", ["colored", "hierarchical"])
def test_spm_route_draws_and_pickles(tmp_path, graph2use):
    wf = init_spm_anatcl_wf()
    wf.base_dir = str(tmp_path)
    wf.write_graph(graph2use=graph2use, format="png")
    assert list((tmp_path / wf.name).glob("graph*.png"))
    assert pickle.loads(pickle.dumps(wf)).name == "spm_anatcl_wf"
