"""BIDS names for CAT12 outputs: which participant a file belongs to, and its BIDS source name.

CAT12 prefixes its outputs (``mri/mwp1sub-01_ses-1_T1w.nii``); BIDS derivatives are named
after the raw file they come from (``sub-01/ses-1/anat/sub-01_ses-1_T1w.nii``).

>>> participant_id_from_path("/data/cat12/sub-01/mri/mwp1sub-01_T1w.nii")
'sub-01'
>>> bids_source_from_cat12("/data/cat12/sub-01/ses-1/anat/mri/mwp1sub-01_ses-1_T1w.nii")
'sub-01/ses-1/anat/sub-01_ses-1_T1w.nii'
"""

import re
from pathlib import Path

from anatcl_nipype.errors import AnatCLError

#: The prefixes CAT12 puts before the input name (longest first).
CAT12_PREFIXES = ("mwp1", "mwp2", "mwp3", "wp1", "wp2", "wm", "p1", "p2", "p0", "m")
_SUBJECT = re.compile(r"(?:^|[_/])sub-([A-Za-z0-9]+)")
_SESSION = re.compile(r"(?:^|_)ses-([A-Za-z0-9]+)")


def strip_cat12_prefix(name):
    """``mwp1sub-01_T1w.nii`` -> ``sub-01_T1w.nii``; names without a known prefix are kept.

    >>> strip_cat12_prefix("mwp1sub-01_T1w.nii"), strip_cat12_prefix("subject7.nii")
    ('sub-01_T1w.nii', 'subject7.nii')
    """
    for prefix in CAT12_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):].startswith("sub-"):
            return name[len(prefix):]
    return name.removeprefix("mwp1")


def participant_id_from_path(path):
    """The ``sub-<label>`` a CAT12 file belongs to, from its name or else its folders.

    Files with no BIDS subject entity get a BIDS id made of their stem without CAT12's
    prefix, letters and digits only (``mwp1subject_7.nii`` -> ``sub-subject7``).

    >>> participant_id_from_path("/data/mri/mwp1subject_7.nii")
    'sub-subject7'
    """
    path = Path(path)
    name = strip_cat12_prefix(path.name)
    match = _SUBJECT.search(name) or _SUBJECT.search(path.as_posix())
    if match:
        return f"sub-{match.group(1)}"
    return "sub-" + bids_label(re.sub(r"\.nii(\.gz)?$", "", name))


def bids_label(text):
    """``text`` with letters and digits only, as BIDS entity labels and file names need.

    The one sanitiser of ids and names put into file names (participant labels, targets).

    >>> bids_label("MMSE score (baseline)"), bids_label("sub_01"), bids_label("??")
    ('MMSEscorebaseline', 'sub01', 'x')
    """
    return re.sub(r"[^A-Za-z0-9]", "", str(text)) or "x"


def bids_source_from_cat12(path):
    """The BIDS raw-file path (relative) that a CAT12 output was computed from."""
    path = Path(path)
    name = strip_cat12_prefix(path.name)
    subject = _SUBJECT.search(name)
    if not subject:
        raise AnatCLError(
            f"{path}: no BIDS subject entity (sub-<label>) in the file name; name CAT12's "
            "inputs the BIDS way (sub-01_T1w.nii) to write BIDS derivatives"
        )
    session = _SESSION.search(name)
    folder = f"sub-{subject.group(1)}" + (f"/ses-{session.group(1)}" if session else "")
    return f"{folder}/anat/{name}"


def participant_ids_for(paths, participant_ids=None):
    """One unique participant id per path: the given ones, else ``sub-<label>`` from each path.

    >>> participant_ids_for(["a/mwp1sub-01_T1w.nii", "b/mwp1sub-02_T1w.nii"])
    ['sub-01', 'sub-02']
    """
    paths = list(paths)
    ids = list(participant_ids) if participant_ids else [participant_id_from_path(p) for p in paths]
    if len(ids) != len(paths):
        raise AnatCLError(f"{len(ids)} participant_ids for {len(paths)} maps: give one each")
    duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
    if duplicates:
        raise AnatCLError(f"several maps belong to {', '.join(duplicates)}; pass "
                          "participant_ids (e.g. sub-01_ses-1) to tell them apart")
    return ids


def weights_desc(descriptor="global", fold=0, weights=None):
    """The BIDS ``desc`` entity naming the encoder weights: ``anatclGlobalFold0`` for released
    weights, ``anatclCustom`` for a user's checkpoint (or no descriptor).

    >>> weights_desc("local", 3), weights_desc(weights="my.pth"), weights_desc(None, None)
    ('anatclLocalFold3', 'anatclCustom', 'anatclCustom')
    """
    if weights is not None or descriptor is None:
        return "anatclCustom"
    return f"anatcl{descriptor.capitalize()}Fold{fold}"
