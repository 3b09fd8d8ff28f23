"""One bad input, every entry point: the encoder, the Nipype nodes and the command.

Each bad input a real study produces (a truncated or empty file, a folder named like a
map, a 4D, off-grid, NaN, empty or label image, a native-space p1 map, a symlink loop,
hostile XML, a participants.tsv with repeated or missing ids, a checkpoint that asks to
run code, a probe trained on other features) must give an :class:`AnatCLError` naming the
file, or the command's exit code 3 (a participant's input) or 1 (a global input), and must
harm nothing else: the other participants are written, the bad one gets no file under a
final name. Paths with spaces and non-ASCII letters must simply work.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import brain_like_volume, write_map
from nipype import Node
from nipype.pipeline.engine.nodes import NodeExecutionError

from anatcl_nipype.data import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE, load_cat12_volume
from anatcl_nipype.errors import AnatCLError, CheckpointError, PredictionError, VolumeError
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.encoder import AnatCLEncode, AnatCLEncodeBatch
from anatcl_nipype.interfaces.regional import CAT12ROIMeasures
from anatcl_nipype.prediction import cross_validate_probe, load_labels, save_probe
from anatcl_nipype.prediction.probes import make_probe
from anatcl_nipype.reports.collect import decode_traceback

# --------------------------------------------------------------------------- bad inputs

OFF_GRID = ("not on the CAT12 1.5 mm MNI grid (shape {shape}, voxel size {zooms} mm; expected "
            "shape (121, 145, 121) with affine diag(-1.5, 1.5, 1.5) and origin (90, -126, -72))."
            " Pass CAT12's mwp1 map; a native-space p1 map is not AnatCL input. For an MNI-space"
            " map on another grid, resample it explicitly: --resample on the command line,"
            " resample=True in Python.")
NOT_NIFTI = "cannot read it as NIfTI ({}); check the file is a complete .nii/.nii.gz"


def _truncated_gz(path):
    path = write_map(path.with_name(path.name + ".gz"))
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    return path, NOT_NIFTI.format("EOFError: Compressed file ended before the "
                                  "end-of-stream marker was reached")


def _zero_bytes(path):
    path.write_bytes(b"")
    return path, NOT_NIFTI.format(f"ImageFileError: Empty file: '{path}'")


def _directory(path):
    path.mkdir()
    return path, "is a directory, not a NIfTI file"


def _four_d(path):
    write_map(path, np.stack([brain_like_volume(1)] * 2, axis=-1))
    return path, ("a 4D image of shape (121, 145, 121, 2); AnatCL needs one 3D grey-matter "
                  "map (mwp1)")


def _shifted_affine(path):
    affine = CAT12_AFFINE.copy()
    affine[0, 3] += 10.0
    write_map(path, affine=affine)
    return path, OFF_GRID.format(shape=CAT12_SHAPE, zooms=(1.5, 1.5, 1.5))


def _nan_and_inf(path):
    volume = brain_like_volume(2)
    volume[60, 60, 60], volume[61, 60, 60] = np.nan, np.inf
    write_map(path, volume)
    return path, "2 voxels are NaN or infinite; re-run CAT12 or fix the map"


def _all_zero(path):
    write_map(path, np.zeros(CAT12_SHAPE))
    return path, "the map is empty (all voxels are 0)"


def _label_image(path):
    labels = np.zeros(CAT12_SHAPE, dtype=np.float32)
    labels[30:90, 30:115, 30:90] = (np.arange(60) // 6 + 1)[:, None, None]  # regions 1..10
    write_map(path, labels, dtype=np.int16)
    return path, ("every voxel is a whole number, up to 10: this looks like a label/atlas "
                  "image, not a CAT12 grey-matter map (mwp1, values about 0 to 1)")


def _native_p1(path):
    native = np.array([[1.0, 0, 0, -60], [0, 1.0, 0, -90], [0, 0, 1.0, -70], [0, 0, 0, 1]])
    write_map(path, brain_like_volume(3, shape=(120, 150, 130)), affine=native)
    return path, OFF_GRID.format(shape=(120, 150, 130), zooms=(1.0, 1.0, 1.0))


def _symlink_loop(path):
    path.symlink_to(path.name)
    return path, (f"a broken symbolic link or a link loop (it points to {path.name}); "
                  "link it to the real map")


BAD_MAPS = {
    "truncated .nii.gz": _truncated_gz, "zero-byte file": _zero_bytes,
    "directory named like a map": _directory, "4D image": _four_d,
    "wrong affine": _shifted_affine, "NaN and inf voxels": _nan_and_inf,
    "all-zero map": _all_zero, "label image": _label_image,
    "native-space p1 map": _native_p1, "symlink loop": _symlink_loop,
}
#: Each bad map's participant in the command's input folder: sub-11, sub-12, ...
BAD_PARTICIPANTS = {case: f"sub-{11 + index}" for index, case in enumerate(BAD_MAPS)}


def make_bad_map(case, folder, participant):
    """Write the bad map ``case`` as ``folder/mwp1<participant>_T1w.nii`` (.gz for the
    truncated one); return its path and the exact message it must give."""
    folder.mkdir(parents=True, exist_ok=True)
    path, problem = BAD_MAPS[case](folder / f"mwp1{participant}_T1w.nii")
    return path, f"{path}: {problem}"


def hostile_xml(kind):
    """An XML file with an external entity or a billion-laughs entity bomb."""
    if kind == "external entity":
        return ('<?xml version="1.0"?>\n<!DOCTYPE S [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                "<S><synthetic><data><Vgm>[1.5]</Vgm></data><ids>[1]</ids>"
                "<names><item>&x;</item></names></synthetic></S>\n")
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return ('<?xml version="1.0"?>\n<!DOCTYPE S [' + "".join(entities) + "]>\n"
            "<S><subjectmeasures><vol_TIV>&lol9;</vol_TIV></subjectmeasures></S>\n")


def xml_refusal(path):
    return (f"{path}: refused to parse: the XML declares a DTD or entities (DTDForbidden), "
            "which CAT12 never writes; use the file CAT12 wrote")


class _Payload:
    """Pickles as a call that creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_evil_checkpoint(path, marker, legacy=False):
    """A checkpoint with real weights and a payload; torch's zip or legacy format."""
    from anatcl_nipype.encoder.checkpoint import make_random_network

    torch.save({"model": make_random_network(0).state_dict(), "opts": _Payload(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


def refused_checkpoint(path):
    return (f"{path}: refused to load: the file asks to run code or build objects that are not "
            "allowed in a weights file (GLOBAL io.open). Nothing from it was executed. Use the "
            "official weights (anatcl-nipype weights fetch) or a file you saved yourself.")


def anatcl_nipype(*args):
    """Run the command in a fresh process; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def last_line(error):
    """The last line of a Nipype node's traceback: ``<exception class>: <message>``."""
    return str(error).strip().splitlines()[-1].strip()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cat12_cohort(tmp_path_factory.mktemp("cohort"), n_subjects=4, seed=3)


@pytest.fixture(scope="module")
def reference_embeddings(cohort, random_weights):
    """The cohort's embeddings, by participant, from the bare encoder on plain paths."""
    vectors = AnatCLEncoder(weights=random_weights).encode(cohort.gm_maps)
    return dict(zip(cohort.subjects, vectors))


@pytest.fixture(scope="module")
def study(cohort, tmp_path_factory):
    """A CAT12 folder with a space and accents in its name: the cohort's four participants,
    one participant per bad map, and two with hostile XML beside a good map."""
    root = tmp_path_factory.mktemp("study") / "Sujet été"
    for subject in cohort.subjects:
        shutil.copytree(cohort.anat_dir(subject), root / subject)
    expected = {}
    for case, participant in BAD_PARTICIPANTS.items():
        expected[participant] = make_bad_map(case, root / participant / "mri", participant)
    for participant, source, kind, xml in (
            ("sub-31", "sub-01", "external entity", "label/catROI_sub-31_T1w.xml"),
            ("sub-32", "sub-02", "billion laughs", "report/cat_sub-32_T1w.xml")):
        gm = root / participant / "mri" / f"mwp1{participant}_T1w.nii"
        gm.parent.mkdir(parents=True)
        shutil.copyfile(cohort.gm_map(source), gm)
        (root / participant / xml).parent.mkdir(parents=True)
        (root / participant / xml).write_text(hostile_xml(kind))
        expected[participant] = (gm, xml_refusal(root / participant / xml))
    rows = cohort.participants_tsv.read_text().splitlines()
    mmse = {"sub-31": "28", "sub-32": "20"}
    rows += [f"{pid}\t60\tF\tsite1\tCN\t{score}" for pid, score in mmse.items()]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root, expected


@pytest.fixture(scope="module")
def participant_run(study, random_weights, tmp_path_factory):
    """The command's participant level over the whole study, in folders named with accents."""
    root, _ = study
    base = tmp_path_factory.mktemp("run")
    output, work = base / "sortie ü" / "derivatives", base / "travail ñ"
    code, out, err = anatcl_nipype(root, output, "participant", "--weights", random_weights,
                                   "--nprocs", "2", "-w", work)
    return code, out, err, output


# --------------------------------------------------------------------------- the encoder


@pytest.mark.parametrize("case", BAD_MAPS)
def test_load_cat12_volume_names_the_file_and_the_problem(case, tmp_path):
    path, message = make_bad_map(case, tmp_path / "Sujet été" / "mri", "sub-05")
    before = sorted(os.listdir(path.parent))
    with pytest.raises(VolumeError) as error:
        load_cat12_volume(path)
    assert str(error.value) == message
    assert sorted(os.listdir(path.parent)) == before  # nothing written beside it


@pytest.mark.slow
def test_encoder_streams_past_bad_maps_and_reads_unicode_paths(cohort, random_weights,
                                                                reference_embeddings, tmp_path):
    unicode_map = tmp_path / "Sujet été" / "sub-01" / "mri" / "mwp1sub-01_T1w.nii"
    unicode_map.parent.mkdir(parents=True)
    shutil.copyfile(cohort.gm_map("sub-01"), unicode_map)
    bad = {case: make_bad_map(case, tmp_path / "bad maps", f"sub-{20 + i}")
           for i, case in enumerate(BAD_MAPS)}
    inputs = [unicode_map, *(path for path, _ in bad.values()), cohort.gm_map("sub-02")]
    encoder = AnatCLEncoder(weights=random_weights, batch_size=2)
    results = list(encoder.iter_encode(inputs))
    assert [r.source for r in results] == inputs
    np.testing.assert_allclose(results[0].embedding, reference_embeddings["sub-01"], atol=1e-5)
    np.testing.assert_allclose(results[-1].embedding, reference_embeddings["sub-02"], atol=1e-5)
    assert [str(r.error) for r in results[1:-1]] == [message for _, message in bad.values()]
    assert all(isinstance(r.error, VolumeError) for r in results[1:-1])
    with pytest.raises(VolumeError) as error:  # encode() stops at the first bad map
        encoder.encode([unicode_map, bad["all-zero map"][0]])
    assert str(error.value) == bad["all-zero map"][1]


# --------------------------------------------------------------------------- Nipype nodes


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_MAPS)
def test_encode_node_fails_with_the_volume_error(case, random_weights, tmp_path):
    path, message = make_bad_map(case, tmp_path / "mri", "sub-05")
    node = Node(AnatCLEncode(weights=str(random_weights), in_file=str(path)),
                name="anatcl_encode", base_dir=str(tmp_path / "work ü"))
    with pytest.raises(NodeExecutionError) as error:
        node.run()
    assert last_line(error.value) == f"anatcl_nipype.errors.VolumeError: {message}"
    assert not list((tmp_path / "work ü").rglob("*_anatcl.*"))  # no embedding, no sidecar


@pytest.mark.slow
def test_batch_node_skips_every_bad_map_and_encodes_the_others(cohort, random_weights,
                                                               reference_embeddings, tmp_path):
    bad = {BAD_PARTICIPANTS[case]: make_bad_map(case, tmp_path / "maps", BAD_PARTICIPANTS[case])
           for case in BAD_MAPS}
    in_files = [str(cohort.gm_map("sub-01")), *(str(path) for path, _ in bad.values()),
                str(cohort.gm_map("sub-02"))]
    node = Node(AnatCLEncodeBatch(weights=str(random_weights), in_files=in_files, batch_size=2,
                                  on_error="skip"), name="batch", base_dir=str(tmp_path / "work"))
    outputs = node.run().outputs
    assert outputs.participant_ids == ["sub-01", "sub-02"]
    for participant, npy in zip(outputs.participant_ids, outputs.out_files):
        np.testing.assert_allclose(np.load(npy), reference_embeddings[participant], atol=1e-5)
    assert open(outputs.failed_tsv).read().splitlines() == [
        "participant_id\tpath\treason\ttraceback"] + [  # a skipped map has no traceback
        f"{participant}\t{path}\t{message}\t" for participant, (path, message) in bad.items()]
    sidecar = json.loads(open(outputs.out_json).read())
    assert [f["participant_id"] for f in sidecar["failed"]] == list(bad)
    assert sidecar["inputs"]["sub-20"] == str(bad["sub-20"][0])  # the loop, unresolved


@pytest.mark.parametrize("kind, field, xml", [
    ("external entity", "label_roi", "catROI_sub-01_T1w.xml"),
    ("billion laughs", "report", "cat_sub-01_T1w.xml"),
])
def test_roi_node_refuses_hostile_xml_without_expanding_it(kind, field, xml, tmp_path):
    path = tmp_path / xml
    path.write_text(hostile_xml(kind))
    node = Node(CAT12ROIMeasures(**{field: str(path)}), name="cat12_rois",
                base_dir=str(tmp_path / "work"))
    with pytest.raises(NodeExecutionError) as error:
        node.run()
    # DTDForbidden: refused at the declaration, before any entity is read or expanded
    assert last_line(error.value) == f"anatcl_nipype.errors.RegionalError: {xml_refusal(path)}"
    assert not list((tmp_path / "work").rglob("*.tsv"))


# --------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_participant_level_lists_every_bad_participant_and_writes_the_others(
        participant_run, study, cohort, reference_embeddings):
    code, out, err, output = participant_run
    _, expected = study
    assert code == 3, err
    # the map that gives no participant id is refused at discovery (named there, and in
    # failed.tsv): the run itself counts the 15 others
    assert "Done: 4 of 15 participant(s)" in out and f"Failed: {len(expected) - 1}\n" in out
    assert "Traceback" not in out + err
    for participant, (path, message) in expected.items():
        if not Path(path).is_dir():  # a folder named like a map is refused at discovery
            assert f"  {participant}: {message}\n" in out
    failed = (output / "anatcl" / "failed.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in failed]
    assert rows[0] == ["participant_id", "path", "reason", "traceback"]
    assert [row[:3] for row in rows[1:]] == [
        [participant, str(path), message]
        for participant, (path, message) in sorted(expected.items()) if not Path(path).is_dir()]
    tracebacks = [decode_traceback(row[3]).splitlines() for row in rows[1:] if row[3]]
    assert tracebacks  # failed nodes keep their traceback (maps refused at discovery have none)
    assert all(lines[-1].endswith(row[2]) for lines, row in zip(
        tracebacks, [row for row in rows[1:] if row[3]]))
    for participant in cohort.subjects:
        anat = output / participant / "anat"
        np.testing.assert_allclose(np.load(anat / f"{participant}_desc-anatclRandom_embedding.npy"),
                                   reference_embeddings[participant], atol=1e-5)
        sidecar = json.loads((anat / f"{participant}_desc-anatclRandom_embedding.json").read_text())
        assert sidecar["input"]["path"] == str(study[0] / participant / "mri" /
                                               f"mwp1{participant}_T1w.nii")
        assert (anat / f"{participant}_desc-cat12_regions.tsv").read_text().count("\n") == 2


@pytest.mark.slow
def test_participant_level_writes_nothing_under_final_names_for_bad_participants(
        participant_run, study, cohort):
    *_, output = participant_run
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*") if path.is_file())
    per_subject = ["desc-anatclRandom_embedding.json", "desc-anatclRandom_embedding.npy",
                   "desc-cat12_regions.json", "desc-cat12_regions.tsv"]
    embedding_only = per_subject[:2]  # hostile XML: the embedding is fine, the regions are not
    expected = ["anatcl/failed.tsv", "anatcl/methods.md", "anatcl/report.html",
                "anatcl/run-participant.json",
                "dataset_description.json"]
    for participant, kinds in [*((s, per_subject) for s in cohort.subjects),
                               ("sub-31", embedding_only), ("sub-32", embedding_only)]:
        expected += [f"{participant}/anat/{participant}_{kind}" for kind in kinds]
    assert written == sorted(expected)  # no bad participant's folder, no staging leftovers
    assert not (output / ".anatcl-staging").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bom and crlf", "duplicate id", "other probe"])
def test_group_level_participants_tsv_and_probe_file(case, participant_run, study,
                                                     random_weights, tmp_path):
    output = shutil.copytree(participant_run[3], tmp_path / "derivatives")  # one per case
    rows = (study[0] / "participants.tsv").read_text().splitlines()
    extra = []
    if case == "bom and crlf":
        content = "\ufeff" + "\r\n".join(rows) + "\r\n"
    elif case == "duplicate id":
        content = "\n".join(rows[:3] + [rows[1]] + rows[3:]) + "\n"
    else:
        content = "\n".join(rows) + "\n"
        extra = ["--model", _probe_from_other_weights(tmp_path / "other.skops")]
    participants = tmp_path / "participants.tsv"
    participants.write_bytes(content.encode("utf-8"))
    code, out, err = anatcl_nipype(study[0], output, "group", "--weights", random_weights,
                                   "--target", "mmse", "--cv", "2", "--participants",
                                   participants, "-w", tmp_path / "work", *extra)
    destination = output / "group" / "target-mmse"
    if case == "bom and crlf":
        assert code == 0, err
        predictions = (destination / "predictions.tsv").read_text().splitlines()
        assert sorted(line.split("\t")[0] for line in predictions[1:]) == [
            "sub-01", "sub-02", "sub-03", "sub-04", "sub-31", "sub-32"]
        return
    expected = {
        "duplicate id": f"{participants}, line 4: participant 'sub-01' is listed twice; keep "
                        "one row per participant. The probe was not fitted, so no feature "
                        "table, probe or metrics of this run were written to "
                        f"{destination}",
        "other probe": f"{tmp_path / 'other.skops'}: the probe was trained on other features "
                       "than expected: weights.descriptor: card has 'global', expected None; "
                       "weights.fold: card has 0, expected None; weights.sha256: card has "
                       f"'{'ab' * 32}', expected '{sha256_file(random_weights)}'. Use features "
                       "made the same way (same encoder weights and fold, same columns) or "
                       "retrain the probe",
    }[case]
    assert code == 1
    assert err == f"anatcl-nipype: error: {expected}\n"
    assert not (destination / "predictions.tsv").exists()
    assert not (destination / "embeddings.tsv").exists()  # a failed fit leaves no table


def _probe_from_other_weights(path):
    """A regression probe on AnatCL columns whose card names the released global fold 0."""
    rng = np.random.default_rng(0)
    model = make_probe("regression", alphas=[1.0]).fit(rng.normal(size=(6, 512)),
                                                       rng.normal(size=6))
    card = {"task": "regression", "target": "mmse", "n_train": 6, "feature_source": {
        "columns": [f"emb_{i:03d}" for i in range(512)],
        "weights": {"descriptor": "global", "fold": 0, "sha256": "ab" * 32}}}
    return save_probe(model, path, card)[0]


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["zip format", "legacy format"])
def test_malicious_checkpoint_is_refused_by_the_encoder_and_the_command(
        legacy, cohort, tmp_path):
    marker = tmp_path / "pwned"
    evil = write_evil_checkpoint(tmp_path / "evil.pth", marker, legacy=legacy)
    with pytest.raises(CheckpointError) as error:
        AnatCLEncoder(weights=evil)
    assert str(error.value) == refused_checkpoint(evil)
    if not legacy:  # the command loads the file the same way; one run of it is enough
        code, out, err = anatcl_nipype(cohort.root, tmp_path / "out", "participant",
                                       "--weights", evil, "-w", tmp_path / "work")
        assert code == 1 and err == f"anatcl-nipype: error: {refused_checkpoint(evil)}\n"
        assert not (tmp_path / "out" / "sub-01").exists()
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # what an unsafe loader does: the payload runs
    assert marker.exists()


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("case", ["bom", "crlf", "bom and crlf", "duplicate id", "missing id"])
def test_load_labels_reads_spreadsheet_files_and_refuses_bad_ids(case, tmp_path):
    rows = ["participant_id\tage", "sub-01\t61.5", "sub-02\t70", "sub-03\t55"]
    if case == "duplicate id":
        rows.append("sub-02\t71")
    if case == "missing id":
        rows.remove("sub-03\t55")
    newline = "\r\n" if "crlf" in case else "\n"
    content = ("\ufeff" if "bom" in case else "") + newline.join(rows) + newline
    path = tmp_path / "participants.tsv"
    path.write_bytes(content.encode("utf-8"))
    ids = ["sub-01", "sub-02", "sub-03"]
    if case == "duplicate id":
        with pytest.raises(PredictionError) as error:
            load_labels(path, "age", ids, "regression")
        assert str(error.value) == (f"{path}, line 5: participant 'sub-02' is listed twice; "
                                    "keep one row per participant")
    elif case == "missing id":
        with pytest.raises(PredictionError) as error:
            load_labels(path, "age", ids, "regression")
        assert str(error.value) == (f"{path}: 1 participant(s) with features have no row: "
                                    "sub-03; add them to the file or drop their features")
    else:
        labels = load_labels(path, "age", ids, "regression")
        assert labels.participant_ids == ids and labels.labels.tolist() == [61.5, 70.0, 55.0]


def test_brain_age_on_too_few_participants_says_what_to_do():
    rng = np.random.default_rng(0)
    X, age = rng.normal(size=(6, 8)), rng.uniform(20, 80, size=6)
    with pytest.raises(PredictionError) as error:
        cross_validate_probe(X, age, "brain_age", cv=2)
    assert str(error.value) == (
        "3 training participants are too few for the brain-age bias correction's 5-fold "
        "cross-validation of the training predictions; lower bias_cv (the command line's "
        "--bias-cv), or pass none to fit the bias line on in-sample training predictions, "
        "or add participants")
    assert isinstance(error.value, AnatCLError)
