"""Never silent: every phase prints, failures are counted, the run is recorded."""

import io
import json
import pickle
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import write_map
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from nipype.utils.filemanip import loadpkl

from anatcl_nipype.cli.execution import ProgressPrinter, RunReport, run_workflow
from anatcl_nipype.cli.parser import Options
from anatcl_nipype.cli.progress import Phases
from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.reports.collect import decode_traceback


def test_a_silent_phase_prints_a_line_naming_what_runs():
    stream = io.StringIO()
    phases = Phases(stream=stream, interval=0.2)
    with phases("encoding", doing=lambda: "running: sub-01 anatcl_encode"):
        time.sleep(0.7)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("  encoding: still working (") and
               line.endswith("s); running: sub-01 anatcl_encode") for line in lines)
    assert list(phases.seconds) == ["encoding"]


def test_a_phase_that_speaks_needs_no_heartbeat():
    stream = io.StringIO()
    phases = Phases(stream=stream, interval=0.5)
    with phases("discovery"):
        for number in range(6):
            phases.say(f"line {number}")
            time.sleep(0.1)
    assert stream.getvalue().splitlines() == [f"line {number}" for number in range(6)]


def test_summary_and_record_list_phases_in_order_then_node_time():
    phases = Phases(stream=io.StringIO())
    phases.seconds = {"discovery": 0.25, "start-up": 2.0, "workflow": 30.0, "report": 1.5}
    phases.steps = {"encoding": 24.0, "sinks": 1.25}
    assert phases.summary() == (
        "Elapsed: discovery 0.2 s, start-up 2.0 s, workflow 30.0 s, report 1.5 s; total 33.8 s"
        "\n  node time: encoding 24.0 s, sinks 1.2 s")
    assert list(phases.recorded().items()) == [
        ("discovery", 0.25), ("start-up", 2.0), ("workflow", 30.0), ("report", 1.5),
        ("node time: encoding", 24.0), ("node time: sinks", 1.25)]


def _encode(value):
    if value < 0:
        from anatcl_nipype.errors import VolumeError

        raise VolumeError(f"map {value}: the map is empty (all voxels are 0)")
    return value


def _branches(values, base_dir):
    """A participant workflow in miniature: one ``anatcl_encode`` per branch, then a sink."""
    workflow = pe.Workflow(name="anatcl_participant_wf", base_dir=str(base_dir))
    for label, value in values.items():
        branch = pe.Workflow(name=f"single_subject_{label}_wf")
        encode = pe.Node(niu.Function(function=_encode, input_names=["value"],
                                      output_names=["out"]), name="anatcl_encode")
        encode.inputs.value = value
        sink = pe.Node(niu.Function(function=_encode, input_names=["value"],
                                    output_names=["out"]), name="ds_embedding")
        branch.connect(encode, "out", sink, "value")
        workflow.add_nodes([branch])
    return workflow


def test_failures_are_counted_with_their_reason_and_traceback_kept(tmp_path):
    report = RunReport(total_subjects=3)
    stream = io.StringIO()
    workflow = _branches({"01": 1, "02": -2, "03": 3}, tmp_path)
    with pytest.raises(RuntimeError):  # Nipype's end of a run with a failed node
        workflow.run(plugin="Linear", plugin_args={
            "status_callback": ProgressPrinter(report, stream=stream)})
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == [
        "  [1/3] sub-01: anatcl_encode done",
        "  [2/3] sub-02 failed: map -2: the map is empty (all voxels are 0)",
        "  [3/3] sub-03: anatcl_encode done"]
    assert report.failed == {"sub-02": "map -2: the map is empty (all voxels are 0)"}
    last = report.tracebacks["sub-02"].strip().splitlines()[-1]
    assert last == ("anatcl_nipype.errors.VolumeError: map -2: the map is empty "
                    "(all voxels are 0)")
    assert set(report.step_seconds) == {"encoding", "sinks"}
    assert report.running == {}


