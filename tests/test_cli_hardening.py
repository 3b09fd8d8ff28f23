"""The command line against hostile paths, shared weights problems, failing schedulers, and
the run-control options (--stop-on-first-crash, --omp-nthreads, --mem-gb)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe

from anatcl_nipype.cli.execution import RunReport, run_workflow
from anatcl_nipype.cli.parser import Options, parse_options
from anatcl_nipype.cli.paths import check_output_outside_input
from anatcl_nipype.cli.supervision import SchedulerError, plugin_settings
from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder.precision import CPUFeatures, bf16_speed
from anatcl_nipype.errors import AnatCLError

GUARD_SECONDS = 300  # a guard against a hang, never asserted on


def anatcl_nipype(*args, env=None, cwd=None):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=GUARD_SECONDS, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
    return done.returncode, done.stdout, done.stderr


def tree(root):
    """Every path under ``root``, relative, sorted (to see that nothing was written)."""
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=2, seed=11)


# ------------------------------------------------------------------------------ hostile paths
@pytest.mark.parametrize("case, message", [
    ("missing CAT12 folder", "absent: no such folder; pass the folder CAT12 wrote into"),
    ("CAT12 folder is a file", "a_file: a file, not a folder"),
    ("output is a file", "a_file: the output folder is a file; choose a folder"),
    ("work folder is a file", "a_file: the work folder is a file; choose a folder"),
    ("output under a file", "cannot create the output folder"),
    ("output is the CAT12 folder", "the output folder is the CAT12 folder itself"),
    ("output inside the CAT12 folder", "the output folder is inside the CAT12 folder"),
    ("line break in the output name", "out\\nput': the output folder's name holds a control "
                                      "character"),
    ("line break in the work name", "wo\\nrk': the work folder's name holds a control"),
    ("tab in the CAT12 name", "cat\\t12': the CAT12 folder's name holds a control"),
    ("line break in the weights name", "w\\n.pth': the weights file's name holds a control"),
])
def test_hostile_paths_are_one_line_errors_and_write_nothing(cohort, random_weights, tmp_path,
                                                             case, message):
    (tmp_path / "a_file").write_text("x")
    cat12, output, work = Path(cohort.root), tmp_path / "out", tmp_path / "work"
    weights = random_weights
    if case == "missing CAT12 folder":
        cat12 = tmp_path / "absent"
    elif case == "CAT12 folder is a file":
        cat12 = tmp_path / "a_file"
    elif case == "output is a file":
        output = tmp_path / "a_file"
    elif case == "work folder is a file":
        work = tmp_path / "a_file"
    elif case == "output under a file":
        output = tmp_path / "a_file" / "out"
    elif case == "output is the CAT12 folder":
        output = cat12
    elif case == "output inside the CAT12 folder":
        output = cat12 / "anatcl"
    elif case == "line break in the output name":
        output = tmp_path / "out\nput"
    elif case == "line break in the work name":
        work = tmp_path / "wo\nrk"
    elif case == "tab in the CAT12 name":
        cat12 = tmp_path / "cat\t12"
        cat12.symlink_to(cohort.root, target_is_directory=True)
    elif case == "line break in the weights name":
        weights = tmp_path / "w\n.pth"
    before, cohort_before = tree(tmp_path), tree(cohort.root)
    code, out, err = anatcl_nipype(cat12, output, "participant", "--weights", weights,
                                   "-w", work, cwd=tmp_path)
    assert code == 1
    assert err.startswith("anatcl-nipype: error: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert tree(tmp_path) == before and tree(cohort.root) == cohort_before


def test_output_under_the_inputs_derivatives_folder_is_allowed(tmp_path):
    check_output_outside_input(tmp_path / "derivatives" / "anatcl", tmp_path)
    with pytest.raises(AnatCLError, match="inside the CAT12 folder"):
        check_output_outside_input(tmp_path / "sub-01" / "out", tmp_path)


# ---------------------------------------------------------------- weights: one error, no work
FAST_BF16 = bf16_speed(CPUFeatures.of_this_machine())[0] == "fast"


@pytest.mark.parametrize("case, message", [
    ("not a checkpoint", "bad.pth: not a readable PyTorch checkpoint"),
    pytest.param("bf16 refused", "bf16 on this CPU is emulated",
                 marks=pytest.mark.skipif(FAST_BF16, reason="this CPU runs bf16 fast")),
    ("download unreachable", "cannot download AnatCL weights (ConnectionError"),
])
def test_a_weights_problem_is_one_error_before_any_work(cohort, random_weights, tmp_path,
                                                        case, message):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    extra, env = ["--weights", random_weights], {"ANATCL_NIPYPE_HOME": str(tmp_path / "home")}
    if case == "not a checkpoint":
        extra = ["--weights", tmp_path / "bad.pth"]
    elif case == "bf16 refused":
        extra += ["--precision", "bf16", "--device", "cpu"]
    else:
        extra, env["ANATCL_NIPYPE_WEIGHTS_URL"] = [], "http://127.0.0.1:9"
    code, out, err = anatcl_nipype(cohort.root, tmp_path / "out", "participant", *extra,
                                   "--nprocs", "2", "-w", tmp_path / "work", env=env)
    assert code == 1
    last = err.splitlines()[-1]
    assert last.startswith("anatcl-nipype: error: ") and message in last
    assert "Traceback" not in err and "FAILED" not in out and "Encoding" not in out
    assert not list((tmp_path / "out").glob("sub-*"))
    assert not (tmp_path / "work" / "crashes").exists()


# ---------------------------------------------------------------- a scheduler that cannot hang
def run_script(tmp_path, body):
    """Run ``body`` in a fresh Python with a hang guard; return (exit code, stdout+stderr)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=GUARD_SECONDS, env=dict(os.environ,
                                                                     OMP_NUM_THREADS="1"))
    return done.returncode, done.stdout + done.stderr


