"""File helpers shared by every layer: content hashes, atomic writes, bounded JSON reads.

Outputs are written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file under its final name. JSON that
someone else may have written (sidecars, probe cards) is read with
:func:`read_json_bounded`, which refuses an oversized or too deeply nested file before it
can exhaust memory or the stack.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
>>> with atomic_write(out) as tmp:
...     _ = tmp.write_text("hi")
>>> out.read_text()
'hi'
>>> sha256_file(out)[:12]
'8f434346648f'
"""

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

#: Largest JSON sidecar read (those this package writes take kilobytes to a few megabytes).
MAX_SIDECAR_BYTES = 64 * 1024 ** 2
#: Deepest nesting of dicts/lists read from a sidecar (those this package writes nest <= 4).
MAX_SIDECAR_DEPTH = 16


class JSONFileError(Exception):
    """A JSON file refused by :func:`read_json_bounded`; the message names the file and what
    was wrong. Callers re-raise it in their own error family, adding what to do."""


def read_json_bounded(path, *, max_bytes, max_depth, what="JSON file"):
    """The JSON value in ``path``, read only if the file is small and shallow enough.

    At most ``max_bytes + 1`` bytes are read. Raises :class:`JSONFileError` naming ``path``
    (and calling it ``what``) for a file that cannot be read, is larger than ``max_bytes``,
    is not UTF-8, is not JSON or nests dicts/lists more than ``max_depth`` deep.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "deep.json"
    >>> _ = path.write_text('{"a": [1, {"b": 2}]}')
    >>> read_json_bounded(path, max_bytes=100, max_depth=3)
    {'a': [1, {'b': 2}]}
    >>> read_json_bounded(path, max_bytes=100, max_depth=2, what="sidecar")
    Traceback (most recent call last):
    ...
    anatcl_nipype.files.JSONFileError: ...deep.json: the sidecar nests more than 2 deep
    """
    try:
        with open(path, "rb") as stream:
            content = stream.read(max_bytes + 1)
    except OSError as error:
        raise JSONFileError(f"{path}: cannot read the {what} ({error.strerror or error})") \
            from None
    if len(content) > max_bytes:
        raise JSONFileError(f"{path}: larger than {max_bytes} bytes, more than any {what} "
                            "holds; refused unread")
    return parse_json_bounded(content, source=path, max_depth=max_depth, what=what)


def parse_json_bounded(content, *, source, max_depth, what="JSON file"):
    """The JSON value in the UTF-8 bytes ``content`` read from ``source``, at most
    ``max_depth`` deep; :class:`JSONFileError` otherwise (see :func:`read_json_bounded`).

    ``max_depth`` must stay well under the interpreter's recursion limit: the parser
    recursing beyond it is reported as nesting more than ``max_depth`` deep.

    >>> parse_json_bounded(b"[[1]]", source="a.json", max_depth=1)
    Traceback (most recent call last):
    ...
    anatcl_nipype.files.JSONFileError: a.json: the JSON file nests more than 1 deep
    """
    too_deep = JSONFileError(f"{source}: the {what} nests more than {max_depth} deep")
    try:
        value = json.loads(content.decode("utf-8"))  # bytes given to json.loads could be UTF-16
    except UnicodeDecodeError as error:
        raise JSONFileError(f"{source}: the {what} is not valid JSON (not UTF-8 text at byte "
                            f"{error.start})") from None
    except RecursionError:
        raise too_deep from None
    except ValueError as error:  # JSONDecodeError, or an integer of more than 4300 digits
        raise JSONFileError(f"{source}: the {what} is not valid JSON ({type(error).__name__}: "
                            f"{str(error)[:200]})") from None
    if _nesting_exceeds(value, max_depth):
        raise too_deep
    return value


def _nesting_exceeds(value, max_depth):
    """Whether dicts and lists nest more than ``max_depth`` deep in ``value``; walked level
    by level, so a deep value cannot exhaust the stack."""
    level = [value]
    for _ in range(max_depth + 1):
        containers = [item for item in level if isinstance(item, (dict, list))]
        if not containers:
            return False
        level = [item for container in containers
                 for item in (container.values() if isinstance(container, dict) else container)]
    return True


def sha256_file(path, chunk_size=1 << 20):
    """Return the hex SHA-256 digest of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path, data):
    """Write ``data`` as indented, key-sorted, strict JSON to ``path`` atomically.

    NaN and infinities, which strict JSON readers refuse, are written as ``null``.

    >>> import tempfile, os
    >>> path = write_json_atomic(os.path.join(tempfile.mkdtemp(), "x.json"), {"auc": float("nan")})
    >>> json.loads(path.read_text())
    {'auc': None}
    """
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(_strict(data), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def write_failures_tsv(path, failures):
    r"""Write ``failed.tsv`` atomically: one ``(participant_id, path, reason[, traceback])``
    row per failure under the header ``participant_id path reason traceback``.

    Tabs and newlines inside a field become spaces, so every failure stays one row; pass a
    traceback already encoded as one field
    (:func:`anatcl_nipype.reports.collect.encode_traceback`). Rows without one leave it empty.

    >>> import tempfile, os
    >>> path = write_failures_tsv(os.path.join(tempfile.mkdtemp(), "failed.tsv"),
    ...                           [("sub-09", "/d/mwp1sub-09.nii", "empty map\n")])
    >>> path.read_text().splitlines()
    ['participant_id\tpath\treason\ttraceback', 'sub-09\t/d/mwp1sub-09.nii\tempty map \t']
    """
    lines = ["participant_id\tpath\treason\ttraceback"]
    lines += ["\t".join(str(field).replace("\t", " ").replace("\n", " ")
                        for field in (*failure, "")[:4])
              for failure in failures]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