def test_the_progress_printer_pickles_and_its_copy_prints_the_same_lines(capsys):
    done = SimpleNamespace(name="anatcl_encode",
                           fullname="anatcl_participant_wf.single_subject_01_wf.anatcl_encode")
    printer = ProgressPrinter(RunReport(total_subjects=2))
    copy = pickle.loads(pickle.dumps(printer))
    for callback in (printer, copy):
        callback(done, "start")
        callback(done, "end")
    assert capsys.readouterr().out.splitlines() == ["  [1/2] sub-01: anatcl_encode done"] * 2
    assert copy.report.done == ["sub-01"] and copy.report.running == {}


def _double(x):
    return 2 * x


@pytest.mark.parametrize("nprocs", [1, 2])  # Linear, MultiProc: how the command line runs
def test_a_mapnode_runs_with_the_command_lines_progress_callback(tmp_path, nprocs):
    """Nipype pickles a MapNode with the plugin's arguments, the status callback among them."""
    workflow = pe.Workflow(name="toy_wf")
    double = pe.MapNode(niu.Function(function=_double, input_names=["x"], output_names=["y"]),
                        iterfield=["x"], name="double")
    double.inputs.x = [1, 2, 3]
    workflow.add_nodes([double])
    options = Options(cat12_dir=tmp_path, output_dir=tmp_path / "out", nprocs=nprocs,
                      work_dir=tmp_path / "work")
    report = run_workflow(workflow, options, RunReport())
    assert report.failed == {} and set(report.step_seconds) == {"other steps"}
    result = loadpkl(tmp_path / "work" / "toy_wf" / "double" / "result_double.pklz")
    assert result.outputs.y == [2, 4, 6]


@pytest.mark.slow
def test_participant_level_prints_every_phase_counts_failures_and_records_the_run(
        random_weights, tmp_path):
    cohort = make_cat12_cohort(tmp_path / "cohort", n_subjects=2, seed=5)
    cat12 = tmp_path / "cat12"
    for subject in ("sub-01", "sub-02"):
        (cat12 / subject / "mri").mkdir(parents=True)
        (cat12 / subject / "mri" / f"mwp1{subject}_T1w.nii").symlink_to(cohort.gm_map(subject))
    (cat12 / "sub-09" / "mri").mkdir(parents=True)
    write_map(cat12 / "sub-09" / "mri" / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121)))
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "anatcl_nipype", cat12, output, "participant", "--weights",
         random_weights, "-w", tmp_path / "work"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 3, done.stderr
    out = done.stdout
    counted = [line for line in out.splitlines() if line.startswith("  [")]
    assert sorted(line[:8] for line in counted) == ["  [1/3] ", "  [2/3] ", "  [3/3] "]
    assert any("] sub-09 failed: " in line and
               line.endswith(": the map is empty (all voxels are 0)") for line in counted)
    summary = next(line for line in out.splitlines() if line.startswith("Elapsed: "))
    assert [part.split(" ")[0] for part in summary[9:].split(", ")][:3] == [
        "discovery", "start-up", "encoding"]
    assert "report" in summary and "node time: encoding" in out
    record = json.loads((output / "anatcl" / "run-participant.json").read_text())
    assert record["command"] == ["anatcl-nipype", str(cat12), str(output), "participant",
                                 "--weights", str(random_weights), "-w", str(tmp_path / "work")]
    assert [phase["name"] for phase in record["phases"]][:3] == [
        "discovery", "start-up", "encoding, regional and sinks"]
    rows = [line.split("\t") for line in
            (output / "anatcl" / "failed.tsv").read_text().splitlines()]
    assert rows[0] == ["participant_id", "path", "reason", "traceback"]
    assert rows[1][0] == "sub-09" and decode_traceback(rows[1][3]).splitlines()[-1].endswith(
        "the map is empty (all voxels are 0)")
