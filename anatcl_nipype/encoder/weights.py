"""The released AnatCL weights: registry, download cache and verification.

Ten checkpoints were released: descriptor ``global`` or ``local``, each for folds
0-4 of a 5-fold split of OpenBHB. :func:`fetch_weights` downloads one into the
cache folder (``$ANATCL_NIPYPE_HOME/weights``, by default the user's cache
folder), records its SHA-256 on first download (none are published) and checks
it on every later use; once cached, it works offline.

>>> weights_url("global", 3).endswith("_global_lambd1.0_fold3_splits5_trial0/weights.pth")
True
>>> cached_weights_path("local", 0).name
'anatcl-local-fold0.pth'
"""

import datetime
import json
import os
from pathlib import Path

from anatcl_nipype.errors import WeightsDownloadError
from anatcl_nipype.files import sha256_file, write_json_atomic
from anatcl_nipype.options import DESCRIPTORS, FOLDS

#: Where anatcl 0.0.3 downloads its weights from; ``$ANATCL_NIPYPE_WEIGHTS_URL`` overrides it
#: (a mirror, or a local server in tests).
DEFAULT_BASE_URL = "https://gitlab.di.unito.it/barbano/anatcl-pretrained/-/raw/main"
#: The training run behind each released checkpoint (its name records the recipe).
RUN_NAME = (
    "0_obhn64_resnet18_amp_yaware_adam_tf_none_lr0.0001_step_step10_rate0.9_wd5e-05_bsz32"
    "_trainall_False_temp0.1_views2_kernel_rbf_sigma2.0_alpha1.0_anat_desikan_normTrue"
    "_subsetTrue_{descriptor}_lambd1.0_fold{fold}_splits5_trial0"
)
#: SHA-256 of the released files, where known. The authors publish none, so the hash of
#: the first download is recorded in the cache and every later use is checked against it.
KNOWN_SHA256 = {}


def _check_choice(descriptor, fold):
    if descriptor not in DESCRIPTORS or fold not in FOLDS:
        raise WeightsDownloadError(
            f"no released weights for descriptor={descriptor!r}, fold={fold!r}: "
            f"choose a descriptor in {DESCRIPTORS} and a fold in {FOLDS}"
        )


def weights_url(descriptor, fold, base_url=None):
    """The download address of the released checkpoint for ``descriptor`` and ``fold``."""
    _check_choice(descriptor, fold)
    base = base_url or os.environ.get("ANATCL_NIPYPE_WEIGHTS_URL") or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{RUN_NAME.format(descriptor=descriptor, fold=fold)}/weights.pth"


def home_dir():
    """The package's home folder: ``$ANATCL_NIPYPE_HOME`` or the user cache folder.

    Released weights (``weights/``) and per-machine measurements (``precision/``) live here.
    """
    home = os.environ.get("ANATCL_NIPYPE_HOME")
    if not home:
        import platformdirs

        home = platformdirs.user_cache_dir("anatcl-nipype")
    return Path(home)


def cache_dir():
    """The weights cache folder: ``$ANATCL_NIPYPE_HOME/weights`` or the user cache."""
    return home_dir() / "weights"


def cached_weights_path(descriptor, fold):
    """Where :func:`fetch_weights` keeps the checkpoint for ``descriptor`` and ``fold``."""
    _check_choice(descriptor, fold)
    return cache_dir() / f"anatcl-{descriptor}-fold{fold}.pth"


def _record_path(weights_path):
    return weights_path.with_suffix(".json")


#: Cached files already checked in this process, by path, modification time and size.
_VERIFIED = set()


