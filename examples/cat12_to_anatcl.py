#!/usr/bin/env python
"""Example 1: CAT12 segmentation chained into AnatCL encoding (nipype's CAT12Segment).

Builds and draws anywhere; running needs MATLAB + SPM12 + CAT12, or the CAT12 standalone
(compiled, with the MATLAB Runtime). Point Nipype at it before running, e.g.::

    # MATLAB with SPM12 (CAT12 in spm12/toolbox/cat12):
    python examples/cat12_to_anatcl.py sub-01_T1w.nii --spm-path /opt/spm12
    # CAT12 standalone:
    python examples/cat12_to_anatcl.py sub-01_T1w.nii \\
        --matlab-cmd "/opt/CAT12/run_spm12.sh /opt/MCR/v93 script"

    python examples/cat12_to_anatcl.py sub-01_T1w.nii --draw-only   # graph only
"""

import argparse
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from anatcl_nipype.graphs import draw_workflow_graph
from anatcl_nipype.workflows import init_cat12_anatcl_wf


def build(t1w_files, work_dir, descriptor="global", fold=0):
    """One CAT12 -> AnatCL branch per T1w image (CAT12 wants uncompressed .nii)."""
    wf = pe.Workflow(name="cat12_to_anatcl", base_dir=str(work_dir))
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    inputnode.iterables = ("t1w", [str(Path(f).absolute()) for f in t1w_files])
    cat12_anatcl_wf = init_cat12_anatcl_wf(descriptor=descriptor, fold=fold)
    wf.connect(inputnode, "t1w", cat12_anatcl_wf, "inputnode.t1w")
    return wf


def point_nipype_at_cat12(spm_path=None, matlab_cmd=None):
    """Tell nipype's SPM interfaces where MATLAB/SPM/CAT12 are."""
    from nipype.interfaces.spm.base import SPMCommand

    if matlab_cmd:
        SPMCommand.set_mlab_paths(matlab_cmd=matlab_cmd, use_mcr=True)
    elif spm_path:
        SPMCommand.set_mlab_paths(paths=[spm_path])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("t1w", nargs="+", type=Path, help="T1-weighted .nii images")
    parser.add_argument("--work-dir", type=Path, default=Path("work"))
    parser.add_argument("--spm-path", help="SPM12 folder (MATLAB installs)")
    parser.add_argument("--matlab-cmd", help="CAT12 standalone command (MCR installs)")
    parser.add_argument("--nprocs", type=int, default=1)
    parser.add_argument("--draw-only", action="store_true", help="draw the graph and stop")
    args = parser.parse_args(argv)
    wf = build(args.t1w, args.work_dir)
    graph = draw_workflow_graph(wf, Path(wf.base_dir) / wf.name / "graph.svg")
    print(f"graph: {graph}")
    if args.draw_only:
        return wf
    point_nipype_at_cat12(args.spm_path, args.matlab_cmd)
    wf.run(plugin="MultiProc" if args.nprocs > 1 else "Linear",
           plugin_args={"n_procs": args.nprocs})
    return wf


if __name__ == "__main__":
    main()