WORKFLOW = """
    import os, sys, signal
    from pathlib import Path
    from nipype.interfaces.utility import Function
    from nipype.pipeline import engine as pe

    def step(x, killed):
        import os, signal, time
        if x == killed:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
        time.sleep(0.3)
        return x

    def workflow(n=6, killed=-1):
        wf = pe.Workflow(name="toy_wf", base_dir=str(Path(sys.argv[1]) / "work"))
        wf.config["execution"]["crashdump_dir"] = str(Path(sys.argv[1]) / "crashes")
        for x in range(n):
            node = pe.Node(Function(input_names=["x", "killed"], output_names=["y"],
                                    function=step), name=f"step{x}")
            node.inputs.x, node.inputs.killed = x, killed
            wf.add_nodes([node])
        return wf
"""


def test_an_exception_in_the_status_callback_ends_the_run(tmp_path):
    code, output = run_script(tmp_path, WORKFLOW + """
    from anatcl_nipype.cli.supervision import GuardedCallback, SchedulerError, make_runner

    def progress(node, status):
        if status == "end":
            raise KeyError("no such participant")

    runner = make_runner("MultiProc", {"n_procs": 2, "status_callback": GuardedCallback(progress)})
    try:
        workflow().run(plugin=runner)
    except SchedulerError as error:
        print(f"stopped: {error}")
    """)
    assert code == 0, output
    assert "stopped: the progress callback failed on node toy_wf.step" in output
    assert "(end): KeyError: 'no such participant'; the run was stopped" in output


def test_a_worker_killed_from_outside_ends_the_run_with_a_clear_error(tmp_path):
    code, output = run_script(tmp_path, WORKFLOW + """
    from anatcl_nipype.cli.execution import RunReport, run_workflow
    from anatcl_nipype.cli.parser import Options
    from anatcl_nipype.errors import AnatCLError

    root = Path(sys.argv[1])
    options = Options(cat12_dir=root, output_dir=root / "out", nprocs=2, work_dir=root / "work")
    try:
        run_workflow(workflow(killed=0), options, RunReport())
    except AnatCLError as error:
        print(f"error: {error}")
    """)
    assert code == 0, output
    assert "error: a worker process died (A process in the process pool was terminated " \
           "abruptly" in output
    assert "rerun with the same -w to resume" in output


# ------------------------------------------------------------------------ run-control options
def toy_workflow(tmp_path, n, function, mem_gb=0.2):
    wf = pe.Workflow(name="toy_wf", base_dir=str(tmp_path / "work"))
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crashes")
    for x in range(n):
        node = pe.Node(Function(input_names=["x"], output_names=["y"], function=function),
                       name=f"step{x}", mem_gb=mem_gb)
        node.inputs.x = x
        wf.add_nodes([node])
    return wf


def fail(x):
    raise ValueError(f"step {x} cannot run")


