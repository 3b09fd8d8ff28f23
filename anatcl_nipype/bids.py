"""BIDS names for CAT12 outputs: which participant a file belongs to, and its BIDS source name.

CAT12 prefixes its outputs (``mri/mwp1sub-01_ses-1_T1w.nii``); BIDS derivatives are named
after the raw file they come from (``sub-01/ses-1/anat/sub-01_ses-1_T1w.nii``).

>>> participant_id_from_path("/data/cat12/sub-01/mri/mwp1sub-01_T1w.nii")
'sub-01'
>>> bids_source_from_cat12("/data/cat12/sub-01/ses-1/anat/mri/mwp1sub-01_ses-1_T1w.nii")
'sub-01/ses-1/anat/sub-01_ses-1_T1w.nii'
"""

import hashlib
import re
import unicodedata
from pathlib import Path, PurePath

from anatcl_nipype.errors import AnatCLError

#: The prefixes CAT12 puts before the input name: images (longest first), then XML/logs.
CAT12_PREFIXES = ("mwp1", "mwp2", "mwp3", "rp1", "rp2", "rp3", "wp1", "wp2", "wp3", "wm",
                  "p0", "p1", "p2", "p3", "iy_", "y_", "m")
CAT12_TEXT_PREFIXES = ("catROIs_", "catROI_", "catlog_", "cat_")
#: Labels longer than this are shortened with a hash (file names stay under 255 bytes).
MAX_LABEL = 64
_SUBJECT = re.compile(r"(?:^|[_/])sub-([A-Za-z0-9]+)")
_SESSION = re.compile(r"(?:^|_)ses-([A-Za-z0-9]+)")
_EXTENSIONS = re.compile(r"(\.nii(\.gz)?|\.xml|\.txt|\.gii|\.mat)$")


def strip_cat12_prefix(name):
    """``mwp1sub-01_T1w.nii`` -> ``sub-01_T1w.nii``; names without a known prefix are kept.

    >>> strip_cat12_prefix("mwp1sub-01_T1w.nii"), strip_cat12_prefix("subject7.nii")
    ('sub-01_T1w.nii', 'subject7.nii')
    >>> strip_cat12_prefix("catROI_IXI002-Guys-0828-T1.xml")
    'IXI002-Guys-0828-T1.xml'
    """
    for prefix in CAT12_TEXT_PREFIXES + CAT12_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):].startswith("sub-"):
            return name[len(prefix):]
    for prefix in CAT12_TEXT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name.removeprefix("mwp1")


def cat12_stem(path):
    """The name of the scan CAT12 ran on, from any of its outputs (prefix and extension off).

    Every output kind of one scan gives the same stem: images (``mwp1``, ``mwp2``, ``wm``,
    ``p1`` ... in ``mri/``), ``catROI_``/``catROIs_`` label files and the ``cat_`` report,
    with or without ``.xml``. Elsewhere only ``mwp1`` is taken off an image's name.

    >>> sorted({cat12_stem(n) for n in ("mri/mwp1IXI002-Guys-0828-T1.nii",
    ...         "mri/p1IXI002-Guys-0828-T1.nii", "label/catROIs_IXI002-Guys-0828-T1.xml",
    ...         "report/cat_IXI002-Guys-0828-T1", "mri/wmIXI002-Guys-0828-T1.nii.gz")})
    ['IXI002-Guys-0828-T1']
    """
    path = PurePath(path)
    name = _EXTENSIONS.sub("", path.name)
    # image prefixes only for images CAT12 wrote (in mri/): elsewhere "m" may begin a name
    prefixes = CAT12_TEXT_PREFIXES + (CAT12_PREFIXES if path.parent.name == "mri" else ("mwp1",))
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def participant_id_from_path(path):
    """The ``sub-<label>`` a CAT12 file belongs to, from its name or else its folders.

    Files with no BIDS subject entity get a BIDS id made of the scan's name without
    CAT12's prefix (:func:`subject_label`: letters and digits, non-ASCII letters
    transliterated or hashed, long names shortened). A name that gives no id raises
    :class:`AnatCLError` naming the file.

    >>> participant_id_from_path("/data/mri/mwp1subject_7.nii")
    'sub-subject7'
    >>> participant_id_from_path("/data/label/catROI_IXI002-Guys-0828-T1.xml")
    'sub-IXI002Guys0828T1'
    """
    return participant_id_with_note(path)[0]


def participant_id_with_note(path):
    """``(participant_id, note)``: the note says how a non-BIDS name became the id (None
    when the name is BIDS or only lost punctuation).

    >>> participant_id_with_note("/d/mri/mwp1Jos\u00e9.nii")
    ('sub-Jose', 'participant id transliterated from the file name stem Jos\u00e9')
    """
    path = Path(path)
    name = strip_cat12_prefix(path.name)
    match = _SUBJECT.search(name) or _SUBJECT.search(path.as_posix())
    if match:
        label = bounded_label(match.group(1))
        return f"sub-{label}", (None if label == match.group(1) else
                                f"participant id shortened from sub-{match.group(1)}")
    stem = cat12_stem(path)
    label, how = subject_label(stem)
    if label is None:
        raise AnatCLError(f"{path}: no participant id can be made from this file name (no "
                          "letters or digits in it); rename the scan (e.g. sub-01_T1w.nii) or "
                          "pass participant ids explicitly")
    return f"sub-{label}", (f"participant id {how} from the file name stem {stem}"
                            if how else None)


