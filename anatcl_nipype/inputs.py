"""Find each participant's CAT12 outputs in a CAT12 folder.

Both layouts CAT12 writes are understood, found by pattern rather than fixed paths:

- plain: ``<dir>/<anything>/mri/mwp1<name>.nii`` with ``label/`` and ``report/`` beside ``mri/``;
- BIDS derivatives: ``<dir>/derivatives/CAT12.x/sub-<l>/[ses-<l>/]anat/mri/mwp1<name>.nii``.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "sub-01" / "mri").mkdir(parents=True)
>>> _ = (root / "sub-01" / "mri" / "mwp1sub-01_T1w.nii").write_bytes(b"")
>>> [s.participant_id for s in find_cat12_subjects(root)]
['sub-01']
"""

from dataclasses import dataclass
from pathlib import Path

from anatcl_nipype.bids import participant_id_from_path
from anatcl_nipype.errors import AnatCLError


@dataclass(frozen=True)
class CAT12Subject:
    """One participant's CAT12 files (absent optional files are None)."""

    participant_id: str
    gm_modulated: Path
    label_roi: Path | None = None
    label_rois: Path | None = None
    report: Path | None = None


def _beside(mwp1, folder, prefix):
    name = mwp1.name.removeprefix("mwp1")
    for extension in (".nii.gz", ".nii"):
        name = name.removesuffix(extension)
    candidate = mwp1.parent.parent / folder / f"{prefix}{name}.xml"
    return candidate if candidate.is_file() else None


def find_cat12_subjects(cat12_dir, participant_labels=None):
    """Return one :class:`CAT12Subject` per mwp1 map under ``cat12_dir``, sorted by id.

    ``participant_labels`` (with or without ``sub-``) keeps only those participants;
    a label with no map raises :class:`AnatCLError` listing the ones found.
    """
    cat12_dir = Path(cat12_dir).absolute()
    if not cat12_dir.is_dir():
        raise AnatCLError(f"{cat12_dir}: no such folder; pass the folder CAT12 wrote into")
    maps = sorted(p for p in cat12_dir.rglob("mwp1*.nii*")
                  if p.parent.name == "mri" and p.name.endswith((".nii", ".nii.gz")))
    if not maps:
        raise AnatCLError(f"{cat12_dir}: no CAT12 grey-matter maps (mri/mwp1*.nii) found; "
                          "run CAT12 first, with the modulated normalised GM output on")
    subjects = [CAT12Subject(participant_id_from_path(m), m, _beside(m, "label", "catROI_"),
                             _beside(m, "label", "catROIs_"), _beside(m, "report", "cat_"))
                for m in maps]
    _check_unique(subjects)
    if participant_labels:
        subjects = _select(subjects, participant_labels)
    return sorted(subjects, key=lambda s: s.participant_id)


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