def test_run_control_options_are_parsed():
    options = parse_options(["c", "o", "participant", "--stop-on-first-crash",
                             "--omp-nthreads", "3", "--mem-gb", "2.5", "--wait-for-lock"])
    assert (options.stop_on_first_crash, options.omp_nthreads, options.mem_gb,
            options.wait_for_lock) == (True, 3, 2.5, True)
    defaults = parse_options(["c", "o", "participant"])
    assert (defaults.stop_on_first_crash, defaults.omp_nthreads, defaults.mem_gb) == \
        (False, None, None)
    for bad in (["--mem-gb", "0"], ["--omp-nthreads", "-1"], ["--mem-gb", "lots"]):
        with pytest.raises(SystemExit) as usage:
            parse_options(["c", "o", "participant", *bad])
        assert usage.value.code == 2


@pytest.mark.parametrize("plugin, plugin_args, nprocs, mem_gb, expected", [
    (None, {}, 1, None, ("Linear", {})),
    (None, {}, 1, 4, ("Linear", {})),
    (None, {}, 4, None, ("MultiProc", {"n_procs": 4, "mp_context": "forkserver"})),
    (None, {}, 4, 6, ("MultiProc", {"n_procs": 4, "mp_context": "forkserver",
                                    "memory_gb": 6.0})),
    ("MultiProc", {"memory_gb": 2}, 2, 6, ("MultiProc", {"n_procs": 2, "memory_gb": 2,
                                                         "mp_context": "forkserver"})),
    ("MultiProc", {"mp_context": "fork"}, 2, None, ("MultiProc", {"n_procs": 2,
                                                                  "mp_context": "fork"})),
    ("SLURM", {"sbatch_args": "-p x"}, 4, 6, ("SLURM", {"sbatch_args": "-p x"})),
])
def test_plugin_settings(plugin, plugin_args, nprocs, mem_gb, expected):
    assert plugin_settings(plugin, plugin_args, nprocs, mem_gb) == expected


def test_mem_gb_is_the_memory_multiproc_schedules(tmp_path):
    options = Options(cat12_dir=tmp_path, output_dir=tmp_path / "out", nprocs=2,
                      work_dir=tmp_path / "work", mem_gb=0.25)
    with pytest.raises(SchedulerError, match=r"toy_wf\.step\d needs 1 GB and .* the run "
                                             r"allows 0\.25 GB \(--mem-gb\) and 2 process"):
        run_workflow(toy_workflow(tmp_path, 2, fail, mem_gb=1), options, RunReport())
    options.mem_gb = 2
    report = run_workflow(toy_workflow(tmp_path, 2, fail, mem_gb=1), options, RunReport())
    assert len(report.failed) == 2  # scheduled with 2 GB: both ran (and failed)


@pytest.mark.parametrize("stop", [True, False])
def test_stop_on_first_crash(tmp_path, stop):
    options = Options(cat12_dir=tmp_path, output_dir=tmp_path / "out", nprocs=2,
                      plugin_args={"n_procs": 1}, work_dir=tmp_path / "work",
                      stop_on_first_crash=stop)
    report, bystander = RunReport(), subprocess.Popen(["sleep", "600"])  # not the run's
    if stop:
        with pytest.raises(SchedulerError, match=r"^stopped at the first crash "
                           r"\(--stop-on-first-crash\): toy_wf\.step\d: .*step \d cannot "
                           r"run; fix it and rerun with the same -w to resume$"):
            run_workflow(toy_workflow(tmp_path, 4, fail), options, report)
        assert len(report.failed) == 1
    else:
        run_workflow(toy_workflow(tmp_path, 4, fail), options, report)
        assert len(report.failed) == 4
    assert bystander.poll() is None  # stopping the run's workers spared it
    bystander.kill()
    bystander.wait()


@pytest.mark.slow
def test_a_run_into_unicode_and_shell_like_folders_with_run_control_options(
        cohort, random_weights, tmp_path):
    output, work = tmp_path / "d\u00e9riv\u00e9s $(touch PWNED)", tmp_path / "w`touch PWNED`;x"
    code, out, err = anatcl_nipype(cohort.root, output, "participant", "--weights",
                                   random_weights, "--participant-label", "01", "--nprocs", "2",
                                   "--omp-nthreads", "2", "--mem-gb", "4",
                                   "--stop-on-first-crash", "--write-graph", "-w", work,
                                   cwd=tmp_path)
    assert code == 0, err
    assert "Done: 1 of 1 participant(s)" in out
    assert (output / "anatcl" / "graph.svg").read_text().lstrip().startswith("<?xml")
    assert (output / "sub-01" / "anat" / "sub-01_desc-anatclRandom_embedding.npy").is_file()
    assert list(tmp_path.rglob("PWNED")) == []
    from nipype.utils.filemanip import loadpkl

    [encode] = work.rglob("anatcl_encode/_node.pklz")
    assert loadpkl(encode).n_procs == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, work.name])
