"""The contents of an output folder as plain data: what the report shows.

Tolerant by design: a file that is absent or unreadable becomes an empty value and a note,
never an exception, because the report must still open after a partial or failed run.

``failed.tsv`` columns: ``participant_id``, ``path``, ``reason`` and, optionally,
``traceback``: an excerpt of the Python traceback with its newlines written as the two
characters ``\\n`` (and tabs as ``\\t``), so each failure stays one row
(:func:`encode_traceback` writes that form, :func:`decode_traceback` reads it).

>>> decode_traceback(encode_traceback("Traceback:\\n  File x\\nValueError: bad"))
'Traceback:\\n  File x\\nValueError: bad'
"""

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.inputs import read_tsv_rows
from anatcl_nipype.outputs import GROUP_FILES, participant_file, participant_files
from anatcl_nipype.reports import REPORT_DIR
from anatcl_nipype.reports.run_record import read_run_records

#: Lines of a traceback kept in ``failed.tsv`` (the last ones: where it failed and why).
TRACEBACK_LINES = 12


@dataclass
class Participant:
    """One participant (and session) of the output folder."""

    label: str                      # "sub-01" or "sub-01_ses-1"
    embedding: Path | None = None
    sidecar: dict = field(default_factory=dict)
    gm_map: Path | None = None
    cat12: dict | None = None       # read_cat12_report's dict
    cat12_note: str = ""
    failure: dict | None = None     # {"reason": ..., "traceback": ..., "path": ...}
    info: dict = field(default_factory=dict)  # participants.tsv row

    @property
    def participant_id(self):
        return self.label.split("_")[0]


@dataclass
class AppliedProbe:
    """Predictions of a saved probe applied to this folder's participants."""

    table: Path
    sidecar: dict
    rows: list

    @property
    def model(self):
        """The probe file ApplyProbe recorded (None if the sidecar lacks it)."""
        return self.sidecar.get("model")

    @property
    def model_sha256(self):
        """That file's SHA-256, as recorded when it was applied."""
        return self.sidecar.get("model_sha256")


@dataclass
class TargetResults:
    """``group/target-<name>/``: a fitted probe's cross-validation and/or applied probes."""

    name: str
    folder: Path
    metrics: list = field(default_factory=list)      # metrics.tsv rows (dicts)
    predictions: list = field(default_factory=list)  # predictions.tsv rows (dicts)
    summary: dict = field(default_factory=dict)      # summary.json
    card: dict = field(default_factory=dict)         # probe.json
    figures: list = field(default_factory=list)      # SVGs the group level drew
    applied: list = field(default_factory=list)      # AppliedProbe

    @property
    def task(self):
        return self.summary.get("task") or self.card.get("task")


@dataclass
class OutputFolder:
    """Everything the report reads from one output folder."""

    root: Path
    participants: list
    targets: list
    runs: list
    graph: Path | None

    @property
    def encoded(self):
        return [p for p in self.participants if p.embedding is not None]

    @property
    def failed(self):
        return [p for p in self.participants if p.failure is not None]


def scans_of(labels):
    """How many participants ``labels`` (``sub-<l>[_ses-<s>]``) are, in words; with several
    sessions of a participant, how many scans of how many participants. A label that is not
    ``sub-<l>`` (a placeholder in failed.tsv) counts as its own participant.

    >>> scans_of(["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1"])
    '3 scans of 2 participants'
    >>> scans_of(["sub-01", "unknown"]), scans_of(["sub-01_ses-1"])
    ('2 participants', '1 participant')
    >>> scans_of(f"sub-{i}" for i in range(10000))
    '10,000 participants'
    """
    labels = list(labels)
    subjects = {label.split("_ses-")[0] for label in labels}
    people = f"{len(subjects):,} participant{'' if len(subjects) == 1 else 's'}"
    if len(subjects) == len(labels):
        return people
    return f"{len(labels):,} scan{'' if len(labels) == 1 else 's'} of {people}"


def encode_traceback(text, max_lines=TRACEBACK_LINES):
    """The last ``max_lines`` lines of ``text`` as one ``failed.tsv`` field."""
    lines = str(text).rstrip("\n").splitlines()[-max_lines:]
    return "\\n".join(line.replace("\\", "\\\\").replace("\t", "\\t") for line in lines)


def decode_traceback(field_text):
    """Undo :func:`encode_traceback`."""
    out, chars = [], iter(field_text or "")
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(escaped, "\\" + escaped))
    return "".join(out)


