"""BIDS-derivatives outputs: a derivatives sink named by pybids, written atomically.

The sink copies into a private staging folder inside the output folder
(``.anatcl-staging/sink-*``), then renames each finished file into its final place. A
killed run or a full disk never leaves a partial file under a final name, and two runs
writing the same file each put a complete one there. A staging folder left by a killed run
is removed by the next sink that writes into the same output folder (a folder is in use
while its owner holds a lock on it).

A rerun rewrites only what changed: a final file already holding the bytes a sink would
write is left untouched (mtime included), so tools watching the outputs see no change.

>>> AnatCLDerivativesDataSink(desc="anatclGlobalFold0", suffix="embedding").inputs.desc
'anatclGlobalFold0'
"""

import contextlib
import fcntl
import filecmp
import json
import os
import shutil
import tempfile
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

import anatcl_nipype
from anatcl_nipype.bids import weights_desc
from anatcl_nipype.citations import reference, short_reference
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import write_json_atomic

#: The kinds of file this package writes, as BIDS suffixes.
SUFFIXES = ("embedding", "regions", "features", "predictions", "metrics", "statmap")
#: The file extensions the sink writes (the input file's own extension is kept).
EXTENSIONS = (".npy", ".json", ".tsv", ".nii.gz", ".nii")
#: Hidden folder, inside the output folder, where sinks write before renaming into place.
STAGING_DIR = ".anatcl-staging"
#: pybids' path pattern for the files this sink writes (BIDS derivatives naming).
FILE_PATTERN = (
    "sub-{subject}[/ses-{session}]/{datatype<anat>|anat}/sub-{subject}[_ses-{session}]"
    "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_run-{run}]"
    f"[_space-{{space}}][_desc-{{desc}}]_{{suffix<{'|'.join(SUFFIXES)}>}}"
    f"{{extension<{'|'.join(EXTENSIONS)}>}}"
)


class _DerivativesSinkInputSpec(BaseInterfaceInputSpec):
    base_directory = Directory(desc="the derivatives folder (default: the working folder)")
    in_file = InputMultiObject(File(exists=True), mandatory=True, desc="the file(s) to write")
    source_file = traits.Str(mandatory=True, desc="the BIDS raw file the result comes from "
                                                  "(its subject, session... name the output)")
    desc = traits.Str(desc="the desc- entity")
    space = traits.Str(desc="the space- entity")
    suffix = traits.Enum(*SUFFIXES, mandatory=True, desc="the kind of file")
    compress = traits.Either(None, traits.Bool, default=None, usedefault=True,
                             desc="gzip (True), gunzip (False) or copy as is (None)")
    meta_dict = traits.Dict(traits.Str, desc="metadata for a JSON sidecar beside the file")
    weights_sidecar = File(exists=True, desc="an embedding's JSON sidecar: when its weights "
                                             "record says \"random\": true, desc is "
                                             "anatclRandom (files from seeded random weights "
                                             "say so in their names)")


class _DerivativesSinkOutputSpec(TraitedSpec):
    out_file = OutputMultiObject(File(exists=True), desc="the file(s) written")
    out_meta = File(exists=True, desc="the JSON sidecar written (with meta_dict)")


