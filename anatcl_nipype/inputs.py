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
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from anatcl_nipype.bids import (  # noqa: F401 (bids_label, bids_source_from_cat12: public here)
    bids_label,
    bids_source_from_cat12,
    bounded_label,
    cat12_stem,
    participant_id_with_note,
    scan_id,
    session_id_from_path,
)
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import AUTO_TASK_BY_TARGET

ID_COLUMN = "participant_id"
SESSION_COLUMN = "session_id"
#: Cell values read as missing.
MISSING_VALUES = frozenset({"n/a", ""})
_SUBJECT_FOLDER = re.compile(r"sub-[A-Za-z0-9]+")


@dataclass(frozen=True)
class CAT12Subject:
    """One scan's CAT12 files (absent optional files are None): a participant, or one
    session of a participant (``session_id`` ``ses-<label>``, else None).

    ``id_note`` says how a non-BIDS file name became the participant id (transliterated,
    hashed or shortened), None when it did not need to.
    """

    participant_id: str
    gm_modulated: Path
    label_roi: Path | None = None
    label_rois: Path | None = None
    report: Path | None = None
    session_id: str | None = None
    id_note: str | None = None

    @property
    def scan_id(self):
        """``sub-01`` or ``sub-01_ses-2``: the key of this scan's rows and file names."""
        return scan_id(self.participant_id, self.session_id)

    def as_inputs(self):
        """The record as the dict :func:`init_single_subject_wf` takes (no None values).

        >>> CAT12Subject("sub-01", Path("/d/mwp1sub-01_T1w.nii")).as_inputs()
        {'participant_id': 'sub-01', 'gm_modulated': '/d/mwp1sub-01_T1w.nii'}
        """
        return {key: str(value) for key, value in asdict(self).items() if value is not None}


@dataclass
class Discovery:
    """What :func:`discover_cat12` found: the scans, how many maps, and what it could not use.

    ``empty_folders`` holds ``(folder, why)`` for subject folders without a map;
    ``unusable`` holds ``(map, reason)`` for maps that give no participant id;
    ``misfiled`` holds ``(map, why)`` for maps whose name gives another participant than
    the ``sub-*`` folder they lie in (the name's id is used).
    """

    subjects: list
    n_maps: int
    empty_folders: list = field(default_factory=list)
    unusable: list = field(default_factory=list)
    misfiled: list = field(default_factory=list)

    def describe(self):
        """Lines for a person: how many maps, which folders had none and why.

        >>> Discovery([], 2, [(Path("/d/s3"), "no mri/ folder")]).describe()
        ['Found 2 grey-matter map(s) (mri/mwp1*.nii) for 0 scan(s)', '  /d/s3: no mri/ folder']
        """
        lines = [f"Found {self.n_maps} grey-matter map(s) (mri/mwp1*.nii) for "
                 f"{len(self.subjects)} scan(s)"]
        lines += [f"  {folder}: {why}" for folder, why in self.empty_folders]
        lines += [f"  {path}: {reason}" for path, reason in self.unusable + self.misfiled]
        return lines


def find_cat12_subjects(cat12_dir, participant_labels=None, session_labels=None):
    """Return one :class:`CAT12Subject` per mwp1 map under ``cat12_dir``, sorted by id.

    ``participant_labels`` (with or without ``sub-``) keeps only those participants,
    ``session_labels`` (with or without ``ses-``) only those sessions; a label with no
    map raises :class:`AnatCLError` listing the ones found. Maps that give no participant
    id are left out (:func:`discover_cat12` lists them); a map named for another
    participant than its ``sub-*`` folder is warned about (``UserWarning``, both names).
    """
    discovery = discover_cat12(cat12_dir, participant_labels, session_labels)
    for path, why in discovery.misfiled:
        warnings.warn(f"{path}: {why}", stacklevel=2)
    return discovery.subjects


