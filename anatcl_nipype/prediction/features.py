"""Read feature tables (encoder embeddings, regional measures) and join them.

A feature table is a TSV whose first column is ``participant_id`` (then, in longitudinal
studies, ``session_id``: a row per session, indexed ``sub-01_ses-2``) and whose other
columns are numbers: the encoder writes ``participant_id, emb_000 .. emb_511``, the
regional layer ``participant_id, <atlas>_<region>_<measure> ...``. Missing values
are written ``n/a`` (BIDS) and read as NaN; the probes impute them inside each
cross-validation fold.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "emb.tsv").write_text("participant_id\\temb_000\\n"
...                                     "sub-01\\t0.5\\nsub-02\\t1.5\\n")
>>> _ = (folder / "roi.tsv").write_text("participant_id\\tnm_lAmy_Vgm\\n"
...                                     "sub-02\\tn/a\\nsub-01\\t0.6\\n")
>>> table = join_features([folder / "emb.tsv", folder / "roi.tsv"])
>>> table.index.tolist(), table.columns.tolist()
(['sub-01', 'sub-02'], ['emb_000', 'nm_lAmy_Vgm'])
>>> float(table.loc["sub-02", "nm_lAmy_Vgm"])
nan
"""

import csv
import warnings
from pathlib import Path

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.inputs import ID_COLUMN, MISSING_VALUES, SESSION_COLUMN  # noqa: F401


def read_features_tsv(path):
    """Read a feature TSV into a float DataFrame indexed by ``participant_id``.

    A ``session_id`` second column makes the index ``<participant_id>_<session_id>`` (one
    row per session). Raises :class:`PredictionError` when the first column is not
    ``participant_id``, a participant (session) or column appears twice, or a cell is
    neither a number nor ``n/a``.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "features.tsv"
    >>> _ = path.write_text("participant_id\\temb_000\\temb_001\\nsub-01\\t0.5\\t-1e-3\\n")
    >>> read_features_tsv(path).to_numpy().tolist()
    [[0.5, -0.001]]
    >>> _ = path.write_text("participant_id\\tsession_id\\temb_000\\nsub-01\\tses-2\\t0.5\\n")
    >>> read_features_tsv(path).index.tolist()
    ['sub-01_ses-2']
    """
    import pandas as pd

    from anatcl_nipype.bids import scan_id

    path = Path(path)
    header, rows = _read_tsv_rows(path)
    _check_header(header, path)
    if header[1] == SESSION_COLUMN:
        rows = [[scan_id(row[0], row[1].strip() not in MISSING_VALUES and row[1]), *row[2:]]
                for row in rows]
        header = [header[0], *header[2:]]
    ids = [row[0] for row in rows]
    _refuse_duplicates(ids, f"{path}: participant_id", "keep one row per participant")
    values = [[_parse_number(cell, path, line, column) for cell, column in zip(row[1:], header[1:])]
              for line, row in enumerate(rows, start=2)]
    index = pd.Index(ids, name=ID_COLUMN)
    return pd.DataFrame(values, index=index, columns=header[1:], dtype=float)


def join_features(tables):
    """Inner-join feature tables (DataFrames or TSV paths) on ``participant_id``.

    Participants missing from any table are left out, with a warning that names them.
    Raises :class:`PredictionError` when two tables share a column name, a table
    repeats a participant, or no participant is in every table.

    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1.0, 2.0]}, index=["sub-01", "sub-02"])
    >>> b = pd.DataFrame({"y": [3.0]}, index=["sub-02"])
    >>> with warnings.catch_warnings(record=True):
    ...     join_features([a, b]).to_dict("index")
    {'sub-02': {'x': 2.0, 'y': 3.0}}
    """
    tables = [read_features_tsv(t) if isinstance(t, (str, Path)) else t for t in tables]
    if not tables:
        raise PredictionError("join_features: no feature tables given; pass at least one")
    _refuse_column_clashes(tables)
    for number, table in enumerate(tables, start=1):
        _refuse_duplicates(list(table.index), f"feature table {number}: participant_id",
                           "keep one row per participant")
    joined = tables[0].join(tables[1:], how="inner") if len(tables) > 1 else tables[0].copy()
    _warn_dropped(tables, joined)
    if joined.empty:
        raise PredictionError(
            "join_features: no participant_id is present in every feature table; check that "
            "the tables describe the same subjects and write ids the same way (sub- prefix)")
    joined.index.name = ID_COLUMN
    return joined