class AnatCLDerivativesDataSink(SimpleInterface):
    """Write ``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>]..._desc-<desc>_<suffix>``.

    Files are named the way niworkflows' ``DerivativesDataSink`` names them (entities of
    ``source_file``, then ``desc``/``space``/``suffix``, the input's extension) with
    pybids' ``build_path``, and written into ``base_directory`` atomically: each file
    appears under its final name complete, or not at all (see the module docstring).
    ``meta_dict`` is written as a JSON sidecar. With ``weights_sidecar`` (an embedding's
    sidecar) whose weights record says ``"random": true``, ``desc`` becomes
    ``anatclRandom``: known only once the encoder loaded the checkpoint, so decided here,
    at run time. A file whose final path already holds the
    same bytes is not copied again and keeps its mtime; the sink still runs every time
    (``_always_run``) to check its destinations. A write that fails (disk full, unwritable
    folder) raises :class:`AnatCLError`.

    niworkflows' sink is not subclassed: importing ``niworkflows.interfaces.bids`` indexes
    the TemplateFlow cache with pybids (``STANDARD_SPACES = tf.api.templates()``, 8-18 s),
    which every command line and every MultiProc worker running a sink would pay, for
    templates this package never uses.
    """

    input_spec = _DerivativesSinkInputSpec
    output_spec = _DerivativesSinkOutputSpec
    _always_run = True

    def _run_interface(self, runtime):
        base = Path(self.inputs.base_directory if isdefined(self.inputs.base_directory)
                    else runtime.cwd).absolute()
        names = self._final_names()
        try:
            with staging_folder(base) as staging:
                staged = [stage_if_changed(source, name, staging, base, self.inputs.compress)
                          for source, name in zip(self.inputs.in_file, names)]
                if isdefined(self.inputs.meta_dict) and len(names) == 1:
                    sidecar = staging / f"{names[0].split('.', 1)[0]}.json"
                    staged_meta = write_json_atomic(sidecar, self.inputs.meta_dict)
                    self._results["out_meta"] = publish(staged_meta, staging, base)
                self._results["out_file"] = [
                    str(base / name) if path is None else publish(path, staging, base)
                    for path, name in zip(staged, names)]
        except OSError as error:
            detail = f"{error.strerror}: {error.filename}" if error.filename else error
            raise AnatCLError(
                f"{base}: cannot write BIDS derivatives ({detail}); free disk space or "
                "choose a writable output folder, then re-run"
            ) from error
        return runtime

    def _final_names(self):
        """The relative output path of each input file, built by pybids."""
        from bids.layout import parse_file_entities
        from bids.layout.writing import build_path

        entities = parse_file_entities(self.inputs.source_file, config=["bids", "derivatives"])
        entities.pop("extension", None)
        for key in ("desc", "space", "suffix"):
            if isdefined(getattr(self.inputs, key)):
                entities[key] = getattr(self.inputs, key)
        if isdefined(self.inputs.weights_sidecar) and _random_weights(self.inputs.weights_sidecar):
            entities["desc"] = weights_desc(random=True)
        names = []
        for in_file in self.inputs.in_file:
            extension = output_extension(in_file, self.inputs.compress)
            name = build_path({**entities, "extension": extension}, path_patterns=[FILE_PATTERN])
            if not name:
                raise AnatCLError(
                    f"{in_file}: cannot name it as a BIDS derivative (entities {entities}, "
                    f"extension {extension}); this sink writes suffixes {', '.join(SUFFIXES)} "
                    f"with extensions {', '.join(EXTENSIONS)}")
            names.append(name)
        return names


def _random_weights(sidecar):
    """Whether an embedding's sidecar records seeded random weights."""
    from anatcl_nipype.files import (
        MAX_SIDECAR_BYTES,
        MAX_SIDECAR_DEPTH,
        JSONFileError,
        read_json_bounded,
    )

    try:
        content = read_json_bounded(sidecar, max_bytes=MAX_SIDECAR_BYTES,
                                    max_depth=MAX_SIDECAR_DEPTH, what="JSON sidecar")
    except JSONFileError as error:
        raise AnatCLError(f"{error}; the encoder writes it beside each embedding") from None
    weights = content.get("weights") if isinstance(content, dict) else None
    return isinstance(weights, dict) and weights.get("random") is True


def output_extension(in_file, compress=None):
    """The extension ``in_file`` is written with: its own, gzipped or gunzipped on request.

    >>> output_extension("/w/map.nii", True), output_extension("/w/x.npy")
    ('.nii.gz', '.npy')
    """
    extension = "".join(Path(in_file).suffixes)
    if compress is None:
        return extension
    extension = extension.removesuffix(".gz")
    return extension + ".gz" if compress else extension