def discover_cat12(cat12_dir, participant_labels=None, session_labels=None):
    """Find every scan's CAT12 files under ``cat12_dir``: a :class:`Discovery`.

    Sessions (``ses-<label>`` in the file name or a folder) give one scan each; folders
    reached through symbolic links are followed (each real folder once). The participant
    id comes from the map's name when it has one: a map in ``sub-05/`` named
    ``mwp1sub-02_T1w.nii`` is sub-02, listed in ``misfiled`` and noted in its ``id_note``;
    two maps giving one scan id are refused, naming both.
    """
    cat12_dir = Path(cat12_dir).absolute()
    maps = find_cat12_maps(cat12_dir)
    subjects, unusable, misfiled = [], [], []
    for path in maps:
        try:
            subject = _subject_of(path)
        except AnatCLError as error:
            unusable.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        why = _misfiled(subject, cat12_dir)
        if why:
            misfiled.append((path, why))
            subject = replace(subject, id_note="; ".join(filter(None, [subject.id_note, why])))
        subjects.append(subject)
    _check_unique(subjects)
    if participant_labels:
        subjects = _select(subjects, participant_labels, "sub-", "participant_id", misfiled)
    if session_labels:
        subjects = _select(subjects, session_labels, "ses-", "session_id")
    subjects = sorted(subjects, key=lambda s: (s.participant_id, s.session_id or ""))
    return Discovery(subjects, len(maps), _empty_folders(cat12_dir, maps), unusable, misfiled)


def find_cat12_maps(cat12_dir):
    """Every CAT12 modulated grey-matter map (``mri/mwp1*.nii[.gz]``) under ``cat12_dir``.

    Symbolic links to folders are followed; a folder reached twice (a link loop, or two
    links to one folder) is read once.
    """
    cat12_dir = Path(cat12_dir).absolute()
    if not cat12_dir.is_dir():
        raise AnatCLError(f"{cat12_dir}: no such folder; pass the folder CAT12 wrote into")
    maps = sorted(path for path in _walk_files(cat12_dir) if _is_gm_map(path))
    if not maps:
        raise AnatCLError(f"{cat12_dir}: no CAT12 grey-matter maps (mri/mwp1*.nii) found; "
                          "run CAT12 first, with the modulated normalised GM output on")
    return maps


def _walk_files(folder):
    """Every file under ``folder``, following folder links, each real folder once.

    ``os.walk(followlinks=True)`` alone loops forever on a link to a parent folder, and
    ``Path.rglob`` (Python < 3.13) does not follow links at all: hence the visited set.
    """
    visited = set()
    for root, folders, files in os.walk(folder, followlinks=True):
        identity = os.stat(root)
        if (identity.st_dev, identity.st_ino) in visited:
            folders[:] = []
            continue
        visited.add((identity.st_dev, identity.st_ino))
        folders.sort()
        yield from (Path(root) / name for name in files)


def _is_gm_map(path):
    return (path.parent.name == "mri" and path.name.startswith("mwp1")
            and path.name.endswith((".nii", ".nii.gz")))


def _empty_folders(cat12_dir, maps):
    """``(folder, why)`` for each subject folder (a child of the BIDS ``derivatives/CAT12*``
    folders when there are some, the raw data's ``sub-*`` beside them being no concern;
    else of the CAT12 folder) that holds no map."""
    roots = sorted(cat12_dir.glob("derivatives/[Cc][Aa][Tt]12*")) or [cat12_dir]
    holders = {parent for path in maps for parent in path.parents}
    real_holders = {folder.resolve() for folder in holders}
    empty = []
    for root in roots:
        if (root / "mri").is_dir():  # one subject's folder: label/, report/ are not subjects
            continue
        for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
            if folder.is_symlink() and not folder.exists():
                empty.append((folder, "a broken symbolic link"))
            elif folder.is_dir() and folder not in holders and folder not in roots \
                    and folder.name != "derivatives" and _may_be_a_subject(folder):
                empty.append((folder, "the same folder as another one (a symbolic link), "
                                      "read once" if folder.resolve() in real_holders
                              else _why_no_map(folder)))
    return empty


def _may_be_a_subject(folder):
    """A ``sub-*`` folder, an empty one, or one holding CAT12's output folders; not a folder
    of other files (e.g. an atlas beside the subjects)."""
    files = list(_walk_files(folder))
    return folder.name.startswith("sub-") or not files or any(
        path.parent.name in ("mri", "label", "report", "surf") for path in files)


def _why_no_map(folder):
    mri = sorted(p for p in _walk_files(folder) if p.parent.name == "mri")
    if not mri:
        return "no mri/ folder with CAT12 outputs"
    shown = ", ".join(p.name for p in mri[:3]) + (" ..." if len(mri) > 3 else "")
    return f"no mwp1*.nii grey-matter map in mri/ (found {shown})"


def _subject_of(mwp1):
    participant_id, note = participant_id_with_note(mwp1)
    return CAT12Subject(participant_id, mwp1, _beside(mwp1, "label", "catROI_"),
                        _beside(mwp1, "label", "catROIs_"), _beside(mwp1, "report", "cat_"),
                        session_id_from_path(mwp1), note)