def read_tsv(path):
    """Rows of an optional TSV output (failed.tsv, metrics.tsv, ...) as dicts, read by the
    package's one reader; empty when absent, without rows or unreadable."""
    try:
        return read_tsv_rows(path)
    except (AnatCLError, OSError, csv.Error, UnicodeDecodeError):
        return []


def read_json(path):
    """A JSON file as a dict (empty when absent or unreadable)."""
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def collect_output_folder(output_dir, participants_tsv=None):
    """Read ``output_dir`` into an :class:`OutputFolder`."""
    root = Path(output_dir)
    report = root / REPORT_DIR
    info = {row.get("participant_id"): row for row in read_tsv_rows(participants_tsv)} \
        if participants_tsv else {}
    participants = _participants(root, report / "failed.tsv", info)
    graph = report / "graph.svg"
    return OutputFolder(root=root, participants=participants, targets=_targets(root),
                        runs=read_run_records(report),
                        graph=graph if graph.is_file() else None)


def _participants(root, failed_tsv, info):
    found = {}
    embeddings = participant_files(root, "embedding", ".npy", desc="*")
    main_desc = _most_common_desc(embeddings)
    for npy in embeddings:
        label = _label(npy.name)
        if _desc(npy.name) != main_desc and label in found:
            continue
        sidecar = read_json(npy.with_suffix(".json"))
        gm = sidecar.get("input", {}).get("path")
        found[label] = Participant(label=label, embedding=npy, sidecar=sidecar,
                                   gm_map=Path(gm) if gm else None)
    for row in read_tsv(failed_tsv):
        label = row.get("participant_id") or "unknown"
        participant = found.setdefault(label, Participant(label=label))
        participant.failure = {"reason": row.get("reason", ""), "path": row.get("path", ""),
                               "traceback": decode_traceback(row.get("traceback", ""))}
        if participant.gm_map is None and row.get("path"):
            participant.gm_map = Path(row["path"])
    for participant in found.values():
        participant.info = info.get(participant.participant_id, {})
        _attach_cat12(participant, root)
    return [found[label] for label in sorted(found)]


def _label(name):
    """``sub-01[_ses-1]`` from a BIDS file name."""
    return "_".join(part for part in name.split("_")
                    if part.startswith(("sub-", "ses-")))


def _desc(name):
    return next((part for part in name.split("_") if part.startswith("desc-")), "")


def _most_common_desc(paths):
    counts = Counter(_desc(path.name) for path in paths)
    return counts.most_common(1)[0][0] if counts else ""


def cat12_report_path(participant, root):
    """CAT12's ``report/cat_*.xml`` for ``participant``: named in its regional sidecar,
    else beside its ``mri/mwp1*.nii`` map; None when neither exists."""
    for sidecar in sorted(root.glob(f"{participant.participant_id}/**/"
                                    f"{participant.label}"
                                    f"{participant_file('regional', '.json')}")):
        for source in read_json(sidecar).get("Sources", []):
            path = Path(source.get("path", "")) if isinstance(source, dict) else Path(source)
            if path.name.startswith("cat_") and path.suffix == ".xml" and path.is_file():
                return path
    if participant.gm_map is not None:
        stem = participant.gm_map.name.split(".")[0].removeprefix("mwp1")
        candidate = participant.gm_map.parent.parent / "report" / f"cat_{stem}.xml"
        if candidate.is_file():
            return candidate
    return None


def _attach_cat12(participant, root):
    from anatcl_nipype.regional.cat12_xml import read_cat12_report

    path = cat12_report_path(participant, root)
    if path is None:
        participant.cat12_note = "no CAT12 report (report/cat_*.xml) found"
        return
    try:
        participant.cat12 = read_cat12_report(path)
    except (AnatCLError, OSError) as error:
        participant.cat12_note = str(error)


def _targets(root):
    targets = []
    for folder in sorted(p for p in (root / "group").glob("target-*") if p.is_dir()):
        applied = [AppliedProbe(table=tsv, sidecar=read_json(tsv.with_suffix(".json")),
                                rows=read_tsv(tsv))
                   for tsv in sorted(folder.glob(f"*{GROUP_FILES['applied_predictions']}"))]
        targets.append(TargetResults(
            name=folder.name.removeprefix("target-"), folder=folder,
            metrics=read_tsv(folder / GROUP_FILES["metrics"]),
            predictions=read_tsv(folder / GROUP_FILES["predictions"]),
            summary=read_json(folder / GROUP_FILES["summary"]),
            card=read_json(folder / GROUP_FILES["model_card"]),
            figures=sorted(folder.glob("*.svg")), applied=applied))
    return targets
