#!/usr/bin/env python
"""Example 3: a group study over a CAT12 output folder, with a cross-validated probe.

Every participant's mwp1 map goes through one AnatCLEncodeBatch node (one model load), its
CAT12 ROI measures through the regional workflow, and both tables into a FitProbe node that
cross-validates a linear probe for a participants.tsv column::

    python workflows/group_study.py /data/cat12 /data/participants.tsv diagnosis --out results
"""

import argparse
import shutil
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from anatcl_nipype.inputs import find_cat12_subjects
from anatcl_nipype.inputs import infer_task, read_column
from anatcl_nipype.interfaces.prediction import FitProbe
from anatcl_nipype.workflows.encoding import init_anatcl_group_encoding_wf
from anatcl_nipype.workflows.regional import init_anatcl_group_regional_wf


def build(cat12_dir, participants_tsv, target, work_dir, weights=None, cv=5):
    """Group encoding + group regional measures -> FitProbe, as one workflow."""
    subjects = find_cat12_subjects(cat12_dir)
    study = Workflow(name="group_study_wf", base_dir=str(work_dir))
    encoding_wf = init_anatcl_group_encoding_wf(weights=weights)
    encoding_wf.inputs.inputnode.gm_modulated = [str(s.gm_modulated) for s in subjects]
    encoding_wf.inputs.inputnode.participant_ids = [s.participant_id for s in subjects]
    regional_wf = init_anatcl_group_regional_wf(
        [{"label_roi": str(s.label_roi), "report": str(s.report),
          "participant_id": s.participant_id} for s in subjects])
    features = pe.Node(niu.Merge(2), name="features")
    sidecars = pe.Node(niu.Merge(2), name="sidecars")
    task = infer_task(target, read_column(participants_tsv, target))
    probe = pe.Node(FitProbe(participants_tsv=str(participants_tsv), target=target, task=task,
                             cv=cv), name="fit_probe")
    study.connect([
        (encoding_wf, features, [("outputnode.embeddings_tsv", "in1")]),
        (encoding_wf, sidecars, [("outputnode.embeddings_json", "in1")]),
        (regional_wf, features, [("outputnode.regional_tsv", "in2")]),
        (regional_wf, sidecars, [("outputnode.regional_json", "in2")]),
        (features, probe, [("out", "features")]),
        (sidecars, probe, [("out", "features_json")]),
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
                  args.work_dir.absolute(), str(args.weights.absolute()) if args.weights else None)
    study.write_graph(graph2use="colored", format="svg")
    if args.draw_only:
        return study
    graph = study.run(plugin="MultiProc", plugin_args={"n_procs": args.nprocs})
    fit = next(node for node in graph.nodes() if node.name == "fit_probe")
    args.out.mkdir(parents=True, exist_ok=True)
    for field in ("model", "model_card", "metrics_tsv", "predictions_tsv", "out_json"):
        shutil.copy(getattr(fit.result.outputs, field), args.out)
    print(f"results in {args.out}")
    return study


if __name__ == "__main__":
    main()
