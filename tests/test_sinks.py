"""Sinks on a rerun: files already holding the same bytes are left untouched (mtime and
inode), changed ones are replaced atomically, and a sink node still checks its destinations
every run."""

import json
import os

import numpy as np
from conftest import write_map
from nipype.pipeline import engine as pe

from anatcl_nipype.interfaces.bids import (
    STAGING_DIR,
    AnatCLDerivativesDataSink,
    GroupDerivativesSink,
)

#: An mtime no sink run of this test can give a file (2001-09-09), set on the outputs
#: before a rerun to see whether the rerun rewrote them.
OLD_NS = 1_000_000_000 * 10**9
SOURCE = "sub-01/anat/sub-01_T1w.nii"
VECTOR = "sub-01/anat/sub-01_desc-test_embedding.npy"
VECTOR_JSON = "sub-01/anat/sub-01_desc-test_embedding.json"
MAP = "sub-01/anat/sub-01_desc-test_statmap.nii.gz"
MAP_JSON = "sub-01/anat/sub-01_desc-test_statmap.json"


def _inputs(folder):
    """A vector and its sidecar, and an uncompressed map (gzipped by the sink)."""
    folder.mkdir(parents=True, exist_ok=True)
    vector = folder / "vector.npy"
    np.save(vector, np.full(512, 1.0, dtype=np.float32))
    sidecar = folder / "vector.json"
    sidecar.write_text(json.dumps({"Fold": 0}))
    return vector, sidecar, write_map(folder / "map.nii", np.ones((8, 9, 10)))


def _sink_all(base, vector, sidecar, image):
    AnatCLDerivativesDataSink(base_directory=str(base), in_file=[str(vector), str(sidecar)],
                              desc="test", suffix="embedding", source_file=SOURCE).run()
    AnatCLDerivativesDataSink(base_directory=str(base), in_file=str(image), desc="test",
                              suffix="statmap", compress=True, meta_dict={"Steps": 20},
                              source_file=SOURCE).run()


def _age(base, names):
    """Give the files an old mtime; return each one's (mtime, inode)."""
    for name in names:
        os.utime(base / name, ns=(OLD_NS, OLD_NS))
    return _stamps(base, names)


def _stamps(base, names):
    return {name: ((base / name).stat().st_mtime_ns, (base / name).stat().st_ino)
            for name in names}


def test_a_rerun_leaves_identical_files_untouched_and_replaces_a_changed_one(tmp_path):
    base = tmp_path / "out"
    inputs = _inputs(tmp_path / "node")
    _sink_all(base, *inputs)
    names = [VECTOR, VECTOR_JSON, MAP, MAP_JSON]
    before = _age(base, names)
    _sink_all(base, *inputs)
    assert _stamps(base, names) == before  # copied or gzipped: the same bytes, not rewritten

    np.save(inputs[0], np.full(512, 2.0, dtype=np.float32))  # same size, other bytes
    _sink_all(base, *inputs)
    after = _stamps(base, names)
    assert after[VECTOR] != before[VECTOR]
    assert np.load(base / VECTOR).tolist() == [2.0] * 512
    assert {name: after[name] for name in names[1:]} == {name: before[name]
                                                          for name in names[1:]}
    assert not (base / STAGING_DIR).exists()


def test_group_sink_rerun_rewrites_only_what_changed(tmp_path):
    svg, png, table = (tmp_path / name for name in ("cv.svg", "cv.png", "metrics.tsv"))
    svg.write_text("<svg/>")
    png.write_bytes(b"\x89PNG 1")
    table.write_text("fold\tmae\n0\t3.5\n")
    folder = tmp_path / "out" / "group" / "target-age"

    def sink_all():
        for files, out_name in (([str(svg), str(png)], "cv"), (str(table), "metrics.tsv")):
            GroupDerivativesSink(base_directory=str(tmp_path / "out"), folder="group/target-age",
                                 in_file=files, out_name=out_name).run()

    sink_all()
    names = ["cv.svg", "cv.png", "metrics.tsv"]
    before = _age(folder, names)
    sink_all()
    assert _stamps(folder, names) == before
    png.write_bytes(b"\x89PNG 2")
    sink_all()
    after = _stamps(folder, names)
    assert after["cv.png"] != before["cv.png"] and (folder / "cv.png").read_bytes() == \
        b"\x89PNG 2"
    assert (after["cv.svg"], after["metrics.tsv"]) == (before["cv.svg"], before["metrics.tsv"])


def test_a_sink_node_checks_its_destinations_on_every_run(tmp_path):
    base = tmp_path / "out"
    vector, sidecar, _ = _inputs(tmp_path / "node")
    workflow = pe.Workflow(name="sink_wf", base_dir=str(tmp_path / "work"))
    workflow.add_nodes([pe.Node(AnatCLDerivativesDataSink(
        base_directory=str(base), in_file=[str(vector), str(sidecar)], desc="test",
        suffix="embedding", source_file=SOURCE), name="ds_embedding")])
    workflow.run(plugin="Linear")
    before = _age(base, [VECTOR_JSON])
    (base / VECTOR).unlink()  # removed by hand: the rerun, its inputs unchanged, restores it
    workflow.run(plugin="Linear")
    assert (base / VECTOR).read_bytes() == vector.read_bytes()
    assert _stamps(base, [VECTOR_JSON]) == before


def test_embeddings_of_random_weights_say_so_in_their_names(tmp_path):
    """The desc of a checkpoint's embeddings is decided when the sink runs, from the
    sidecar's weights record: anatclRandom for seeded random weights, else anatclCustom."""
    import subprocess
    import sys

    from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf

    source = tmp_path / "cat12" / "sub-01" / "mri" / "mwp1sub-01_T1w.nii"
    for name, weights, desc in (("random", {"path": "/w/r.pth", "random": True}, "anatclRandom"),
                                ("custom", {"path": "/w/mine.pth", "random": False},
                                 "anatclCustom")):
        vector, sidecar, _ = _inputs(tmp_path / name)
        sidecar.write_text(json.dumps({"weights": weights}))
        workflow = init_anatcl_derivatives_wf(output_dir=tmp_path / name / "out",
                                              weights="/w/any.pth",
                                              id_note="participant id from a test", name=name)
        workflow.base_dir = str(tmp_path / "work")
        workflow.inputs.inputnode.source_file = str(source)
        workflow.inputs.inputnode.embedding = str(vector)
        workflow.inputs.inputnode.embedding_json = str(sidecar)
        workflow.run()
        anat = tmp_path / name / "out" / "sub-01" / "anat"
        assert sorted(p.name for p in anat.iterdir()) == [
            f"sub-01_desc-{desc}_embedding.json", f"sub-01_desc-{desc}_embedding.npy"]
    # the graph is built without loading the checkpoint: no torch, no scikit-learn
    code = ("import sys\n"
            "from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf\n"
            "init_anatcl_derivatives_wf(output_dir='/o', weights='/w/r.pth')\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
