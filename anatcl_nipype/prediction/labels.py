"""Read the prediction target from a BIDS ``participants.tsv``.

The file is tab-separated with a ``participant_id`` column; it may start with a UTF-8
byte-order mark and use CRLF line endings (files saved by spreadsheet programs), and
writes missing values as ``n/a``. Ids match with or without the ``sub-`` prefix, so
``sub-01`` in the features finds ``01`` in the file and the other way round. Rows of
sessions (``sub-01_ses-2``) take their participant's value, or, where ``participants.tsv``
has none (``n/a`` or no such column), the session's row of the BIDS
``sub-01/sub-01_sessions.tsv`` beside it (ages at each visit live there).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "participants.tsv"
>>> _ = path.write_text("participant_id\\tage\\nsub-01\\t61.5\\nsub-02\\tn/a\\nsub-03\\t70\\n")
>>> result = load_labels(path, "age", ["sub-01", "sub-02", "sub-03"], "regression")
>>> result.participant_ids, result.labels.tolist(), result.dropped
(['sub-01', 'sub-03'], [61.5, 70.0], [('sub-02', 'age is n/a')])
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anatcl_nipype.bids import split_scan_id
from anatcl_nipype.errors import AnatCLError, PredictionError
from anatcl_nipype.inputs import (
    ID_COLUMN,
    MISSING_VALUES,
    SESSION_COLUMN,
    read_tsv_rows,
    sessions_tsv_of,
)
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.probes import check_task


@dataclass
class Labels:
    """Labels matched to feature rows.

    ``participant_ids`` and ``labels`` are aligned and keep the order (and spelling) of
    the ids passed in; ``dropped`` lists ``(participant_id, reason)`` for rows left out;
    ``notes`` says what was noticed but is not an error (participants without features).
    """

    participant_ids: list
    labels: np.ndarray
    dropped: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def load_labels(participants_tsv, column, participant_ids, task):
    """Return the ``column`` labels of ``participant_ids`` from ``participants_tsv``.

    Classification labels are kept as strings; regression and brain-age labels are
    parsed as floats. Rows whose label is ``n/a`` (or, for numbers, NaN) are dropped
    and reported in :attr:`Labels.dropped`. Raises :class:`PredictionError` for a
    repeated participant id, a missing column (the message lists the columns there
    are), participants that have features but no row in the file (listed), or a
    label that is not a number where a number is needed.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "participants.tsv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfparticipant_id\\tdx\\r\\n01\\tAD\\r\\n02\\tCN\\r\\n")
    >>> load_labels(path, "dx", ["sub-02", "sub-01"], "classification").labels.tolist()
    ['CN', 'AD']
    """
    check_task(task)
    path = Path(participants_tsv)
    rows = _read_participants(path)
    participant_ids = list(participant_ids)
    sessions = _SessionTables(path, column)
    _check_column(rows, column, path, any(split_scan_id(p)[1] for p in participant_ids))
    by_id = _index_by_subject(rows, path)
    wanted = {_scan(pid): pid for pid in participant_ids}
    if len(wanted) != len(participant_ids):
        raise PredictionError("participant_ids of the features repeat a subject "
                              "(with or without the sub- prefix); keep one row per subject")
    _refuse_missing_subjects(wanted, by_id, path)
    kept, values, dropped = [], [], []
    for (subject, session), pid in wanted.items():
        cell = (by_id[subject].get(column) or "").strip()
        if session and cell in MISSING_VALUES:
            cell = sessions.value(subject, session) or cell
        value = _parse_label(cell, task, path, pid, column)
        if value is None:
            dropped.append((pid, f"{column} is {cell or 'empty'}"))
        else:
            kept.append(pid)
            values.append(value)
    labels = np.array(values, dtype=str if PROBE_TASKS[task].categorical else float)
    return Labels(kept, labels, dropped, _note_unused(by_id, wanted, path))


def _subject(participant_id):
    """The subject label without the BIDS ``sub-`` prefix."""
    participant_id = str(participant_id).strip()
    return participant_id[4:] if participant_id.startswith("sub-") else participant_id


def _scan(row_id):
    """``(subject label, session id or None)`` of a feature row's id."""
    participant_id, session = split_scan_id(str(row_id).strip())
    return _subject(participant_id), session


class _SessionTables:
    """The ``column`` of each participant's BIDS ``sessions.tsv``, read once per file."""

    def __init__(self, participants_tsv, column):
        self.participants_tsv, self.column, self.tables = participants_tsv, column, {}

    def value(self, subject, session):
        if subject not in self.tables:
            path = sessions_tsv_of(self.participants_tsv, f"sub-{subject}")
            rows = _read_participants(path) if path else []
            self.tables[subject] = {row.get(SESSION_COLUMN): row for row in rows}
        return (self.tables[subject].get(session, {}).get(self.column) or "").strip() or None

    def has_column(self):
        """Whether any sessions.tsv beside participants.tsv has the column."""
        folder = Path(self.participants_tsv).parent
        return any(self.column in (read_tsv_rows(path)[0])
                   for path in folder.glob("sub-*/sub-*_sessions.tsv"))


def _read_participants(path):
    try:
        return read_tsv_rows(path)
    except AnatCLError as error:  # the one reader; a prediction error here
        raise PredictionError(str(error)) from None


def _check_column(rows, column, path, with_sessions=False):
    available = [name for name in rows[0] if name is not None]
    if ID_COLUMN not in available:
        raise PredictionError(f"{path}: no {ID_COLUMN!r} column (columns: "
                              f"{', '.join(available)}); is the file tab-separated?")
    if column not in available and not (with_sessions and
                                        _SessionTables(path, column).has_column()):
        raise PredictionError(f"{path}: no column {column!r}; available columns: "
                              f"{', '.join(available)}")


def _index_by_subject(rows, path):
    by_id = {}
    for line, row in enumerate(rows, start=2):
        subject = _subject(row[ID_COLUMN])
        if subject in by_id:
            raise PredictionError(f"{path}, line {line}: participant {row[ID_COLUMN]!r} is "
                                  "listed twice; keep one row per participant")
        by_id[subject] = row
    return by_id


def _refuse_missing_subjects(wanted, by_id, path):
    missing = [pid for (subject, _), pid in wanted.items() if subject not in by_id]
    if missing:
        raise PredictionError(f"{path}: {len(missing)} participant(s) with features have no "
                              f"row: {', '.join(missing)}; add them to the file or drop "
                              "their features")


def _note_unused(by_id, wanted, path):
    subjects = {subject for subject, _ in wanted}
    unused = [by_id[subject][ID_COLUMN] for subject in by_id if subject not in subjects]
    if not unused:
        return []
    return [f"{len(unused)} participant(s) in {path} have no features: {', '.join(unused)}"]


def _parse_label(cell, task, path, pid, column):
    if cell in MISSING_VALUES:
        return None
    if PROBE_TASKS[task].categorical:
        return cell
    try:
        value = float(cell)
    except ValueError:
        raise PredictionError(f"{path}: {column} of {pid} is {cell!r}, not a number; a "
                              f"{task} target must be numeric (or n/a)") from None
    return None if np.isnan(value) else value
