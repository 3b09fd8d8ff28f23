#!/usr/bin/env python
"""Example 2: an fMRIPrep-style study workflow that embeds AnatCL as a sub-workflow.

The parent has its own nodes (here: total grey-matter volume from each CAT12 map, sunk as
a BIDS derivative), and reuses ``init_anatcl_encoding_wf`` and
``init_anatcl_derivatives_wf`` next to them, one branch per scan (participant, and
session where there are sessions), as fMRIPrep's ``init_single_subject_wf`` does::

    python examples/fmriprep_style_parent.py /data/cat12 /data/derivatives/study --nprocs 2
"""

import argparse
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.bids import bids_source_for
from anatcl_nipype.graphs import draw_workflow_graph
from anatcl_nipype.inputs import find_cat12_subjects
from anatcl_nipype.workflows import (
    init_anatcl_derivatives_wf,
    init_anatcl_encoding_wf,
    single_subject_wf_name,
)


def total_gm_volume(gm_modulated):
    """The parent's own step: total grey-matter volume (cm3) of a modulated map, as a TSV."""
    import os

    import nibabel as nib
    import numpy as np

    image = nib.load(gm_modulated)
    voxel_cm3 = abs(np.linalg.det(image.affine[:3, :3])) / 1000
    out_file = os.path.abspath("gm_volume.tsv")
    with open(out_file, "w") as stream:
        stream.write(f"total_gm_cm3\n{float(image.get_fdata().sum() * voxel_cm3):.4f}\n")
    return out_file


def init_single_subject_wf(subject, output_dir, weights=None):
    """One scan: the parent's own node + AnatCL encoding + both sinks.

    Branches are named, and derivatives named after, the participant and session, so two
    sessions of one participant neither share a branch nor overwrite each other's files.
    """
    from anatcl_nipype.interfaces import AnatCLDerivativesDataSink

    wf = Workflow(name=single_subject_wf_name(subject))
    inputnode = pe.Node(niu.IdentityInterface(fields=["gm_modulated", "source_file"]),
                        name="inputnode")
    inputnode.inputs.gm_modulated = str(subject["gm_modulated"])
    inputnode.inputs.source_file = bids_source_for(subject["participant_id"],
                                                   subject.get("session_id"),
                                                   subject["gm_modulated"])
    gm_volume = pe.Node(niu.Function(function=total_gm_volume, output_names=["out_file"]),
                        name="gm_volume")
    ds_gm_volume = pe.Node(AnatCLDerivativesDataSink(
        base_directory=str(output_dir), desc="totalgm", suffix="features"),
        name="ds_gm_volume", run_without_submitting=True)
    encoding_wf = init_anatcl_encoding_wf(weights=weights)
    derivatives_wf = init_anatcl_derivatives_wf(output_dir=output_dir, weights=weights)
    wf.connect([
        (inputnode, gm_volume, [("gm_modulated", "gm_modulated")]),
        (gm_volume, ds_gm_volume, [("out_file", "in_file")]),
        (inputnode, ds_gm_volume, [("source_file", "source_file")]),
        (inputnode, encoding_wf, [("gm_modulated", "inputnode.gm_modulated")]),
        (inputnode, derivatives_wf, [("source_file", "inputnode.source_file")]),
        (encoding_wf, derivatives_wf, [("outputnode.embedding", "inputnode.embedding"),
                                       ("outputnode.embedding_json", "inputnode.embedding_json")]),
    ])
    return wf


def build(cat12_dir, output_dir, work_dir, weights=None):
    """The study workflow: one single-subject branch per CAT12 scan."""
    study = Workflow(name="study_wf", base_dir=str(work_dir))
    for subject in find_cat12_subjects(cat12_dir):
        study.add_nodes([init_single_subject_wf(subject.as_inputs(), Path(output_dir).absolute(),
                                                weights)])
    return study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cat12_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--weights", type=Path, help="checkpoint (default: released, cached)")
    parser.add_argument("--work-dir", type=Path, default=Path("work"))
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--draw-only", action="store_true")
    args = parser.parse_args(argv)
    wf = build(args.cat12_dir, args.output_dir, args.work_dir.absolute(),
               str(args.weights.absolute()) if args.weights else None)
    draw_workflow_graph(wf, Path(wf.base_dir) / wf.name / "graph.svg", graph2use="hierarchical")
    if not args.draw_only:
        wf.run(plugin="MultiProc", plugin_args={"n_procs": args.nprocs})
    return wf


if __name__ == "__main__":
    main()
