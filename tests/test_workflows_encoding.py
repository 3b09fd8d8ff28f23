"""Encoding workflows run under Nipype's plugins exactly like the bare encoder."""

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import write_map
from nipype import Node, Workflow
from nipype.interfaces import utility as niu
from nipype.utils.filemanip import loadcrash

from anatcl_nipype.encoder import AnatCLEncoder
from anatcl_nipype.interfaces.encoder import AnatCLEncode
from anatcl_nipype.workflows.cat12 import init_cat12_anatcl_wf
from anatcl_nipype.workflows.derivatives import init_anatcl_derivatives_wf
from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf, init_anatcl_group_encoding_wf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _iterated_encoding(maps, weights, base_dir):
    """The encoding workflow iterated over subjects, as a user would set it up."""
    wf = init_anatcl_encoding_wf(weights=weights, name="encode_subjects")
    wf.base_dir = str(base_dir)
    wf.get_node("inputnode").iterables = ("gm_modulated", [str(m) for m in maps])
    return wf


def _embeddings_by_input(base_dir):
    """Read every encode node's outputs from the work dir: {input path: embedding}."""
    found = {}
    for result in Path(base_dir).rglob("result_anatcl_encode.pklz"):
        outputs = pickle.loads(gzip.decompress(result.read_bytes())).outputs
        if outputs is None:  # a crashed node
            continue
        sidecar = json.loads(Path(outputs.out_json).read_text())
        found[sidecar["input"]["path"]] = np.load(outputs.out_file)
    return found


@pytest.mark.parametrize("plugin, args", [("MultiProc", {"n_procs": 2}), ("Linear", {})])
def test_workflow_equals_bare_encoder(random_weights, cat12_maps, tmp_path, plugin, args):
    wf = _iterated_encoding(cat12_maps, random_weights, tmp_path)
    wf.run(plugin=plugin, plugin_args=args)
    found = _embeddings_by_input(tmp_path)
    expected = AnatCLEncoder(weights=random_weights).encode(cat12_maps)
    assert len(found) == 3
    for path, vector in zip(cat12_maps, expected):
        assert np.abs(found[str(Path(path).resolve())] - vector).max() <= 1e-6


def test_rerun_reuses_cached_results(random_weights, cat12_maps, tmp_path):
    _iterated_encoding(cat12_maps[:2], random_weights, tmp_path).run()
    results = sorted(Path(tmp_path).rglob("result_anatcl_encode.pklz"))
    outputs = sorted(Path(tmp_path).rglob("*_anatcl.npy"))
    stamps = [p.stat().st_mtime_ns for p in results + outputs]
    _iterated_encoding(cat12_maps[:2], random_weights, tmp_path).run()
    assert len(results) == 2
    assert [p.stat().st_mtime_ns for p in results + outputs] == stamps  # nothing re-executed


