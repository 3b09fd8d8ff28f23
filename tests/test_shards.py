"""The participant level's sharded path (``--shard-size``): maps encoded N per node, every
output the same as one node per participant, a bad map failing only its own scan."""

import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import write_map

from anatcl_nipype.cli.execution import ProgressPrinter, RunReport
from anatcl_nipype.cli.parser import parse_options
from anatcl_nipype.cli.participant import choose_shard_size, failures_by_scan
from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.inputs import discover_cat12

#: Output files whose bytes differ between any two runs, sharded or not: the run record
#: holds the command typed, start/finish times and seconds per phase, and the report shows
#: that record (and dates its figures).
RUN_DEPENDENT = ("anatcl/run-participant.json", "anatcl/report.html")
#: The fields of the run record that differ between two runs of the same cohort.
RUN_RECORD_VOLATILE = ("command", "duration_s", "finished", "started", "phases")


def anatcl_nipype(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=env)
    return done.returncode, done.stdout, done.stderr


def files_under(folder):
    return {str(path.relative_to(folder)): path for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


def assert_same_outputs(one, other, also_volatile=()):
    """Every file in both folders, byte for byte; the run record but its volatile fields
    (and ``also_volatile``, e.g. the plugin where the two runs used different ones)."""
    ours, theirs = files_under(one), files_under(other)
    assert sorted(ours) == sorted(theirs)
    for name, path in ours.items():
        if name not in RUN_DEPENDENT:
            assert path.read_bytes() == theirs[name].read_bytes(), name
    records = [json.loads((folder / RUN_DEPENDENT[0]).read_text()) for folder in (one, other)]
    for record in records:
        for key in (*RUN_RECORD_VOLATILE, *also_volatile):
            record.pop(key)
    assert records[0] == records[1]


def subjects_of(root, n):
    return [SimpleNamespace(scan_id=f"sub-0{i}", gm_modulated=f"{root}/sub-0{i}.nii",
                            as_inputs=lambda i=i: {"participant_id": f"sub-0{i}"})
            for i in range(1, n + 1)]


def test_workflow_has_one_submitted_node_per_shard_and_builds_without_torch():
    code = (
        "import json, sys\n"
        "from anatcl_nipype.workflows.base import init_anatcl_participant_wf\n"
        "from nipype.pipeline.engine.utils import generate_expanded_graph\n"
        "subjects = [{'participant_id': f'sub-0{i}', 'session_id': 'ses-1',\n"
        "             'gm_modulated': f'/d/mwp1sub-0{i}_ses-1_T1w.nii'} for i in range(1, 6)]\n"
        "wf = init_anatcl_participant_wf(subjects=subjects, output_dir='/tmp/o', shard_size=2)\n"
        "graph = generate_expanded_graph(wf._create_flat_graph())\n"
        "print(json.dumps(sorted(n.fullname for n in graph.nodes()\n"
        "                        if not n.run_without_submitting)))\n"
        "print(json.dumps(sorted(n.inputs.scan_ids for n in graph.nodes()\n"
        "                        if 'encode_shard' in n.name)))\n"
        "print(json.dumps('torch' in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    submitted, scans, torch = map(json.loads, done.stdout.splitlines())
    assert submitted == [f"anatcl_participant_wf.anatcl_encode_shard_{k}" for k in (1, 2, 3)]
    assert scans == [[f"sub-0{i}_ses-1" for i in pair] for pair in ((1, 2), (3, 4), (5,))]
    assert torch is False


@pytest.mark.parametrize("argv, device_has_gpu, expected, line", [
    ([], False, 1, "Shards: off, one encoding node per participant (the default on a CPU; "
                   "set with --shard-size)"),
    (["--device", "cuda"], False, 64, "Shards: 2 encoding node(s) of up to 64 scans each "
                                      "(the default on CUDA; set with --shard-size)"),
    ([], True, 64, "Shards: 2 encoding node(s) of up to 64 scans each (the default on CUDA; "
                   "set with --shard-size)"),
    (["--device", "cpu"], True, 1, "Shards: off, one encoding node per participant "
                                   "(the default on a CPU; set with --shard-size)"),
    (["--shard-size", "8"], False, 8, "Shards: 13 encoding node(s) of up to 8 scans each "
                                      "(--shard-size 8)"),
])
def test_shard_size_defaults_to_the_device(argv, device_has_gpu, expected, line, monkeypatch,
                                           capsys):
    monkeypatch.setattr("anatcl_nipype.cli.participant.gpu_visible", lambda: device_has_gpu)
    options = parse_options(["cat12", "out", "participant", *argv])
    assert choose_shard_size(options, 100) == expected
    assert capsys.readouterr().out == line + "\n"


def test_shard_size_must_be_positive(capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_options(["cat12", "out", "participant", "--shard-size", "0"])
    assert stopped.value.code == 2
    assert "--shard-size: '0': expected a positive number" in capsys.readouterr().err


def test_a_shard_that_fails_as_a_whole_fails_each_of_its_scans():
    subjects = subjects_of("/d", 3)
    failed = {"anatcl_participant_wf.anatcl_encode_shard_2": "out of memory",
              "anatcl_participant_wf.single_subject_01_wf.ds_embedding": "disk full"}
    assert failures_by_scan(failed, subjects, shard_size=2) == {
        "sub-01": ("/d/sub-01.nii", "disk full"), "sub-03": ("/d/sub-03.nii", "out of memory")}


def test_progress_says_one_line_per_shard_with_its_scans():
    stream = io.StringIO()
    printer = ProgressPrinter(RunReport(total_subjects=5), stream=stream)
    shard = SimpleNamespace(
        name="anatcl_encode_shard_1", fullname="anatcl_participant_wf.anatcl_encode_shard_1",
        inputs=SimpleNamespace(scan_ids=["sub-01", "sub-02", "sub-03"]),
        result=SimpleNamespace(outputs=SimpleNamespace(
            scan_ids=["sub-01", "sub-02", "sub-03"], errors=["", "the map is empty", ""])))
    printer(shard, "start")
    printer(shard, "end")
    printer(SimpleNamespace(name="anatcl_encode_shard_2",
                            fullname="anatcl_participant_wf.anatcl_encode_shard_2",
                            inputs=SimpleNamespace(scan_ids=["sub-04", "sub-05"]),
                            output_dir=lambda: "/nonexistent"), "exception")
    assert stream.getvalue().splitlines() == [
        "  [2/5] anatcl_encode_shard_1 done: 2 of 3 scan(s) encoded (sub-01 .. sub-03)",
        "  [3/5] anatcl_encode_shard_2 failed (2 scans): crashed; see the crash file in the "
        "work folder"]
    assert printer.report.done == ["sub-01", "sub-03"]
    assert printer.report.step_seconds["encoding"] >= 0


@pytest.mark.slow
def test_shard_interface_writes_what_the_single_map_interface_writes(cat12_maps, random_weights,
                                                                     tmp_path):
    from anatcl_nipype.interfaces.encoder import AnatCLEncode, AnatCLEncodeShard, SelectShardScan

    bad = write_map(tmp_path / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121)))
    maps = [cat12_maps[0], bad, cat12_maps[1]]
    shard = AnatCLEncodeShard(in_files=[str(m) for m in maps], weights=str(random_weights),
                              scan_ids=["sub-01", "sub-09", "sub-02"])
    for folder in ("shard", "alone0", "alone2"):
        (tmp_path / folder).mkdir()
    result = shard.run(cwd=str(tmp_path / "shard")).outputs
    assert result.errors[0] == result.errors[2] == "" and result.out_files[1] == []
    assert result.errors[1].endswith("the map is empty (all voxels are 0)")
    assert result.error_types == ["", "VolumeError", ""]
    for index, in_file in ((0, cat12_maps[0]), (2, cat12_maps[1])):
        alone = AnatCLEncode(in_file=str(in_file), weights=str(random_weights)).run(
            cwd=str(tmp_path / f"alone{index}")).outputs
        picked = SelectShardScan(index=index, **{name: getattr(result, name) for name in (
            "out_files", "out_jsons", "errors", "error_types")}).run().outputs
        assert Path(picked.out_file).name == Path(alone.out_file).name
        assert Path(picked.out_file).read_bytes() == Path(alone.out_file).read_bytes()
        assert Path(picked.out_json).read_bytes() == Path(alone.out_json).read_bytes()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=3, seed=3)