def fetch_weights(descriptor="global", fold=0, base_url=None, progress=False):
    """Return the path of the cached checkpoint, downloading it first if needed.

    The download goes to a temporary file in the cache and is renamed into place
    only when complete, so an interrupted download never leaves a partial file
    under the final name; calling again starts it afresh. The file's SHA-256 is
    checked against :data:`KNOWN_SHA256` or the hash recorded at first download.
    """
    path = cached_weights_path(descriptor, fold)
    if path.is_file():
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _VERIFIED:  # hash a 128 MB file once per process, not per encoder
            verify_cached_weights(descriptor, fold)
            _VERIFIED.add(key)
        return path
    url = weights_url(descriptor, fold, base_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    _download(url, path, KNOWN_SHA256.get((descriptor, fold)), progress)
    _check_is_checkpoint(path, url)
    write_json_atomic(_record_path(path), {
        "descriptor": descriptor,
        "fold": fold,
        "url": url,
        "sha256": sha256_file(path),
        "downloaded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return path


def _download(url, path, known_hash, progress):
    import pooch
    import requests

    try:
        pooch.retrieve(url, known_hash=known_hash, fname=path.name, path=path.parent,
                       progressbar=progress)
    except (requests.RequestException, OSError, ValueError) as error:
        raise WeightsDownloadError(
            f"cannot download AnatCL weights ({_short_reason(error)}).\n"
            f"  Download {url}\n"
            f"  and save it as {path}\n"
            "  (on another machine if this one is offline), or pass --weights FILE. "
            "`anatcl-nipype weights list` shows every file and where it goes."
        ) from None


def _short_reason(error):
    """A few words on why a download failed (requests' own messages run to ~500 characters).

    >>> _short_reason(ValueError("SHA256 hash of downloaded file (abc) does not match ..."))
    "the downloaded file's SHA-256 is not the known one"
    """
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    if isinstance(error, ValueError):  # pooch: the hash is not the known one
        return "the downloaded file's SHA-256 is not the known one"
    return f"{type(error).__name__}: no connection, or the transfer broke off"


def _check_is_checkpoint(path, url):
    from anatcl_nipype.encoder.checkpoint import load_checkpoint
    from anatcl_nipype.errors import CheckpointError

    try:
        load_checkpoint(path)
    except CheckpointError as error:
        path.unlink()
        raise WeightsDownloadError(f"{url} did not serve an AnatCL checkpoint: {error}") from None


def verify_cached_weights(descriptor, fold):
    """Check a cached checkpoint against its known or recorded SHA-256; return the hash."""
    path = cached_weights_path(descriptor, fold)
    if not path.is_file():
        raise WeightsDownloadError(f"{path}: not downloaded yet (anatcl-nipype weights fetch)")
    actual = sha256_file(path)
    expected = _expected_sha256(descriptor, fold)
    if expected is None:  # placed in the cache by hand: trust it from now on
        write_json_atomic(_record_path(path), {"descriptor": descriptor, "fold": fold, "url": None,
                                   "sha256": actual, "placed_by_user": True})
    elif actual != expected:
        raise WeightsDownloadError(
            f"{path}: SHA-256 {actual} differs from the expected {expected}; the file changed "
            "since it was downloaded. Delete it and fetch it again."
        )
    return actual


def weights_state(descriptor, fold):
    """Whether the checkpoint for ``descriptor``/``fold`` is in place: one short phrase.

    ``not present``, ``present, verified`` (SHA-256 as known or recorded),
    ``present, placed by hand`` (no record yet: recorded at first use) or
    ``present but CHANGED ...``. Reads the file (hashing 128 MB takes about half a second).
    """
    path = cached_weights_path(descriptor, fold)
    if not path.is_file():
        return "not present"
    expected = _expected_sha256(descriptor, fold)
    if expected is None:
        return "present, placed by hand (its SHA-256 is recorded at first use)"
    if sha256_file(path) != expected:
        return "present but CHANGED since it was downloaded: delete it and fetch it again"
    return "present, verified"


def _expected_sha256(descriptor, fold):
    record = _record_path(cached_weights_path(descriptor, fold))
    expected = KNOWN_SHA256.get((descriptor, fold))
    if expected is None and record.is_file():
        expected = json.loads(record.read_text()).get("sha256")
    return expected


def list_weights():
    """One dict per released checkpoint: descriptor, fold, url, ``place_at`` (where the file
    goes) and ``path`` (``place_at`` if the file is there, else None); see
    :func:`weights_state` for whether it is verified.

    >>> entry = list_weights()[0]
    >>> entry["descriptor"], entry["fold"], entry["place_at"].endswith("anatcl-global-fold0.pth")
    ('global', 0, True)
    """
    entries = []
    for descriptor in DESCRIPTORS:
        for fold in FOLDS:
            path = cached_weights_path(descriptor, fold)
            entry = {"descriptor": descriptor, "fold": fold, "url": weights_url(descriptor, fold),
                     "place_at": str(path), "path": str(path) if path.is_file() else None}
            entries.append(entry)
    return entries