def test_one_bad_subject_crashes_only_its_node(random_weights, cat12_maps, tmp_path):
    bad = write_map(tmp_path / "mwp1sub-09_T1w.nii", np.zeros((121, 145, 121), np.float32))
    wf = _iterated_encoding([cat12_maps[0], bad, cat12_maps[1]], random_weights, tmp_path / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    with pytest.raises(RuntimeError, match="mwp1sub-09_T1w.nii: the map is empty"):
        wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
    found = _embeddings_by_input(tmp_path / "work")
    assert sorted(found) == sorted(str(Path(m).resolve()) for m in cat12_maps[:2])
    crashes = list((tmp_path / "crash").glob("crash-*.pklz"))
    assert len(crashes) == 1
    crash = loadcrash(str(crashes[0]))
    assert f"{bad}: the map is empty (all voxels are 0)" in "".join(crash["traceback"])


def test_workflows_nodes_and_interfaces_pickle(random_weights):
    for thing in (init_anatcl_encoding_wf(weights=random_weights), init_anatcl_group_encoding_wf(),
                  init_cat12_anatcl_wf(), Node(AnatCLEncode(), name="encode"), AnatCLEncode()):
        clone = pickle.loads(pickle.dumps(thing))
        assert type(clone) is type(thing)


def test_group_encoding_workflow(random_weights, cat12_maps, tmp_path):
    wf = init_anatcl_group_encoding_wf(weights=random_weights, batch_size=2)
    wf.base_dir = str(tmp_path)
    wf.inputs.inputnode.gm_modulated = [str(m) for m in cat12_maps]
    result = wf.run()
    node = next(n for n in result.nodes() if n.name == "anatcl_encode_batch")
    table = np.loadtxt(node.result.outputs.out_tsv, skiprows=1, usecols=range(1, 513))
    np.testing.assert_allclose(table, AnatCLEncoder(weights=random_weights).encode(cat12_maps),
                               atol=1e-5)


def test_embedding_inside_a_parent_workflow_sinks_bids_derivatives(random_weights, tmp_path):
    source = tmp_path / "cat12" / "sub-01" / "ses-A" / "mri" / "mwp1sub-01_ses-A_T1w.nii"
    source.parent.mkdir(parents=True)
    write_map(source, seed=4)
    parent = Workflow(name="parent", base_dir=str(tmp_path / "work"))
    inputnode = Node(niu.IdentityInterface(fields=["gm"]), name="inputnode")
    inputnode.inputs.gm = str(source)
    encoding = init_anatcl_encoding_wf(weights=random_weights)
    sink = init_anatcl_derivatives_wf(output_dir=tmp_path / "out", descriptor="global", fold=0,
                                      weights=None)
    parent.connect([
        (inputnode, encoding, [("gm", "inputnode.gm_modulated")]),
        (inputnode, sink, [("gm", "inputnode.source_file")]),
        (encoding, sink, [("outputnode.embedding", "inputnode.embedding"),
                          ("outputnode.embedding_json", "inputnode.embedding_json")]),
    ])
    parent.run()
    anat = tmp_path / "out" / "sub-01" / "ses-A" / "anat"
    assert sorted(p.name for p in anat.iterdir()) == [
        "sub-01_ses-A_desc-anatclGlobalFold0_embedding.json",
        "sub-01_ses-A_desc-anatclGlobalFold0_embedding.npy",
    ]
    assert np.load(anat / "sub-01_ses-A_desc-anatclGlobalFold0_embedding.npy").shape == (512,)
    description = json.loads((tmp_path / "out" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "anatcl-nipype"


@pytest.mark.parametrize("graph2use", ["colored", "hierarchical"])
@pytest.mark.parametrize("image_format", ["svg", "png"])
def test_every_workflow_draws(tmp_path, graph2use, image_format):
    for factory in (init_anatcl_encoding_wf, init_anatcl_group_encoding_wf, init_cat12_anatcl_wf):
        wf = factory()
        wf.base_dir = str(tmp_path)
        wf.write_graph(graph2use=graph2use, format=image_format, simple_form=True)
        drawn = list((tmp_path / wf.name).glob(f"graph*.{image_format}"))
        assert drawn and all(p.stat().st_size > 500 for p in drawn)
    derivatives = init_anatcl_derivatives_wf(output_dir=tmp_path / "out")
    derivatives.base_dir = str(tmp_path)
    derivatives.write_graph(graph2use=graph2use, format=image_format)
    assert list((tmp_path / derivatives.name).glob(f"graph*.{image_format}"))


def test_methods_boilerplate_cites_anatcl():
    from anatcl_nipype.citations import bibtex_entries

    wf = init_anatcl_encoding_wf(descriptor="local", fold=3)
    text = wf.visit_desc()
    assert "[@barbano2026anatcl]" in text  # cited by its key in the package's BibTeX
    assert "doi     = {10.1016/j.patrec.2025.11.028}" in bibtex_entries()["barbano2026anatcl"]
    assert "descriptor 'local', fold 3" in text


def test_dataset_description_names_anatcl_from_the_bibtex(monkeypatch):
    from anatcl_nipype import citations
    from anatcl_nipype.interfaces.bids import dataset_description

    generated = dataset_description()["GeneratedBy"][0]["Description"]
    assert generated == (f"AnatCL ({citations.short_reference('barbano2026anatcl')}) as Nipype "
                         "interfaces, run on CAT12 grey-matter maps")
    assert dataset_description()["HowToAcknowledge"] == (
        f"Cite {citations.reference('barbano2026anatcl')}")
    entries = dict(citations.bibtex_entries())  # a corrected entry changes both texts
    entries["barbano2026anatcl"] = entries["barbano2026anatcl"].replace("{2026}", "{2027}")
    monkeypatch.setattr(citations, "bibtex_entries", lambda: entries)
    description = dataset_description()
    assert "(Barbano et al., Pattern Recognition Letters 2027)" in \
        description["GeneratedBy"][0]["Description"]
    assert description["HowToAcknowledge"].endswith("2027. doi:10.1016/j.patrec.2025.11.028")


def test_folds_reach_the_encoder_and_the_outputnode_lists_each_fold(cat12_maps, tmp_path,
                                                                     monkeypatch):
    from anatcl_nipype.encoder import write_random_checkpoint
    from anatcl_nipype.encoder.weights import cached_weights_path

    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path / "home"))
    for fold in (0, 2):  # seeded random checkpoints standing in for released folds 0 and 2
        cached_weights_path("global", fold).parent.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(cached_weights_path("global", fold), seed=10 + fold)
    wf = init_anatcl_encoding_wf(folds=(0, 2), force_precision=True)
    assert wf.get_node("anatcl_encode").inputs.folds == [0, 2]
    assert wf.get_node("anatcl_encode").inputs.force_precision is True
    wf.inputs.inputnode.gm_modulated = str(cat12_maps[0])
    parent = Workflow(name="parent", base_dir=str(tmp_path / "work"))
    fields = ["embedding", "embeddings", "embeddings_json"]
    consumer = Node(niu.Function(function=_outputs_as_given, input_names=fields,
                                 output_names=["outputs"]), name="consumer")
    parent.connect([(wf, consumer, [(f"outputnode.{field}", field) for field in fields])])
    graph = parent.run()
    embedding, embeddings, sidecars = next(
        n for n in graph.nodes() if n.name == "consumer").result.outputs.outputs
    assert len(embeddings) == 2 and len(sidecars) == 2 and embedding == embeddings[0]
    for path, sidecar, fold in zip(embeddings, sidecars, (0, 2)):
        alone = AnatCLEncoder(fold=fold).encode([cat12_maps[0]])[0]
        assert np.array_equal(np.load(path), alone)
        assert json.loads(Path(sidecar).read_text())["weights"]["fold"] == fold


def _outputs_as_given(embedding, embeddings, embeddings_json):
    return embedding, embeddings, embeddings_json


def non_default_encoder(weights):
    """EncoderOptions with every field away from its default."""
    from anatcl_nipype import EncoderOptions

    return EncoderOptions(weights=str(weights), descriptor="local", fold=2, folds=(2, 4),
                          precision="bf16", force_precision=True, device="cpu",
                          use_gpu=True, use_head=True, resample=True)


@pytest.mark.parametrize("shard_size", [1, 2])
def test_every_encoder_option_reaches_the_encoding_node_unchanged(tmp_path, shard_size):
    """The object is passed whole: a new EncoderOptions field needs no workflow change."""
    from dataclasses import fields

    from anatcl_nipype.interfaces.encoder import encoder_options_of
    from anatcl_nipype.workflows import init_anatcl_participant_wf

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    encoder = non_default_encoder(weights)
    assert all(getattr(encoder, f.name) != f.default for f in fields(encoder))
    subjects = [{"participant_id": f"sub-0{i}", "gm_modulated": f"/d/mwp1sub-0{i}_T1w.nii"}
                for i in (1, 2)]
    wf = init_anatcl_participant_wf(subjects=subjects, output_dir=tmp_path, encoder=encoder,
                                    shard_size=shard_size)
    nodes = [wf.get_node(name) for name in wf.list_node_names() if "anatcl_encode" in name]
    assert nodes and all(encoder_options_of(node.inputs) == encoder for node in nodes)


def test_encoder_options_as_keywords_override_the_object(tmp_path):
    from anatcl_nipype import EncoderOptions
    from anatcl_nipype.workflows import init_anatcl_encoding_wf

    wf = init_anatcl_encoding_wf(encoder=EncoderOptions(descriptor="local"), fold=3)
    inputs = wf.get_node("anatcl_encode").inputs
    assert (inputs.descriptor, inputs.fold) == ("local", 3)
    with pytest.raises(TypeError, match="fodl"):
        init_anatcl_encoding_wf(fodl=3)