@pytest.mark.slow
def test_sharded_run_writes_the_same_bytes_as_one_node_per_participant(cohort, random_weights,
                                                                       tmp_path):
    runs = {}
    for size in (1, 2):
        runs[size] = anatcl_nipype(cohort.root, tmp_path / f"out{size}", "participant",
                                   "--weights", random_weights, "-w", tmp_path / f"work{size}",
                                   "--nprocs", "2", "--shard-size", size)
        assert runs[size][0] == 0, runs[size][2]
    out = runs[2][1]
    assert "Shards: 2 encoding node(s) of up to 2 scans each (--shard-size 2)" in out
    assert "anatcl_encode_shard_1 done: 2 of 2 scan(s) encoded (sub-01 .. sub-02)" in out
    assert "anatcl_encode_shard_2 done: 1 of 1 scan(s) encoded (sub-03)" in out
    assert "Done: 3 of 3 participant(s)" in out
    assert len(list((tmp_path / "out2").glob("sub-0*/anat/*_embedding.npy"))) == 3
    assert_same_outputs(tmp_path / "out1", tmp_path / "out2")


@pytest.mark.slow
def test_a_bad_map_in_a_shard_fails_only_its_scan(cohort, random_weights, tmp_path):
    cat12 = tmp_path / "cat12"
    for subject in ("sub-01", "sub-03"):
        (cat12 / subject / "mri").mkdir(parents=True)
        (cat12 / subject / "mri" / f"mwp1{subject}_T1w.nii").symlink_to(cohort.gm_map(subject))
    (cat12 / "sub-02" / "mri").mkdir(parents=True)
    write_map(cat12 / "sub-02" / "mri" / "mwp1sub-02_T1w.nii", np.zeros((121, 145, 121)))
    code, out, err = anatcl_nipype(cat12, tmp_path / "out", "participant", "--weights",
                                   random_weights, "-w", tmp_path / "work", "--shard-size", 2)
    assert code == 3, err
    assert "anatcl_encode_shard_1 done: 1 of 2 scan(s) encoded (sub-01 .. sub-02)" in out
    assert "sub-02 failed: " in out and "the map is empty (all voxels are 0)" in out
    assert "Done: 2 of 3 participant(s)" in out
    failed = (tmp_path / "out" / "anatcl" / "failed.tsv").read_text().splitlines()
    assert len(failed) == 2
    scan, path, reason = failed[1].split("\t")[:3]
    assert (scan, path) == ("sub-02", str(cat12 / "sub-02" / "mri" / "mwp1sub-02_T1w.nii"))
    assert reason.endswith("mwp1sub-02_T1w.nii: the map is empty (all voxels are 0)")
    assert sorted(p.name for p in (tmp_path / "out").glob("sub-*")) == ["sub-01", "sub-03"]
    assert (tmp_path / "out" / "sub-01" / "anat" /
            "sub-01_desc-anatclRandom_embedding.npy").is_file()