def with_session_column(in_tsv, out_tsv):
    """``in_tsv`` with its ``sub-01_ses-2`` row ids split into ``participant_id`` and
    ``session_id`` columns, written to ``out_tsv``; ``in_tsv`` itself when no row has a
    session (single-session tables stay byte-identical). Returns the path to use.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.tsv").write_text("participant_id\\tx\\nsub-01_ses-2\\t1\\nsub-02\\t3\\n")
    >>> out = with_session_column(folder / "a.tsv", folder / "b.tsv")
    >>> pathlib.Path(out).read_text().split("\\n")
    ['participant_id\\tsession_id\\tx', 'sub-01\\tses-2\\t1', 'sub-02\\tn/a\\t3', '']
    """
    from anatcl_nipype.bids import split_scan_id
    from anatcl_nipype.files import atomic_write

    with open(in_tsv, newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    scans = [split_scan_id(row[0]) for row in rows[1:]]
    if not rows or rows[0][0] != ID_COLUMN or not any(session for _, session in scans):
        return str(in_tsv)
    lines = [[ID_COLUMN, SESSION_COLUMN, *rows[0][1:]]]
    lines += [[participant, session or "n/a", *row[1:]]
              for (participant, session), row in zip(scans, rows[1:])]
    with atomic_write(out_tsv) as tmp:
        tmp.write_text("".join("\t".join(line) + "\n" for line in lines))
    return str(out_tsv)


def _read_tsv_rows(path):
    if not path.is_file():
        raise PredictionError(f"{path}: no such feature table; pass the TSV the encoder "
                              "or the regional measures step wrote")
    with open(path, newline="", encoding="utf-8-sig") as stream:
        rows = [row for row in csv.reader(stream, delimiter="\t") if row]
    if len(rows) < 2:
        raise PredictionError(f"{path}: no participant rows; the table needs a header and "
                              "one row per participant")
    header, body = rows[0], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise PredictionError(f"{path}, line {line}: {len(row)} cells but the header has "
                                  f"{len(header)}; fix the row or rewrite the table")
    return header, body


def _check_header(header, path):
    if header[0] != ID_COLUMN:
        raise PredictionError(f"{path}: first column is {header[0]!r}, expected "
                              f"{ID_COLUMN!r}; write participant ids in the first column")
    if len(header) < 2:
        raise PredictionError(f"{path}: no feature columns after {ID_COLUMN!r}")
    _refuse_duplicates(header, f"{path}: column", "give every feature column a unique name")


def _parse_number(cell, path, line, column):
    if cell.strip() in MISSING_VALUES:
        return float("nan")
    try:
        return float(cell)
    except ValueError:
        raise PredictionError(f"{path}, line {line}, column {column!r}: {cell!r} is not a "
                              "number; write numbers, or n/a for a missing value") from None


def _refuse_duplicates(names, what, advice):
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise PredictionError(f"{what} repeated: {', '.join(map(str, duplicates))}; {advice}")


def _refuse_column_clashes(tables):
    owner = {}
    for number, table in enumerate(tables, start=1):
        for column in table.columns:
            if column in owner:
                raise PredictionError(
                    f"join_features: column {column!r} is in feature table {owner[column]} "
                    f"and in table {number}; rename one of them (e.g. prefix the source)")
            owner[column] = number


def _warn_dropped(tables, joined):
    all_ids = {pid for table in tables for pid in table.index}
    dropped = sorted(all_ids - set(joined.index))
    if dropped:
        shown = ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        warnings.warn(f"join_features: {len(dropped)} participant(s) missing from at least "
                      f"one feature table were left out: {shown}", stacklevel=3)