def holds_same_bytes(path, other):
    """Whether the file ``other`` exists and holds the same bytes as ``path``: sizes are
    compared first, then contents in chunks (a large map is never read whole).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name, text in (("a", "map"), ("b", "map"), ("c", "mop")):
    ...     _ = (folder / name).write_text(text)
    >>> [holds_same_bytes(folder / "a", folder / name) for name in ("b", "c", "absent")]
    [True, False, False]
    """
    if not Path(other).is_file():
        return False
    # filecmp caches outcomes by size and mtime, which a rewrite within one mtime tick of
    # the file system keeps: compare afresh every time.
    filecmp.clear_cache()
    return filecmp.cmp(path, other, shallow=False)


def converts(source, destination):
    """Whether writing ``source`` as ``destination`` gzips or gunzips it.

    >>> converts("/w/map.nii", "out/map.nii.gz"), converts("/w/x.npy", "out/x.npy")
    (True, False)
    """
    return str(source).endswith(".gz") != str(destination).endswith(".gz")


def stage_if_changed(source, name, staging, base, compress=None):
    """Copy ``source`` to ``staging/name`` (see :func:`copy_file`) and return that path, or
    return None without copying when ``base/name`` already holds the bytes it would get.

    A gzipped or gunzipped copy is staged always: its bytes are known once written
    (:func:`publish` then leaves an identical final file untouched)."""
    if not converts(source, name) and holds_same_bytes(source, Path(base) / name):
        return None
    return copy_file(source, Path(staging) / name, compress)


def copy_file(source, destination, compress=None):
    """Copy ``source`` to ``destination`` (folders made), gzipping or gunzipping on request;
    return ``destination``."""
    import gzip

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not converts(source, destination):
        shutil.copyfile(source, destination)
        return destination
    destination_gz = destination.name.endswith(".gz")
    with (open if destination_gz else gzip.open)(source, "rb") as reader, \
            open(destination, "wb") as writer:
        if destination_gz:  # no file name or time in the gzip header: same bytes every run
            with gzip.GzipFile("", "wb", 9, writer, mtime=0) as packed:
                shutil.copyfileobj(reader, packed)
        else:
            shutil.copyfileobj(reader, writer)
    return destination


def publish(staged, staging, base):
    """Rename a staged file into its final place under ``base``, unless that already holds
    the same bytes (then left untouched, the staged copy dropped); return the final path."""
    final = Path(base) / Path(staged).relative_to(staging)
    if holds_same_bytes(staged, final):
        return str(final)  # the staging folder, and the copy in it, is removed on exit
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    return str(final)


@contextlib.contextmanager
def staging_folder(base):
    """Yield a new, locked folder under ``base/.anatcl-staging``; remove it afterwards.

    Stale folders of killed sinks (nobody holds their lock) are removed first.

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> with staging_folder(base) as folder:
    ...     folder.parent.name
    '.anatcl-staging'
    >>> list(base.iterdir())
    []
    """
    root = Path(base) / STAGING_DIR
    remove_stale_staging(root)
    folder, lock = _new_locked_folder(root)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)
        with contextlib.suppress(OSError):  # still in use by another sink: keep it
            root.rmdir()