def unnamed_id(path):
    """A stable BIDS id standing for a file that gives no participant id (for ``failed.tsv``
    and the report, beside the file's path).

    >>> unnamed_id("/d/mri/mwp1_-_.nii")
    'sub-unnamedh31628790'
    """
    return f"sub-unnamedh{_digest(Path(path).absolute())}"


def session_id_from_path(path):
    """The ``ses-<label>`` of a CAT12 file (its name, else a ``ses-<label>`` folder), or None.

    >>> session_id_from_path("/d/sub-01/ses-bl/anat/mri/mwp1sub-01_ses-bl_T1w.nii")
    'ses-bl'
    >>> session_id_from_path("/d/sub-01/ses-2/mri/mwp1scan.nii"), session_id_from_path("a.nii")
    ('ses-2', None)
    """
    path = PurePath(path)
    match = _SESSION.search(strip_cat12_prefix(path.name))
    if match:
        return f"ses-{match.group(1)}"
    folders = [part for part in path.parts[:-1] if re.fullmatch(r"ses-[A-Za-z0-9]+", part)]
    return folders[-1] if folders else None


def subject_label(text):
    """``(label, how)``: a BIDS label (letters and digits) for ``text``, and how it was made.

    ``how`` is None when only punctuation was dropped, ``"transliterated"`` when accented
    letters lost their marks (Unicode NFKD), ``"hashed"`` when letters with no ASCII
    form were replaced by a hash of the name, ``"shortened"`` when a name over
    :data:`MAX_LABEL` characters was cut and given a hash; label None when nothing is
    left to name.

    >>> subject_label("IXI002-Guys-0828-T1"), subject_label("M\u00fcller")
    (('IXI002Guys0828T1', None), ('Muller', 'transliterated'))
    >>> subject_label("\u5f20\u4e09")[1], subject_label("__")
    ('hashed', (None, None))
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    ascii_text = decomposed.encode("ascii", "ignore").decode()
    label = re.sub(r"[^A-Za-z0-9]", "", ascii_text)
    unmapped = re.sub(r"[\W_]", "", "".join(c for c in decomposed if not c.isascii()
                                            and not unicodedata.combining(c)))
    if unmapped:
        label, how = label + "h" + _digest(text), "hashed"
    elif not label:
        return None, None
    else:
        how = "transliterated" if ascii_text != decomposed else None
    if len(label) > MAX_LABEL:
        label, how = bounded_label(label), how or "shortened"
    return label, how


def bounded_label(label, limit=MAX_LABEL):
    """``label`` itself, or when longer than ``limit`` its start plus a hash of the whole.

    >>> bounded_label("a" * 10), len(bounded_label("a" * 240)), bounded_label("a" * 240)[-9:]
    ('aaaaaaaaaa', 64, 'h9b304390')
    """
    if len(label) <= limit:
        return label
    return label[:limit - 9] + "h" + _digest(label)


def _digest(text):
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def scan_id(participant_id, session_id=None):
    """The key of one scan's row in feature tables: ``sub-01`` or ``sub-01_ses-2``.

    >>> scan_id("sub-01"), scan_id("sub-01", "ses-2")
    ('sub-01', 'sub-01_ses-2')
    """
    return f"{participant_id}_{session_id}" if session_id else participant_id


def split_scan_id(key):
    """``sub-01_ses-2`` -> ``("sub-01", "ses-2")``; ``sub-01`` -> ``("sub-01", None)``.

    >>> split_scan_id("sub-01_ses-2"), split_scan_id("sub-01")
    (('sub-01', 'ses-2'), ('sub-01', None))
    """
    subject, separator, session = str(key).partition("_ses-")
    return (subject, f"ses-{session}") if separator else (subject, None)


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


def bids_source_for(participant_id, session_id, path):
    """The BIDS T1w a scan's derivatives are named after: the one in CAT12's file name when
    it names this participant and session, else ``sub-<l>[/ses-<s>]/anat/<entities>_T1w.nii``.

    >>> bids_source_for("sub-IXI002", "ses-2", "/d/ses-2/mri/mwp1IXI002-Guys.nii")
    'sub-IXI002/ses-2/anat/sub-IXI002_ses-2_T1w.nii'
    """
    try:
        source = bids_source_from_cat12(path)
    except AnatCLError:
        source = None
    folder = participant_id + (f"/{session_id}" if session_id else "")
    if source and source.startswith(f"{folder}/anat/"):
        return source
    return f"{folder}/anat/{scan_id(participant_id, session_id)}_T1w.nii"


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


def weights_desc(descriptor="global", fold=0, weights=None, random=False):
    """The BIDS ``desc`` entity naming the encoder weights: ``anatclGlobalFold0`` for released
    weights, ``anatclCustom`` for a user's checkpoint (or no descriptor), ``anatclRandom``
    for a checkpoint of seeded random weights (``random``: its sidecars' weights record
    says ``"random": true``; known once it is loaded, so the sinks decide it at run time).

    >>> weights_desc("local", 3), weights_desc(weights="my.pth"), weights_desc(None, None)
    ('anatclLocalFold3', 'anatclCustom', 'anatclCustom')
    >>> weights_desc(weights="random-weights-seed0.pth", random=True)
    'anatclRandom'
    """
    if random:
        return "anatclRandom"
    if weights is not None or descriptor is None:
        return "anatclCustom"
    return f"anatcl{descriptor.capitalize()}Fold{fold}"
