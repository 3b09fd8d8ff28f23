"""What a study gives anatcl-nipype: CAT12 outputs, ``participants.tsv``, BIDS-safe names.

Import-light (no Nipype, torch or scikit-learn), shared by the command line, the
examples and users' own scripts:

- :func:`find_cat12_subjects` finds each participant's CAT12 files. Both layouts CAT12
  writes are understood, found by pattern rather than fixed paths: plain
  (``<dir>/<anything>/mri/mwp1<name>.nii`` with ``label/`` and ``report/`` beside ``mri/``)
  and BIDS derivatives
  (``<dir>/derivatives/CAT12.x/sub-<l>/[ses-<l>/]anat/mri/mwp1<name>.nii``).
- :func:`read_tsv_rows` is the one reader of ``participants.tsv`` / ``sessions.tsv``
  (tolerant of a UTF-8 byte-order mark and CRLF line endings, as spreadsheets save them).
- :func:`bids_label` (from :mod:`anatcl_nipype.bids`) is the one sanitiser of ids and
  names used in file names.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "sub-01" / "mri").mkdir(parents=True)
>>> _ = (root / "sub-01" / "mri" / "mwp1sub-01_T1w.nii").write_bytes(b"")
>>> [s.participant_id for s in find_cat12_subjects(root)]
['sub-01']
"""

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from anatcl_nipype.bids import (  # noqa: F401 (bids_label, bids_source_from_cat12: public here)
    bids_label,
    bids_source_from_cat12,
    participant_id_from_path,
)
from anatcl_nipype.errors import AnatCLError

ID_COLUMN = "participant_id"
#: Cell values read as missing.
MISSING_VALUES = frozenset({"n/a", ""})


@dataclass(frozen=True)
class CAT12Subject:
    """One participant's CAT12 files (absent optional files are None).

    ``session_id`` (``ses-<label>``) is None: one map per participant for now; the field
    is here so that sessions can be added without changing the record's users.
    """

    participant_id: str
    gm_modulated: Path
    label_roi: Path | None = None
    label_rois: Path | None = None
    report: Path | None = None
    session_id: str | None = None

    def as_inputs(self):
        """The record as the dict :func:`init_single_subject_wf` takes (no None values).

        >>> CAT12Subject("sub-01", Path("/d/mwp1sub-01_T1w.nii")).as_inputs()
        {'participant_id': 'sub-01', 'gm_modulated': '/d/mwp1sub-01_T1w.nii'}
        """
        return {key: str(value) for key, value in asdict(self).items() if value is not None}


def find_cat12_subjects(cat12_dir, participant_labels=None):
    """Return one :class:`CAT12Subject` per mwp1 map under ``cat12_dir``, sorted by id.

    ``participant_labels`` (with or without ``sub-``) keeps only those participants;
    a label with no map raises :class:`AnatCLError` listing the ones found.
    """
    subjects = [_subject_of(path) for path in find_cat12_maps(cat12_dir)]
    _check_unique(subjects)
    if participant_labels:
        subjects = _select(subjects, participant_labels)
    return sorted(subjects, key=lambda s: s.participant_id)


def find_cat12_maps(cat12_dir):
    """Every CAT12 modulated grey-matter map (``mri/mwp1*.nii[.gz]``) under ``cat12_dir``."""
    cat12_dir = Path(cat12_dir).absolute()
    if not cat12_dir.is_dir():
        raise AnatCLError(f"{cat12_dir}: no such folder; pass the folder CAT12 wrote into")
    maps = sorted(p for p in cat12_dir.rglob("mwp1*.nii*")
                  if p.parent.name == "mri" and p.name.endswith((".nii", ".nii.gz")))
    if not maps:
        raise AnatCLError(f"{cat12_dir}: no CAT12 grey-matter maps (mri/mwp1*.nii) found; "
                          "run CAT12 first, with the modulated normalised GM output on")
    return maps