def _misfiled(subject, cat12_dir):
    """Why ``subject``'s map seems misfiled: named for another participant than the
    nearest ``sub-*`` folder holding it below ``cat12_dir``; None when they agree.

    >>> print(_misfiled(CAT12Subject("sub-02", Path("/d/sub-05/mri/mwp1sub-02_T1w.nii")),
    ...                 Path("/d")))
    the map is named for sub-02 but lies in the folder sub-05; read as sub-02 (rename the map \
or the folder if it belongs to sub-05)
    """
    parts = subject.gm_modulated.parent.relative_to(cat12_dir).parts
    folders = [part for part in parts if _SUBJECT_FOLDER.fullmatch(part)]
    if not folders or folders[-1] == subject.participant_id:
        return None
    folder = folders[-1]
    if f"sub-{bounded_label(folder.removeprefix('sub-'))}" == subject.participant_id:
        return None  # a long folder name, shortened the same way
    return (f"the map is named for {subject.participant_id} but lies in the folder {folder}; "
            f"read as {subject.participant_id} (rename the map or the folder if it belongs to "
            f"{folder})")


def _beside(mwp1, folder, prefix):
    candidate = mwp1.parent.parent / folder / f"{prefix}{cat12_stem(mwp1)}.xml"
    return candidate if candidate.is_file() else None


def _check_unique(subjects):
    seen = {}
    for subject in subjects:
        if subject.scan_id in seen:
            raise AnatCLError(
                f"two grey-matter maps for {subject.scan_id}: {seen[subject.scan_id]}"
                f" and {subject.gm_modulated}; keep one per participant and session (name "
                "sessions ses-<label>, in the file name or a folder; a map's name, not its "
                "folder, gives its participant) or point at a folder holding one of them")
        seen[subject.scan_id] = subject.gm_modulated


def _select(subjects, labels, prefix, attribute, misfiled=()):
    wanted = {f"{prefix}{label.removeprefix(prefix)}" for label in labels}
    found = {getattr(s, attribute) for s in subjects} - {None}
    unknown = sorted(wanted - found)
    if unknown:
        hints = [f"; {path}: {why}" for path, why in misfiled
                 if any(f"the folder {name};" in why for name in unknown)]
        raise AnatCLError(f"no CAT12 maps for {', '.join(unknown)}; found: "
                          f"{', '.join(sorted(found)[:20])}{' ...' if len(found) > 20 else ''}"
                          + "".join(hints))
    return [s for s in subjects if getattr(s, attribute) in wanted]


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
            raise AnatCLError(f"{participants}: no such participants.tsv; pass an existing file "
                              "with --participants")
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


def sessions_tsv_of(participants_tsv, participant_id):
    """The BIDS ``sub-<l>/sub-<l>_sessions.tsv`` beside ``participants_tsv``, or None.

    >>> sessions_tsv_of("/nowhere/participants.tsv", "sub-01") is None
    True
    """
    path = Path(participants_tsv).parent / participant_id / f"{participant_id}_sessions.tsv"
    return path if path.is_file() else None


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


def target_values(participants_tsv, column):
    """The values of ``column`` in ``participants_tsv`` and in the BIDS ``sessions.tsv``
    files beside it (ages per visit live there); an error listing the columns if none has it.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "participants.tsv").write_text("participant_id\\tsex\\nsub-01\\tF\\n")
    >>> (root / "sub-01").mkdir()
    >>> _ = (root / "sub-01" / "sub-01_sessions.tsv").write_text(
    ...     "session_id\\tage\\nses-1\\t70\\nses-2\\t72\\n")
    >>> target_values(root / "participants.tsv", "age")
    ['70', '72']
    """
    rows = read_tsv_rows(participants_tsv)
    values = [row[column] for row in rows if column in row]
    for path in sorted(Path(participants_tsv).parent.glob("sub-*/sub-*_sessions.tsv")):
        values += [row[column] for row in read_tsv_rows(path) if column in row]
    if not values:
        return read_column(participants_tsv, column)  # its error lists the columns
    return values


def infer_task(target, values):
    """``brain_age`` for age, ``regression`` for numbers, else ``classification``.

    >>> infer_task("age", ["30"]), infer_task("mmse", ["29", "n/a"]), infer_task("dx", ["AD"])
    ('brain_age', 'regression', 'classification')
    """
    if target.lower() in AUTO_TASK_BY_TARGET:
        return AUTO_TASK_BY_TARGET[target.lower()]
    known = [value for value in values if value.strip() not in MISSING_VALUES]
    try:
        [float(value) for value in known]
    except ValueError:
        return "classification"
    return "regression"
