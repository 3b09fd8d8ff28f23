"""One run per work folder: an exclusive ``fcntl`` lock on ``<work_dir>/anatcl-nipype.lock``.

Two runs sharing a Nipype work folder corrupt each other's node folders. The first run holds
the lock for its whole life (re-entrant within one process); a second one refuses at once,
naming the holder (pid, host, start time, command), or waits for it (``--wait-for-lock``).
The kernel drops the lock when
its process dies, so a lock file left by a killed run is simply taken over.

>>> import tempfile
>>> work = tempfile.mkdtemp()
>>> with work_dir_lock(work) as holder:
...     sorted(holder)
['command', 'host', 'pid', 'started']
"""

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from anatcl_nipype.errors import AnatCLError

LOCK_NAME = "anatcl-nipype.lock"
_HELD = {}  # lock path -> holder record, for the locks this process holds


class WorkDirLocked(AnatCLError):
    """Another run holds the work folder."""


@contextlib.contextmanager
def work_dir_lock(work_dir, wait=False, stream=sys.stderr):
    """Hold the work folder's lock for the ``with`` block; yield this run's holder record.

    Raises :class:`WorkDirLocked` (naming the holder) when another process holds it, unless
    ``wait``: then print one line to ``stream`` and block until it is released.
    """
    path = Path(work_dir).absolute() / LOCK_NAME
    if path in _HELD:  # this process holds it already (the command, then its run)
        yield _HELD[path]
        return
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise AnatCLError(f"{path.parent}: cannot use this work folder ({error.strerror}); "
                          "choose another with -w") from None
    try:
        _acquire(descriptor, path, wait, stream)
        _note_stale(read_holder(descriptor), stream)
        holder = _holder_record()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        _HELD[path] = holder
        try:
            yield holder
        finally:
            del _HELD[path]
            os.ftruncate(descriptor, 0)  # released cleanly: no holder left to report
            if created:
                _remove_if_unused(path)
    finally:
        os.close(descriptor)  # releases the lock


def _remove_if_unused(path):
    """Remove a work folder this run created but never used (e.g. an input error ended it)."""
    if [entry.name for entry in path.parent.iterdir()] == [LOCK_NAME]:
        path.unlink()
        path.parent.rmdir()


def _acquire(descriptor, path, wait, stream):
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        record = read_holder(descriptor)
        holder = describe_holder(record) + _orphans_hint(record)
    if not wait:
        raise WorkDirLocked(f"{path.parent}: this work folder is in use by {holder}; wait for "
                            "that run to finish, choose another -w, or pass --wait-for-lock")
    print(f"anatcl-nipype: waiting for the work folder {path.parent}, in use by {holder}",
          file=stream, flush=True)
    fcntl.flock(descriptor, fcntl.LOCK_EX)


def _orphans_hint(record):
    """When the recorded holder is gone, the lock is held by processes it started."""
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return ""
    try:
        os.kill(record["pid"], 0)
        return ""
    except ProcessLookupError:
        return (", which has ended while processes it started still run and hold the folder "
                "(stop them)")
    except PermissionError:
        return ""


def _note_stale(previous, stream):
    """A record left in a free lock file: its run died without releasing; say so."""
    if previous:
        print(f"anatcl-nipype: taking over the work folder from {describe_holder(previous)}, "
              "which ended without releasing it", file=stream, flush=True)


def read_holder(descriptor):
    """The holder record written in the lock file (``{}`` when unreadable)."""
    try:
        return json.loads(os.pread(descriptor, 4096, 0).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}


def describe_holder(holder):
    """``pid 123 on host node1 since 2026-12-01 13:47:00 UTC (command: ...)``."""
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another run (no holder recorded)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{holder.get('started')} (command: {holder.get('command')})")


def _holder_record():
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join(sys.argv).encode("unicode_escape").decode("ascii")}
