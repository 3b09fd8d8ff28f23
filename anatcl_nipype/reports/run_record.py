"""What a run of the command line did: ``<report folder>/run-<level>.json``.

The command line records each level it ran (command, start and end, duration per phase,
host, software versions, Nipype plugin and its arguments); the report reads these records.
Import-light: only the standard library and :mod:`anatcl_nipype.files` at import time.

>>> import tempfile, datetime
>>> folder = tempfile.mkdtemp()
>>> start = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
>>> path = record_run(folder, "participant", ["out", "participant"], start,
...                   start + datetime.timedelta(seconds=90), {"encode": 80.5}, "MultiProc",
...                   {"n_procs": 2}, report_folder="anatcl")
>>> path.name, read_run_records(path.parent)[0]["duration_s"]
('run-participant.json', 90.0)
"""

import json
import platform
from datetime import timezone
from importlib import metadata
from pathlib import Path

from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.reports import REPORT_DIR

#: Distributions whose versions every record lists (``None`` when not installed).
RECORDED_SOFTWARE = ("anatcl-nipype", "nipype", "torch", "scikit-learn", "nibabel", "nilearn",
                     "nireports", "numpy")
LEVELS = ("participant", "group", "demo")


def software_versions(names=RECORDED_SOFTWARE):
    """``{distribution: version or None}`` plus ``python``, read without importing them.

    >>> software_versions(("no-such-distribution",))["no-such-distribution"] is None
    True
    """
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def record_run(output_dir, level, argv, started, finished, phases, plugin, plugin_args,
               report_folder=REPORT_DIR):
    """Write ``<output_dir>/<report folder>/run-<level>.json``; return its path.

    ``started``/``finished`` are aware datetimes, ``phases`` ``{phase name: seconds}`` in
    the order they ran, ``plugin``/``plugin_args`` the Nipype execution plugin and its
    arguments. ``report_folder`` is the report's folder inside ``output_dir``.
    """
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")
    record = {
        "level": level,
        "command": ["anatcl-nipype", *map(str, argv)],
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": round((finished - started).total_seconds(), 3),
        "phases": [{"name": name, "seconds": round(float(seconds), 3)}
                   for name, seconds in dict(phases).items()],
        "host": platform.node(),
        "platform": platform.platform(),
        "software": software_versions(),
        "nipype_plugin": plugin,
        "nipype_plugin_args": {key: _plain(value) for key, value in (plugin_args or {}).items()},
    }
    folder = Path(output_dir) / report_folder
    folder.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(folder / f"run-{level}.json", record)


def read_run_records(folder):
    """The run records in ``folder``, participant level first; unreadable ones skipped."""
    records = []
    for path in sorted(Path(folder).glob("run-*.json"),
                       key=lambda p: (p.stem != "run-participant", p.stem)):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


def _iso(moment):
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _plain(value):
    """JSON-safe plugin argument (callables and objects by name)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return getattr(value, "__name__", repr(value))
