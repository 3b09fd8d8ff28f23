"""One run per work folder: a second run refuses naming the holder, or waits; stale locks
are taken over."""

import io
import json
import os
import socket
import subprocess
import sys

import pytest

from anatcl_nipype.cli.locking import LOCK_NAME, WorkDirLocked, work_dir_lock

HOLD = ("import sys, time\n"
        "from anatcl_nipype.cli.locking import work_dir_lock\n"
        "with work_dir_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n")


def start_holder(work_dir, *extra_args):
    """A process holding the lock of ``work_dir`` until killed (waits until it holds it)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(work_dir), *extra_args],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_refuses_naming_the_holder(tmp_path):
    holder = start_holder(tmp_path / "work", "--my-command-line")
    try:
        with pytest.raises(WorkDirLocked) as refused:
            with work_dir_lock(tmp_path / "work"):
                pass
    finally:
        holder.kill()
        holder.wait()
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'work'}: this work folder is in use by pid "
                              f"{holder.pid} on host {socket.gethostname()} since ")
    assert "--my-command-line" in message and "--wait-for-lock" in message
    assert "\n" not in message


def test_waiting_for_the_lock_proceeds_when_the_holder_ends(tmp_path):
    holder = start_holder(tmp_path / "work")
    waiter = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom anatcl_nipype.cli.locking import work_dir_lock\n"
         "with work_dir_lock(sys.argv[1], wait=True, stream=sys.stdout) as me:\n"
         "    print('acquired', me['pid'], flush=True)\n", str(tmp_path / "work")],
        stdout=subprocess.PIPE, text=True)
    first = waiter.stdout.readline()
    assert first.startswith(f"anatcl-nipype: waiting for the work folder {tmp_path / 'work'}, "
                            f"in use by pid {holder.pid} ")
    holder.terminate()
    holder.wait()
    rest, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    assert rest.splitlines()[-1] == f"acquired {waiter.pid}"


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    holder = start_holder(tmp_path / "work")
    holder.kill()  # SIGKILL: no clean release; the record of the dead holder stays behind
    holder.wait()
    assert json.loads((tmp_path / "work" / LOCK_NAME).read_text())["pid"] == holder.pid
    said = io.StringIO()
    with work_dir_lock(tmp_path / "work", stream=said) as me:
        assert me["pid"] == os.getpid()
        on_disk = json.loads((tmp_path / "work" / LOCK_NAME).read_text())
        assert on_disk == me
    assert said.getvalue().startswith(f"anatcl-nipype: taking over the work folder from pid "
                                      f"{holder.pid} on host {socket.gethostname()}")
    assert (tmp_path / "work" / LOCK_NAME).read_text() == ""  # released cleanly


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    with work_dir_lock(tmp_path / "work") as outer:
        with work_dir_lock(tmp_path / "work") as inner:
            assert inner is outer
    probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"),
                            str(tmp_path / "work")], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "held"


def test_the_command_line_refuses_a_busy_work_folder_before_any_work(tmp_path):
    (tmp_path / "cat12").mkdir()
    holder = start_holder(tmp_path / "work")
    try:
        done = subprocess.run([sys.executable, "-m", "anatcl_nipype", tmp_path / "cat12",
                               tmp_path / "out", "participant", "-w", tmp_path / "work"],
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert done.stderr.startswith("anatcl-nipype: error: ") and len(done.stderr.splitlines()) == 1
    assert f"this work folder is in use by pid {holder.pid}" in done.stderr
    assert not (tmp_path / "out").exists()


def test_processes_left_by_a_dead_holder_are_named_as_holding_the_lock(tmp_path):
    """A run killed alone (its workers still running) still holds the folder: they write."""
    spawner = subprocess.run(
        [sys.executable, "-c", "import os, sys, time\n"
         "from anatcl_nipype.cli.locking import work_dir_lock\n"
         "with work_dir_lock(sys.argv[1]):\n"
         "    child = os.fork()  # as MultiProc's workers are\n"
         "    if child == 0:\n"
         "        os.close(1)\n"
         "        time.sleep(600)\n"
         "    print(child, flush=True)\n"
         "    os._exit(0)\n", str(tmp_path / "work")],
        stdout=subprocess.PIPE, text=True, timeout=60)
    orphan = int(spawner.stdout.split()[0])
    try:
        with pytest.raises(WorkDirLocked, match=r"in use by pid \d+ on host .*, which has ended "
                           r"while processes it started still run and hold the folder"):
            with work_dir_lock(tmp_path / "work"):
                pass
    finally:
        os.kill(orphan, 9)


def test_a_run_waiting_for_the_lock_can_be_interrupted(tmp_path):
    (tmp_path / "cat12").mkdir()
    holder = start_holder(tmp_path / "work")
    try:
        waiter = subprocess.Popen([sys.executable, "-m", "anatcl_nipype", tmp_path / "cat12",
                                   tmp_path / "out", "participant", "-w", tmp_path / "work",
                                   "--wait-for-lock"], stderr=subprocess.PIPE, text=True)
        assert waiter.stderr.readline().startswith("anatcl-nipype: waiting for the work folder")
        waiter.terminate()
        _, rest = waiter.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert waiter.returncode == 143
    assert rest == "anatcl-nipype: interrupted; rerun with the same -w to resume\n"


def test_an_input_error_leaves_no_work_folder_behind(tmp_path):
    (tmp_path / "cat12").mkdir()
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", str(tmp_path / "cat12"),
                           str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "no CAT12 grey-matter maps" in done.stderr
    assert not (tmp_path / "work").exists()