def _subject_of(mwp1):
    return CAT12Subject(participant_id_from_path(mwp1), mwp1, _beside(mwp1, "label", "catROI_"),
                        _beside(mwp1, "label", "catROIs_"), _beside(mwp1, "report", "cat_"))


def _beside(mwp1, folder, prefix):
    name = mwp1.name.removeprefix("mwp1")
    for extension in (".nii.gz", ".nii"):
        name = name.removesuffix(extension)
    candidate = mwp1.parent.parent / folder / f"{prefix}{name}.xml"
    return candidate if candidate.is_file() else None


def _check_unique(subjects):
    seen = {}
    for subject in subjects:
        if subject.participant_id in seen:
            raise AnatCLError(
                f"two grey-matter maps for {subject.participant_id}: {seen[subject.participant_id]}"
                f" and {subject.gm_modulated}; keep one per participant (sessions are not "
                "supported yet) or point at a folder holding one of them")
        seen[subject.participant_id] = subject.gm_modulated


def _select(subjects, labels):
    wanted = {f"sub-{label.removeprefix('sub-')}" for label in labels}
    found = {s.participant_id for s in subjects}
    unknown = sorted(wanted - found)
    if unknown:
        raise AnatCLError(f"no CAT12 maps for {', '.join(unknown)}; found: "
                          f"{', '.join(sorted(found)[:20])}{' ...' if len(found) > 20 else ''}")
    return [s for s in subjects if s.participant_id in wanted]


# --------------------------------------------------------------------------- participants.tsv


def find_participants_tsv(cat12_dir, participants=None):
    """``participants`` if given (it must exist), else the first ``participants.tsv`` in or
    up to three folders above ``cat12_dir``; None when there is none.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "participants.tsv").write_text("participant_id\\n")
    >>> find_participants_tsv(root / "derivatives" / "cat12") == root / "participants.tsv"
    True
    """
    if participants:
        if not Path(participants).is_file():
            raise AnatCLError(f"{participants}: no such participants.tsv")
        return Path(participants).absolute()
    folder = Path(cat12_dir).absolute()
    for candidate in [folder, *folder.parents][:4]:
        if (candidate / "participants.tsv").is_file():
            return candidate / "participants.tsv"
    return None


def read_tsv_rows(path):
    """The rows of a BIDS ``participants.tsv``/``sessions.tsv`` as dicts (header as keys).

    A UTF-8 byte-order mark and CRLF line endings are accepted. Raises
    :class:`AnatCLError` for a missing file or one with no rows under the header.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "participants.tsv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfparticipant_id\\tage\\r\\nsub-01\\t61\\r\\n")
    >>> read_tsv_rows(path)
    [{'participant_id': 'sub-01', 'age': '61'}]
    """
    path = Path(path)
    if not path.is_file():
        raise AnatCLError(f"{path}: no such participants.tsv; pass the BIDS "
                          "participants.tsv that holds the labels")
    with open(path, newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows:
        raise AnatCLError(f"{path}: no participant rows under the header")
    return rows


def read_column(participants_tsv, column):
    """The values of ``column``, one per row; an error listing the columns there are.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "participants.tsv"
    >>> _ = path.write_text("participant_id\\tage\\nsub-01\\t61\\n")
    >>> read_column(path, "age")
    ['61']
    """
    rows = read_tsv_rows(participants_tsv)
    columns = [name for name in rows[0] if name is not None]
    if column not in columns:
        raise AnatCLError(f"{participants_tsv}: no column {column!r}; columns are "
                          f"{', '.join(columns)}")
    return [row[column] for row in rows]


def infer_task(target, values):
    """``brain_age`` for age, ``regression`` for numbers, else ``classification``.

    >>> infer_task("age", ["30"]), infer_task("mmse", ["29", "n/a"]), infer_task("dx", ["AD"])
    ('brain_age', 'regression', 'classification')
    """
    if target.lower() == "age":
        return "brain_age"
    known = [value for value in values if value.strip() not in MISSING_VALUES]
    try:
        [float(value) for value in known]
    except ValueError:
        return "classification"
    return "regression"