@pytest.mark.slow
def test_a_fold_ensemble_in_shards_writes_what_it_writes_per_participant(cohort, tmp_path,
                                                                        monkeypatch):
    from anatcl_nipype.encoder import write_random_checkpoint
    from anatcl_nipype.encoder.weights import cached_weights_path
    from anatcl_nipype.workflows.base import init_anatcl_participant_wf

    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path / "home"))
    for fold in (0, 2):  # seeded random checkpoints standing in for released folds
        path = cached_weights_path("global", fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(path, seed=20 + fold)
    subjects = [s.as_inputs() for s in discover_cat12(cohort.root).subjects][:2]
    for size in (1, 2):
        workflow = init_anatcl_participant_wf(subjects=subjects, output_dir=tmp_path / f"out{size}",
                                              shard_size=size, folds=(0, 2))
        workflow.base_dir = str(tmp_path / f"work{size}")
        workflow.run(plugin="Linear")
    written = files_under(tmp_path / "out2")
    assert sorted(name for name in written if name.startswith("sub-01/")) == [
        f"sub-01/anat/sub-01_desc-{kind}" for kind in (
            "anatclGlobalFold0_embedding.json", "anatclGlobalFold0_embedding.npy",
            "anatclGlobalFold2_embedding.json", "anatclGlobalFold2_embedding.npy",
            "cat12_regions.json", "cat12_regions.tsv")]
    assert sorted(written) == sorted(files_under(tmp_path / "out1"))
    for name, path in written.items():
        assert path.read_bytes() == (tmp_path / "out1" / name).read_bytes(), name
