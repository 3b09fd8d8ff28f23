"""SIGTERM/SIGINT during a MultiProc run: workers stopped, nothing partial left, one line,
exit 143/130; re-running with the same work folder completes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from anatcl_nipype.data import make_cat12_cohort

pytestmark = pytest.mark.slow
GUARD_SECONDS = 300  # only a guard against a hang, never asserted on


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=4, seed=5)


def command(cohort, weights, tmp_path):
    return [sys.executable, "-m", "anatcl_nipype", str(cohort.root), str(tmp_path / "out"),
            "participant", "--weights", str(weights), "--nprocs", "2", "-w",
            str(tmp_path / "work")]


def descendants(pid):
    """Living descendants of ``pid``, read from /proc (psutil is not a dependency)."""
    found, queue = set(), [pid]
    while queue:
        for task in Path(f"/proc/{queue.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            queue.extend(children - found)
            found |= children
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def outlived(pids, grace=5.0):
    """Those of ``pids`` still alive ``grace`` s after the run ended (multiprocessing's
    resource tracker ends when it reads that the run has, a moment later)."""
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def wait_until_encoding(run, work_dir):
    """Until a worker process runs an encoding node of ``run``; returns the workers."""
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before it could be interrupted"
        workers = descendants(run.pid)
        if workers and list(Path(work_dir).rglob("anatcl_encode/_report")):
            return workers
        time.sleep(0.1)
    raise AssertionError("encoding never started")


def assert_no_partial_outputs(out):
    assert sorted(out.rglob(".*.tmp")) == [] and not (out / ".anatcl-staging").exists()
    for array in out.rglob("*.npy"):
        assert np.load(array).shape == (512,)
    for sidecar in out.rglob("*.json"):
        json.loads(sidecar.read_text())


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_workers_and_the_run_resumes(cohort, random_weights, tmp_path,
                                                         signum, code):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        run = subprocess.Popen(command(cohort, random_weights, tmp_path), stdout=out,
                               stderr=err, env=env, start_new_session=True)
        workers = wait_until_encoding(run, tmp_path / "work")
        if signum == signal.SIGINT:
            os.killpg(run.pid, signum)  # Ctrl-C: the whole process group
        else:
            os.kill(run.pid, signum)  # `kill`: the main process only
        assert run.wait(timeout=GUARD_SECONDS) == code
    stderr = (tmp_path / "stderr").read_text()
    assert stderr.splitlines()[-1] == "anatcl-nipype: interrupted; rerun with the same -w to resume"
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr
    assert outlived(workers) == []
    assert_no_partial_outputs(tmp_path / "out")
    assert not (tmp_path / "out" / "anatcl" / "failed.tsv").exists()

    resumed = subprocess.run(command(cohort, random_weights, tmp_path), capture_output=True,
                             text=True, env=env, timeout=GUARD_SECONDS)
    assert resumed.returncode == 0, resumed.stderr
    assert "Done: 4 of 4 participant(s)" in resumed.stdout
    assert_no_partial_outputs(tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("sub-*_embedding.npy"))) == 4


def test_a_worker_that_is_still_starting_stops_quietly_on_ctrl_c():
    """Ctrl-C reaches every process of the group, workers that are still starting too (the
    pool starts them as work arrives). A forkserver's child starts with the signal actions
    its server had while loading the template: they must already be the default ones, or a
    starting worker prints a ``KeyboardInterrupt`` traceback (seen in CI)."""
    probe = """
        import signal
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing
        from anatcl_nipype.cli.supervision import start_worker_template, WORKER_START
        start_worker_template("MultiProc", {"mp_context": WORKER_START})
        context = multiprocessing.get_context(WORKER_START)
        with ProcessPoolExecutor(1, mp_context=context) as pool:  # no initializer
            actions = [pool.submit(signal.getsignal, s).result()
                       for s in (signal.SIGINT, signal.SIGTERM)]
        print(actions == [signal.SIG_DFL, signal.SIG_DFL], actions)
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], capture_output=True,
                          text=True, timeout=GUARD_SECONDS, check=True)
    assert done.stdout.startswith("True"), done.stdout + done.stderr
