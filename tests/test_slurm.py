"""The encoding workflow runs on a real Slurm cluster through Nipype's SLURM plugin."""

import getpass

import pytest

from anatcl_nipype.data import make_cat12_cohort
from slurm_cluster import slurm_cluster
from test_workflows_encoding import _embeddings_by_input, _iterated_encoding

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.slurm]


def test_four_subjects_on_slurm_equal_multiproc(tmp_path, random_weights, monkeypatch):
    maps = make_cat12_cohort(tmp_path / "cohort", n_subjects=4, seed=5).gm_maps
    _iterated_encoding(maps, random_weights, tmp_path / "multiproc").run(
        plugin="MultiProc", plugin_args={"n_procs": 2})
    with slurm_cluster(tmp_path / "slurm") as env:
        monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
        monkeypatch.setenv("LOGNAME", getpass.getuser())  # nipype's SLURM plugin reads it
        wf = _iterated_encoding(maps, random_weights, tmp_path / "slurm_work")
        wf.run(plugin="SLURM", plugin_args={"sbatch_args": "--mem=1800 --cpus-per-task=1",
                                            "poll_sleep_duration": 1})
    on_slurm = _embeddings_by_input(tmp_path / "slurm_work")
    local = _embeddings_by_input(tmp_path / "multiproc")
    assert sorted(on_slurm) == sorted(local) and len(local) == 4
    for path, embedding in local.items():
        assert (on_slurm[path] == embedding).all()
    batch_scripts = list((tmp_path / "slurm_work").rglob("batchscript_*.sh"))
    assert len(batch_scripts) >= 4  # the nodes really went through sbatch
