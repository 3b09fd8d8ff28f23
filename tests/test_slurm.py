"""The encoding workflow runs on a real Slurm cluster through Nipype's SLURM plugin, and the
participant level's shards are one Slurm job each."""

import getpass
import re
import subprocess

import pytest
from slurm_cluster import slurm_cluster
from test_workflows_encoding import _embeddings_by_input, _iterated_encoding

from anatcl_nipype.data import make_cat12_cohort

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


def test_sharded_participant_level_submits_one_slurm_job_per_shard(tmp_path, random_weights):
    from test_shards import anatcl_nipype, assert_same_outputs

    cohort = make_cat12_cohort(tmp_path / "cohort", n_subjects=3, seed=3)
    common = [cohort.root, "participant", "--weights", random_weights]
    code, _, err = anatcl_nipype(common[0], tmp_path / "local", *common[1:], "-w",
                                 tmp_path / "local_work", "--shard-size", 1)
    assert code == 0, err
    with slurm_cluster(tmp_path / "slurm") as env:
        env["LOGNAME"] = getpass.getuser()  # nipype's SLURM plugin names jobs with it
        code, out, err = anatcl_nipype(
            common[0], tmp_path / "slurm_out", *common[1:], "-w", tmp_path / "slurm_work",
            "--shard-size", 2, "--plugin", "SLURM", "--plugin-args",
            '{"sbatch_args": "--mem=1800 --cpus-per-task=1", "poll_sleep_duration": 1}',
            env=env)
        assert code == 0, out + err
        jobs = subprocess.run(["scontrol", "show", "job", "--oneliner"], env=env, check=True,
                              capture_output=True, text=True).stdout.splitlines()
    # Slurm's own record (completed jobs stay listed for MinJobAge, 300 s): two jobs, one per
    # shard, and nothing else of the run went through sbatch
    names = sorted(re.search(r"JobName=(\S+)", job).group(1) for job in jobs)
    assert [name.split(".")[0] for name in names] == ["anatcl_encode_shard_1",
                                                      "anatcl_encode_shard_2"]
    assert all(re.search(r"JobState=COMPLETED", job) for job in jobs)
    scripts = sorted(p.name for p in (tmp_path / "slurm_work").rglob("batchscript_*.sh"))
    assert len(scripts) == 2 and all("anatcl_encode_shard_" in name for name in scripts)
    assert "anatcl_encode_shard_2 done: 1 of 1 scan(s) encoded (sub-03)" in out
    assert_same_outputs(tmp_path / "local", tmp_path / "slurm_out",
                        also_volatile=("nipype_plugin", "nipype_plugin_args"))
