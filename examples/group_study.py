#!/usr/bin/env python
"""Example 3: a group study over a CAT12 output folder, with a cross-validated probe.

Every participant's mwp1 map goes through one AnatCLEncodeBatch node (one model load), its
CAT12 ROI measures through the regional workflow, and both tables into the package's group
workflow (the one the command line's group level runs), which cross-validates a linear
probe for a participants.tsv column and writes the results into
``<out>/group/target-<target>/``::

    python examples/group_study.py /data/cat12 /data/participants.tsv diagnosis --out results
"""

import argparse
from pathlib import Path

from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.graphs import draw_workflow_graph
from anatcl_nipype.inputs import find_cat12_subjects
from anatcl_nipype.workflows import (
    init_anatcl_group_encoding_wf,
    init_anatcl_group_regional_wf,
    init_anatcl_group_wf,
)


def build(cat12_dir, participants_tsv, target, work_dir, out_dir, weights=None, cv=5):
    """Group encoding + group regional measures -> the group workflow, as one workflow."""
    subjects = find_cat12_subjects(cat12_dir)
    study = Workflow(name="group_study_wf", base_dir=str(work_dir))
    encoding_wf = init_anatcl_group_encoding_wf(weights=weights)
    encoding_wf.inputs.inputnode.gm_modulated = [str(s.gm_modulated) for s in subjects]
    encoding_wf.inputs.inputnode.participant_ids = [s.participant_id for s in subjects]
    regional_wf = init_anatcl_group_regional_wf(
        [{"label_roi": str(s.label_roi), "report": str(s.report),
          "participant_id": s.participant_id} for s in subjects])
    group_wf = init_anatcl_group_wf(target=target, features="both", cv=cv, output_dir=out_dir)
    group_wf.inputs.inputnode.participants_tsv = str(participants_tsv)
    study.connect([
        (encoding_wf, group_wf, [("outputnode.embeddings_tsv", "inputnode.embeddings"),
                                 ("outputnode.embeddings_json", "inputnode.embeddings_json")]),
        (regional_wf, group_wf, [("outputnode.regional_tsv", "inputnode.regional_tsv")]),
    ])
    return study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cat12_dir", type=Path)
    parser.add_argument("participants_tsv", type=Path)
    parser.add_argument("target", help="participants.tsv column to predict")
    parser.add_argument("--out", type=Path, default=Path("group_study"))
    parser.add_argument("--weights", type=Path, help="checkpoint (default: released, cached)")
    parser.add_argument("--work-dir", type=Path, default=Path("work"))
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--draw-only", action="store_true")
    args = parser.parse_args(argv)
    study = build(args.cat12_dir, args.participants_tsv.absolute(), args.target,
                  args.work_dir.absolute(), args.out.absolute(),
                  str(args.weights.absolute()) if args.weights else None)
    draw_workflow_graph(study, Path(study.base_dir) / study.name / "graph.svg")
    if args.draw_only:
        return study
    study.run(plugin="MultiProc", plugin_args={"n_procs": args.nprocs})
    print(f"results in {args.out / 'group'}")
    return study


if __name__ == "__main__":
    main()
