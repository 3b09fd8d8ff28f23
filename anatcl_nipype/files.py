"""File helpers shared by every layer: content hashes and atomic writes.

Outputs are written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file under its final name.

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