def remove_stale_staging(root):
    """Remove the staging folders under ``root`` that no living sink holds a lock on."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        try:
            lock = os.open(folder, os.O_RDONLY)
        except OSError:  # removed meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(folder, ignore_errors=True)
        except BlockingIOError:
            pass  # a running sink owns it
        finally:
            os.close(lock)


def _new_locked_folder(root, attempts=100):
    """Create and lock a staging folder; retry when another sink swept it (or its root)
    away between its creation and the lock."""
    for _ in range(attempts):
        root.mkdir(parents=True, exist_ok=True)
        try:
            folder = Path(tempfile.mkdtemp(prefix="sink-", dir=root))
            lock = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:
            continue
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(lock), os.stat(folder)):
                return folder, lock
        except FileNotFoundError:
            pass
        os.close(lock)
    raise AnatCLError(f"{root}: could not create a staging folder after {attempts} attempts")


def dataset_description():
    """The ``dataset_description.json`` content of an anatcl-nipype derivatives folder."""
    return {
        "Name": "AnatCL embeddings and region-wise measures",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "anatcl-nipype",
            "Version": anatcl_nipype.__version__,
            "Description": f"AnatCL ({short_reference('barbano2026anatcl')}) as Nipype "
                           "interfaces, run on CAT12 grey-matter maps",
        }],
        "HowToAcknowledge": f"Cite {reference('barbano2026anatcl')}",
    }


class _DatasetDescriptionInputSpec(BaseInterfaceInputSpec):
    base_directory = Directory(mandatory=True, desc="the derivatives folder")
    trigger = traits.Any(desc="connect an output here to write after it")


class _DatasetDescriptionOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="dataset_description.json")


class DatasetDescription(SimpleInterface):
    """Write ``dataset_description.json`` (with ``GeneratedBy``) into a derivatives folder.

    Leaves an existing description from the same package alone; refuses to overwrite one
    that another tool wrote, so two pipelines never mix their outputs silently.
    """

    input_spec = _DatasetDescriptionInputSpec
    output_spec = _DatasetDescriptionOutputSpec

    def _run_interface(self, runtime):
        folder = Path(self.inputs.base_directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "dataset_description.json"
        if path.exists():
            existing = json.loads(path.read_text())
            names = {entry.get("Name") for entry in existing.get("GeneratedBy", [])}
            if "anatcl-nipype" not in names:
                raise AnatCLError(f"{path}: written by {sorted(names) or 'another tool'}; "
                                  "choose an empty output folder for anatcl-nipype")
        else:
            write_json_atomic(path, dataset_description())
        self._results["out_file"] = str(path)
        return runtime


class _GroupDerivativesSinkInputSpec(BaseInterfaceInputSpec):
    base_directory = Directory(mandatory=True, desc="the derivatives folder")
    folder = traits.Str(mandatory=True, desc="folder under base_directory, e.g. "
                                             "group/target-age")
    in_file = traits.Either(File(exists=True), traits.List(File(exists=True)), mandatory=True,
                            desc="file(s) to write")
    out_name = traits.Str(mandatory=True, desc="name to write under (each file keeps its "
                                               "suffix when it is a list: cv -> cv.svg, cv.png)")
    trigger = traits.Any(desc="connect an output here to write only after it exists (a "
                              "group feature table only once the probe was fitted)")


class _GroupDerivativesSinkOutputSpec(TraitedSpec):
    out_file = traits.List(File(exists=True), desc="the files written")


class GroupDerivativesSink(SimpleInterface):
    """Write a group-level result into ``<base_directory>/<folder>/<out_name>``, atomically.

    Group results have no subject to be named after, so this sink takes the name as
    given; like :class:`AnatCLDerivativesDataSink`, each file appears complete under its
    final name, or not at all, and a final file already holding the same bytes is left
    untouched. A list of files (a figure as SVG and PNG) is written as
    ``<out_name><suffix>`` each.

    >>> sink = GroupDerivativesSink(folder="group/target-age", out_name="probe.skops")
    >>> sink.inputs.out_name
    'probe.skops'
    """

    input_spec = _GroupDerivativesSinkInputSpec
    output_spec = _GroupDerivativesSinkOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.files import atomic_write

        folder = Path(self.inputs.base_directory).absolute() / self.inputs.folder
        files = self.inputs.in_file
        many = isinstance(files, list)
        written = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for source in map(Path, files if many else [files]):
                final = folder / (self.inputs.out_name + (source.suffix if many else ""))
                if not holds_same_bytes(source, final):
                    with atomic_write(final) as tmp:
                        shutil.copyfile(source, tmp)
                written.append(str(final))
        except OSError as error:
            raise AnatCLError(f"{folder}: cannot write group results ({error.strerror}); free "
                              "disk space or choose a writable output folder, then re-run"
                              ) from error
        self._results["out_file"] = written
        return runtime
