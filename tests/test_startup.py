"""Start-up: user mistakes are reported before any heavy import, and sinks never index
TemplateFlow (importing ``niworkflows.interfaces.bids`` does, for 8-18 s)."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink

HEAVY = ("niworkflows.interfaces.bids", "templateflow", "bids.layout.layout", "torch",
         "sklearn")


def loaded_after(code):
    """Run ``code`` in a fresh interpreter; return which HEAVY modules it left imported."""
    probe = f"{code}\nimport sys\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-1]


def test_a_missing_folder_is_reported_before_any_heavy_import(tmp_path):
    code = ("from anatcl_nipype.cli.main import main\n"
            f"assert main([{str(tmp_path / 'missing')!r}, {str(tmp_path / 'out')!r}, "
            "'participant']) == 1")
    assert loaded_after(code) == "[]"


def test_building_and_running_a_sink_never_imports_templateflow(tmp_path):
    source = tmp_path / "vector.npy"
    np.save(source, np.ones(4, dtype=np.float32))
    code = (
        "from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf\n"
        f"init_anatcl_derivatives_wf(output_dir={str(tmp_path / 'out')!r}, regional=True)\n"
        "from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink\n"
        f"AnatCLDerivativesDataSink(base_directory={str(tmp_path / 'out')!r}, "
        f"in_file={str(source)!r}, suffix='embedding', desc='x', "
        "source_file='sub-01/anat/sub-01_T1w.nii').run()")
    # pybids' writing module is imported to name the file, never TemplateFlow or its index
    assert loaded_after(code) == "['bids.layout.layout']"
    assert (tmp_path / "out/sub-01/anat/sub-01_desc-x_embedding.npy").read_bytes() == \
        source.read_bytes()


def _run_sink(tmp_path, in_file, **inputs):
    return AnatCLDerivativesDataSink(base_directory=str(tmp_path / "out"), in_file=str(in_file),
                                     **inputs).run().outputs


def test_relevance_maps_are_written_as_gzipped_statmaps_with_a_sidecar(tmp_path):
    source = tmp_path / "map.nii"
    source.write_bytes(b"not really a NIfTI, copied as bytes")
    outputs = _run_sink(tmp_path, source, suffix="statmap", desc="relevance", compress=True,
                        source_file="sub-04/ses-2/anat/sub-04_ses-2_T1w.nii",
                        meta_dict={"Method": "integrated gradients", "Steps": 20})
    final = tmp_path / "out/sub-04/ses-2/anat/sub-04_ses-2_desc-relevance_statmap"
    assert outputs.out_file == f"{final}.nii.gz"
    assert gzip.decompress(Path(outputs.out_file).read_bytes()) == source.read_bytes()
    assert outputs.out_meta == f"{final}.json"
    assert json.loads(Path(outputs.out_meta).read_text()) == {
        "Method": "integrated gradients", "Steps": 20}
    assert sorted(p.name for p in final.parent.iterdir()) == [
        "sub-04_ses-2_desc-relevance_statmap.json", "sub-04_ses-2_desc-relevance_statmap.nii.gz"]


def test_a_gzipped_map_is_copied_byte_for_byte_under_its_own_extension(tmp_path):
    source = tmp_path / "map.nii.gz"
    source.write_bytes(gzip.compress(b"voxels", mtime=0))
    outputs = _run_sink(tmp_path, source, suffix="statmap", space="CAT12",
                        source_file="sub-05/anat/sub-05_T1w.nii")
    assert outputs.out_file == str(tmp_path / "out/sub-05/anat/sub-05_space-CAT12_statmap.nii.gz")
    assert Path(outputs.out_file).read_bytes() == source.read_bytes()


def _heavy_modules_here(out_file):
    import sys

    return [name for name in ("niworkflows.interfaces.bids", "templateflow")
            if name in sys.modules]


def test_a_multiproc_worker_running_a_sink_never_imports_templateflow(tmp_path):
    source = tmp_path / "vector.npy"
    np.save(source, np.ones(4, dtype=np.float32))
    code = f"""
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from anatcl_nipype.interfaces.bids import AnatCLDerivativesDataSink
from test_startup import _heavy_modules_here

wf = pe.Workflow(name="wf", base_dir={str(tmp_path / 'work')!r})
sink = pe.Node(AnatCLDerivativesDataSink(base_directory={str(tmp_path / 'out')!r},
    in_file={str(source)!r}, suffix="embedding", source_file="sub-01/anat/sub-01_T1w.nii"),
    name="ds_embedding")
probe = pe.Node(niu.Function(function=_heavy_modules_here, output_names=["heavy"]),
                name="probe")
wf.connect(sink, "out_file", probe, "out_file")
graph = wf.run(plugin="MultiProc", plugin_args={{"n_procs": 2}})
print([n.result.outputs.heavy for n in graph.nodes() if n.name == "probe"][0])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out/sub-01/anat/sub-01_embedding.npy").is_file()
