"""Faults: a failing subject among ten, a killed run, a full disk, two runs at once.

Whatever happens, a file under a final name in the derivatives folder is complete, the
participants that can be written are written, and a re-run with the same work folder
finishes the job without redoing what was done.
"""

import csv
import errno
import fcntl
import gzip
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from nipype import Node

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder.embedding_files import read_embeddings_tsv, save_embedding
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import write_json_atomic
from anatcl_nipype.interfaces import bids as sink_module
from anatcl_nipype.interfaces.bids import STAGING_DIR, AnatCLDerivativesDataSink
from anatcl_nipype.interfaces.encoder import AnatCLEncodeBatch
from anatcl_nipype.reports.collect import decode_traceback

BAD = "sub-07"
#: What the truncated map of BAD gives (its path first).
TRUNCATED = ("cannot read it as NIfTI (EOFError: Compressed file ended before the end-of-stream "
             "marker was reached); check the file is a complete .nii/.nii.gz")
NO_SPACE = "No space left on device"


def command(cat12_dir, output, work, weights, *extra):
    """The participant-level command line."""
    return [sys.executable, "-m", "anatcl_nipype", str(cat12_dir), str(output), "participant",
            "--weights", str(weights), "-w", str(work), *map(str, extra)]


def run(args):
    """Run a command line; return (exit code, stdout, stderr)."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def final_files(folder):
    """Every file under ``folder`` outside hidden (staging) folders, relative, sorted."""
    return sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*")
                  if path.is_file() and not any(part.startswith(".")
                                                for part in path.relative_to(folder).parts))


def all_files(folder):
    """Every file under ``folder``, hidden ones included, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def encode_results(work):
    """``{participant: result_anatcl_encode.pklz}`` of a participant-level work folder."""
    return {f"sub-{path.parts[-4].split('_')[2]}": path
            for path in Path(work).rglob("result_anatcl_encode.pklz")}


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    """Ten CAT12 participants; CAT12 died while writing sub-07: its map is a truncated
    .nii.gz and it has no label/ or report/ files."""
    cohort = make_cat12_cohort(tmp_path_factory.mktemp("ten"), n_subjects=10, seed=5)
    gm = cohort.gm_map(BAD)
    truncated = gm.with_name(gm.name + ".gz")
    compressed = gzip.compress(gm.read_bytes())
    truncated.write_bytes(compressed[:len(compressed) // 2])
    gm.unlink()
    for folder in ("label", "report"):
        shutil.rmtree(cohort.anat_dir(BAD) / folder)
    return cohort, truncated


@pytest.fixture(scope="module")
def reference(ten, random_weights, tmp_path_factory):
    """An uninterrupted run of the command over the ten: (exit code, stdout, stderr, output)."""
    base = tmp_path_factory.mktemp("reference")
    code, out, err = run(command(ten[0].root, base / "out", base / "work", random_weights,
                                 "--nprocs", "2"))
    return code, out, err, base / "out"


# --------------------------------------------------------------------------- one bad subject


@pytest.mark.slow
def test_one_failing_subject_of_ten_through_the_command(ten, reference):
    cohort, truncated = ten
    code, out, err, output = reference
    reason = f"{truncated}: {TRUNCATED}"
    assert code == 3, err
    assert "Done: 9 of 10 participant(s)" in out and "Failed: 1\n" in out
    assert f"  {BAD}: {reason}\n" in out
    failed = (output / "anatcl" / "failed.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in failed]
    assert rows[0] == ["participant_id", "path", "reason", "traceback"]
    assert rows[1][:3] == [BAD, str(truncated), reason] and len(rows) == 2
    assert decode_traceback(rows[1][3]).splitlines()[-1].endswith(reason)
    report = (output / "anatcl" / "report.html").read_text()
    failure = f'<p class="flag">Failed: {html.escape(reason)}</p>'
    assert report.count(failure) == 1 and report.index(f'id="{BAD}"') < report.index(failure)
    good = [s for s in cohort.subjects if s != BAD]
    assert sorted(p.name for p in output.glob("sub-*")) == good
    for subject in good:
        assert len(list((output / subject / "anat").iterdir())) == 4
        assert np.load(output / subject / "anat" /
                       f"{subject}_desc-anatclRandom_embedding.npy").shape == (512,)


@pytest.mark.slow
def test_one_failing_subject_of_ten_in_a_batch_node(ten, reference, random_weights, tmp_path):
    cohort, truncated = ten
    maps = [str(truncated) if s == BAD else str(cohort.gm_map(s)) for s in cohort.subjects]
    node = Node(AnatCLEncodeBatch(weights=str(random_weights), in_files=maps, batch_size=4,
                                  on_error="skip"), name="batch", base_dir=str(tmp_path))
    outputs = node.run().outputs
    good = [s for s in cohort.subjects if s != BAD]
    ids, table = read_embeddings_tsv(outputs.out_tsv)
    assert ids == outputs.participant_ids == good and len(outputs.out_files) == 9
    written = reference[3]
    expected = np.stack([np.load(written / s / "anat" / f"{s}_desc-anatclRandom_embedding.npy")
                         for s in good])
    np.testing.assert_allclose(table, expected, atol=1e-5)  # batched == one at a time
    assert open(outputs.failed_tsv).read().splitlines() == [
        "participant_id\tpath\treason\ttraceback",
        f"{BAD}\t{truncated}\t{truncated}: {TRUNCATED}\t"]


# --------------------------------------------------------------------------- a killed run


#: Files that record their own run (times, durations, command): never equal across runs.
RUN_SPECIFIC = {"anatcl/report.html", "anatcl/run-participant.json"}


def wait_for_embeddings(output, count, process, reference_output, timeout=300):
    """Poll until ``count`` embeddings are written; at every look, each file under a final
    name must already be byte-identical to the uninterrupted run's (never half-written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            names = final_files(output) if output.is_dir() else []
        except FileNotFoundError:  # a staging folder removed while it was being listed
            continue
        for name in names:
            if name in RUN_SPECIFIC:
                continue
            try:
                content = (output / name).read_bytes()
            except FileNotFoundError:  # replaced between listing and reading
                continue
            assert content == (reference_output / name).read_bytes(), name
        if len(list(output.glob("sub-*/anat/*_embedding.npy"))) >= count:
            return
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} embeddings in {output} after {timeout} s")


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_and_matches_an_uninterrupted_run(
        ten, reference, random_weights, tmp_path):
    cohort, _ = ten
    output, work = tmp_path / "out", tmp_path / "work"
    args = command(cohort.root, output, work, random_weights, "--nprocs", "2")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_embeddings(output, 3, process, reference[3])
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the scheduler and its workers
        process.wait()
    finished = sorted(p.name.split("_")[0] for p in output.glob("sub-*/anat/*_embedding.npy"))
    stamps = {s: encode_results(work)[s].stat().st_mtime_ns for s in finished}
    assert len(final_files(output)) < len(final_files(reference[3]))  # killed before the end

    code, out, err = run(args)
    assert code == 3, err
    assert {s: encode_results(work)[s].stat().st_mtime_ns for s in finished} == stamps
    assert set(encode_results(work)) == set(cohort.subjects)  # the rest was done this time
    assert all_files(output) == all_files(reference[3])  # nothing missing, nothing left over
    for name in set(all_files(output)) - RUN_SPECIFIC:
        assert (output / name).read_bytes() == (reference[3] / name).read_bytes(), name


# --------------------------------------------------------------------------- atomic sink


def _sink(base, in_file, sink_class=AnatCLDerivativesDataSink):
    """Run a derivatives sink for sub-01's embedding; return the interface's outputs."""
    interface = sink_class(base_directory=str(base), in_file=str(in_file), desc="test",
                           suffix="embedding", compress=None,
                           source_file="sub-01/anat/sub-01_T1w.nii")
    return interface.run().outputs


def _vector_file(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.full(512, value, dtype=np.float32))
    return path


def _full_disk_after(size):
    """A copy function that writes ``size`` bytes of the file, then finds the disk full."""
    def copy(src, dst, compress=None):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as source, open(dst, "wb") as target:
            target.write(source.read(size))
        raise OSError(errno.ENOSPC, NO_SPACE, str(dst))
    return copy


FINAL = "sub-01/anat/sub-01_desc-test_embedding.npy"


def test_sink_moves_complete_files_into_place_and_leaves_no_staging(tmp_path):
    source = _vector_file(tmp_path / "node" / "vector.npy", 1.0)
    outputs = _sink(tmp_path / "out", source)
    assert outputs.out_file == str(tmp_path / "out" / FINAL)
    assert (tmp_path / "out" / FINAL).read_bytes() == source.read_bytes()
    assert all_files(tmp_path / "out") == [FINAL]  # no staging folder, no .tmp file


def test_crash_during_copy_leaves_the_final_path_absent_or_as_it_was(tmp_path, monkeypatch):
    base = tmp_path / "out"
    first = _vector_file(tmp_path / "node1" / "vector.npy", 1.0)
    second = _vector_file(tmp_path / "node2" / "vector.npy", 2.0)
    monkeypatch.setattr(sink_module, "copy_file", _full_disk_after(100))
    with pytest.raises(AnatCLError) as error:  # nothing there yet: stays absent
        _sink(base, first)
    assert str(error.value).startswith(
        f"{base}: cannot write BIDS derivatives ({NO_SPACE}: {base / STAGING_DIR}/sink-")
    assert str(error.value).endswith("/sub-01/anat/sub-01_desc-test_embedding.npy); free disk "
                                     "space or choose a writable output folder, then re-run")
    assert all_files(base) == []
    monkeypatch.undo()
    _sink(base, first)
    monkeypatch.setattr(sink_module, "copy_file", _full_disk_after(100))
    with pytest.raises(AnatCLError):  # a complete file there: stays as it was
        _sink(base, second)
    assert (base / FINAL).read_bytes() == first.read_bytes()
    assert all_files(base) == [FINAL]


def test_staging_left_by_a_killed_sink_is_removed_and_a_live_one_kept(tmp_path):
    base = tmp_path / "out"
    dead = base / STAGING_DIR / "sink-dead"
    _vector_file(dead / "sub-02" / "anat" / "half.npy", 0.0)
    live = base / STAGING_DIR / "sink-live"
    live.mkdir()
    lock = os.open(live, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # a sink of another run, still writing
    try:
        _sink(base, _vector_file(tmp_path / "node" / "vector.npy", 1.0))
        assert sorted(p.name for p in (base / STAGING_DIR).iterdir()) == ["sink-live"]
    finally:
        os.close(lock)
    _sink(base, tmp_path / "node" / "vector.npy")
    assert all_files(base) == [FINAL] and not (base / STAGING_DIR).exists()


def test_output_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("x")
    base = tmp_path / "a_file" / "out"
    with pytest.raises(AnatCLError) as error:
        _sink(base, _vector_file(tmp_path / "node" / "vector.npy", 1.0))
    assert str(error.value) == (f"{base}: cannot write BIDS derivatives (Not a directory: "
                                f"{base / STAGING_DIR}); free disk space or choose a writable "
                                "output folder, then re-run")


# --------------------------------------------------------------------------- a full disk


def test_full_disk_in_atomic_writes_keeps_what_was_there(tmp_path, monkeypatch):
    """Disk full (simulated by failing writes, see FULL_DISK_COMMAND): the old file
    stays, no temporary file is left."""
    sidecar = write_json_atomic(tmp_path / "x.json", {"version": 1})
    vector = save_embedding(tmp_path / "x.npy", np.ones(512, dtype=np.float32))
    before = {path.name: path.read_bytes() for path in (sidecar, vector)}

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(Path, "write_text", no_space)
    monkeypatch.setattr(np, "save", no_space)
    for write in (lambda: write_json_atomic(sidecar, {"version": 2}),
                  lambda: save_embedding(vector, np.zeros(512, dtype=np.float32))):
        with pytest.raises(OSError, match=NO_SPACE):
            write()
    assert {path.name: path.read_bytes() for path in (sidecar, vector)} == before
    assert sorted(os.listdir(tmp_path)) == ["x.json", "x.npy"]


# A full disk is simulated by monkeypatching the sink's copy function, not by a tiny tmpfs:
# mounting one needs root (CAP_SYS_ADMIN), which test machines may not grant, and these
# tests must run everywhere without skips.
FULL_DISK_COMMAND = """\
import errno, sys
from pathlib import Path
from anatcl_nipype.interfaces import bids

def full_disk(src, dst, compress=None):
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as source, open(dst, "wb") as target:
        target.write(source.read(64))
    raise OSError(errno.ENOSPC, "No space left on device", str(dst))

bids.copy_file = full_disk  # every copy into the derivatives folder finds the disk full
from anatcl_nipype.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_full_disk_during_a_run_fails_the_participants_and_writes_nothing_partial(
        ten, random_weights, tmp_path):
    cohort, _ = ten
    output = tmp_path / "out"
    args = command(cohort.root, output, tmp_path / "work", random_weights,
                   "--participant-label", "01", "02")
    code, out, err = run([sys.executable, "-c", FULL_DISK_COMMAND, *args[3:]])
    assert code == 3, err
    assert "Done: 0 of 2 participant(s)" in out
    rows = list(csv.reader((output / "anatcl" / "failed.tsv").open(), delimiter="\t"))
    assert [row[0] for row in rows] == ["participant_id", "sub-01", "sub-02"]
    for row in rows[1:]:
        assert row[2].startswith(f"{output}: cannot write BIDS derivatives ({NO_SPACE}: "
                                 f"{output / STAGING_DIR}/sink-")
        assert row[2].endswith("free disk space or choose a writable output folder, then re-run")
    assert final_files(output) == ["anatcl/failed.tsv", "anatcl/methods.md", "anatcl/report.html",
                                   "anatcl/run-participant.json"]
    assert all_files(output) == final_files(output)  # no staging folder left


# --------------------------------------------------------------------------- two runs at once


def check_complete(path):
    """Open ``path`` as what its name says; fail if it is partial or interleaved."""
    if path.suffix == ".npy":
        assert np.load(path).shape == (512,), path
    elif path.suffix == ".json":
        assert isinstance(json.loads(path.read_text()), dict), path
    elif path.suffix == ".tsv":
        rows = list(csv.reader(path.open(newline=""), delimiter="\t"))
        assert rows and len({len(row) for row in rows}) == 1, path
    elif path.suffix == ".html":
        assert path.read_text().rstrip().endswith("</html>"), path


@pytest.mark.slow
def test_two_runs_writing_one_derivatives_folder(ten, reference, random_weights, tmp_path):
    cohort, _ = ten
    output = tmp_path / "out"
    labels = {"a": ["01", "02", "03", "04", "05", "06"], "b": ["04", "05", "06", "07", "08"]}
    processes = {name: subprocess.Popen(
        command(cohort.root, output, tmp_path / f"work-{name}", random_weights,
                "--participant-label", *chosen),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, chosen in labels.items()}
    codes = {name: process.wait(timeout=600) for name, process in processes.items()}
    assert codes == {"a": 0, "b": 3}, {n: p.stderr.read() for n, p in processes.items()}
    subjects = sorted({f"sub-{label}" for chosen in labels.values() for label in chosen} - {BAD})
    written = [name for name in all_files(output) if name.startswith("sub-")]
    assert written == [name for name in all_files(reference[3])
                       if name.split("/")[0] in subjects]
    for name in written:  # complete, and the same bytes as a run on its own
        assert (output / name).read_bytes() == (reference[3] / name).read_bytes(), name
    for name in all_files(output):
        check_complete(output / name)
    description = json.loads((output / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "anatcl-nipype"
    assert not (output / STAGING_DIR).exists()
