"""Every run ends, on any number of cores: no worker inherits a used torch thread pool.

PyTorch's OpenMP pool does not survive ``fork()``: a process forked after its parent ran a
parallel torch operation blocks forever in its first parallel region (one participant with
``--nprocs 2`` hung this way). Each case runs in a child process with a timeout, so a hang
fails its test instead of stopping the suite.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.threads import FORKSERVER_HINT

#: Far above what each case needs (seconds), far below the suite's per-test limit.
HANG_SECONDS = 240


def run_python(code, *args):
    """Run ``code`` (with ``args``) in a fresh interpreter; a hang fails the test."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                              capture_output=True, text=True, timeout=HANG_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"hung for {HANG_SECONDS} s (a deadlock); output so far:\n{hung.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    return done


PARALLEL_THEN_FORK = """
    import os, torch
    from anatcl_nipype import threads
    torch.set_num_threads(2)
    conv, x = torch.nn.Conv3d(1, 8, 3), torch.randn(1, 1, 40, 40, 40)
    conv(x)  # the parent's OpenMP pool is now live
    pid = os.fork()
    if pid == 0:
        used = threads.set_torch_threads(2)
        conv(x)
        print("child threads", used, "forked after torch", threads.forked_after_torch(),
              flush=True)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
"""


def test_a_process_forked_after_torch_ran_uses_one_thread_and_says_why():
    done = run_python(PARALLEL_THEN_FORK)
    assert "child threads 1 forked after torch True" in done.stdout
    assert "was forked from one that had used PyTorch" in done.stderr
    assert FORKSERVER_HINT in done.stderr


def test_a_clean_template_forks_workers_that_keep_their_threads():
    """The forkserver's case: torch imported, never run, so its children may use threads."""
    done = run_python("""
        import os, torch
        from anatcl_nipype import threads
        threads.mark_clean_template()
        pid = os.fork()
        if pid == 0:
            used = threads.set_torch_threads(2)
            torch.nn.Conv3d(1, 8, 3)(torch.randn(1, 1, 40, 40, 40))
            print("child threads", used, flush=True)
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    """)
    assert "child threads 2" in done.stdout
    assert "forked from one" not in done.stderr


@pytest.fixture(scope="module")
def three_participants(tmp_path_factory, random_weights):
    folder = tmp_path_factory.mktemp("fork")
    cohort = make_cat12_cohort(folder / "cat12", n_subjects=3, seed=5, n_sites=1)
    return cohort.cat12_dir, random_weights


CLI_MATRIX = """
    import itertools, json, sys, time
    from pathlib import Path
    from anatcl_nipype.cli.main import main
    cat12, weights, root = sys.argv[1:4]
    ended = {{}}
    for n_participants, nprocs, omp in itertools.product({participants}, {nprocs}, {omp}):
        cell = f"p{{n_participants}}-n{{nprocs}}-t{{omp or 'default'}}"
        print("start", cell, flush=True)  # the last one printed names a hang
        argv = [cat12, f"{{root}}/{{cell}}", "participant", "--weights", weights,
                "--nprocs", str(nprocs), "-w", f"{{root}}/work-{{cell}}",
                "--participant-label", *[f"0{{i}}" for i in range(1, n_participants + 1)]]
        argv += ["--omp-nthreads", str(omp)] if omp else []
        code = main(argv)
        ended[cell] = [code, sorted(p.name for p in Path(root, cell).rglob("*_embedding.npy"))]
    print("RESULT", json.dumps(ended))
"""


@pytest.mark.slow
@pytest.mark.integration
def test_every_participant_run_ends_whatever_the_cores_and_threads(three_participants,
                                                                   tmp_path):
    """participants {1, 2, 3} x --nprocs {1, 2, 4} x --omp-nthreads {default, 1, 2}, in one
    process that has run torch before each run (the parent checks the weights): each run
    must end with every embedding written."""
    cat12, weights = three_participants
    code = CLI_MATRIX.format(participants=(1, 2, 3), nprocs=(1, 2, 4), omp=(None, 1, 2))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(cat12), str(weights), str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ended = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert len(ended) == 27
    for cell, (code, embeddings) in ended.items():
        assert code == 0, cell
        assert [name.split("_")[0] for name in embeddings] == \
            [f"sub-0{i}" for i in range(1, int(cell[1]) + 1)], cell


@pytest.mark.slow
@pytest.mark.integration
def test_one_participant_with_two_processes_ends_in_a_fresh_command(three_participants,
                                                                    tmp_path):
    """The case that hung, exactly as typed: a fresh ``anatcl-nipype`` process."""
    cat12, weights = three_participants
    try:
        done = subprocess.run(
            [sys.executable, "-m", "anatcl_nipype", str(cat12), str(tmp_path / "out"),
             "participant", "--weights", str(weights), "--nprocs", "2",
             "--participant-label", "01", "-w", str(tmp_path / "work")],
            capture_output=True, text=True, timeout=HANG_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("one participant with --nprocs 2 hung")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((tmp_path / "out").rglob("sub-01_*_embedding.npy"))) == 1
    assert "[1/1] sub-01: anatcl_encode done" in done.stdout
    assert "[Node]" not in done.stdout + done.stderr  # workers as quiet as the parent


PYTHON_API = """
    import logging, sys
    from pathlib import Path
    import numpy as np
    from anatcl_nipype.encoder import AnatCLEncoder
    from anatcl_nipype.workflows import init_anatcl_participant_wf
    logging.basicConfig()
    cat12, weights, out, plugin_args = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    from anatcl_nipype.inputs import discover_cat12
    subjects = [scan.as_inputs() for scan in discover_cat12(cat12, ["01", "02"]).subjects]
    parent = AnatCLEncoder(weights=weights, num_threads=2).encode(
        [subjects[0]["gm_modulated"]])
    wf = init_anatcl_participant_wf(subjects=subjects, output_dir=str(out / "derivatives"),
                                    weights=weights, omp_nthreads=2, name="api_wf")
    wf.base_dir = str(out / "work")
    wf.run("MultiProc", plugin_args={"n_procs": 2, **eval(plugin_args)})
    written = sorted(out.rglob("*_embedding.npy"))
    print("written", [p.name for p in written])
    print("same as parent", np.array_equal(np.load(written[0]), parent[0]))
"""


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("plugin_args, threads_note", [
    ("{}", True),  # Nipype's default: workers forked from this process
    ("{'mp_context': 'forkserver'}", False),
])
def test_python_api_encode_in_the_parent_then_run_multiproc(three_participants, tmp_path,
                                                            plugin_args, threads_note):
    """A user's script encodes first, then runs a workflow with 2 threads per node."""
    cat12, weights = three_participants
    done = run_python(PYTHON_API, cat12, weights, tmp_path, plugin_args)
    written = done.stdout.split("written ", 1)[1].splitlines()[0]
    assert [name.split("_")[0] for name in eval(written)] == ["sub-01", "sub-02"]
    assert "same as parent True" in done.stdout
    assert ("was forked from one that had used PyTorch" in done.stderr) is threads_note
