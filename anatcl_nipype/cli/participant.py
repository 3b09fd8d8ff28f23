"""``anatcl-nipype <cat12_dir> <output_dir> participant``: encode every participant's map.

Checks the inputs (CAT12 maps, output folder, weights) before importing Nipype's workflow
machinery, then runs one branch per participant and writes BIDS derivatives, the methods
text, ``failed.tsv`` and the report.
"""

import sys
from pathlib import Path

from anatcl_nipype.cli.execution import prepare_output_dir, write_text_atomic
from anatcl_nipype.cli.parser import EXIT_OK, EXIT_PARTIAL
from anatcl_nipype.inputs import find_cat12_subjects, find_participants_tsv


def run_participant_level(options):
    """Encode every participant's map and write BIDS derivatives; print a summary."""
    subjects = find_cat12_subjects(options.cat12_dir, options.participant_label)
    output_dir = prepare_output_dir(options.output_dir)
    participants_tsv = find_participants_tsv(options.cat12_dir, options.participants)
    ensure_weights(options)
    from anatcl_nipype.cli.execution import RunReport, configure_nipype, run_workflow
    from anatcl_nipype.cli.report import report_dir, write_report
    from anatcl_nipype.workflows.base import init_anatcl_participant_wf

    configure_nipype(options.work_dir, options.verbose)
    workflow = init_anatcl_participant_wf(
        subjects=[subject.as_inputs() for subject in subjects], output_dir=output_dir,
        omp_nthreads=max(1, options.nprocs // max(1, min(options.nprocs, len(subjects)))),
        **options.encoder_options())
    folder = report_dir(output_dir)
    write_text_atomic(folder / "methods.md", workflow.visit_desc())
    if options.write_graph:
        draw_graph(workflow.get_node(workflow.list_node_names()[0].split(".")[0]),
                   options.work_dir, folder / "graph.svg")
    print(f"Encoding {len(subjects)} participant(s) from {options.cat12_dir} into {output_dir}")
    report = run_workflow(workflow, options, RunReport(total_subjects=len(subjects)))
    write_failures(folder / "failed.tsv", report.failed, subjects)
    code = _summarise(report, output_dir, subjects)
    print(f"Report: {write_report(output_dir, participants_tsv)}")
    return code


def ensure_weights(options):
    """Make sure the weights are here before nodes start (download once, with progress)."""
    if options.weights is not None:
        from anatcl_nipype.encoder.checkpoint import load_checkpoint

        load_checkpoint(options.weights)  # refuse a bad file now, not in every node
        return
    from anatcl_nipype.encoder.weights import fetch_weights

    encoder = options.encoder_options()
    print(f"AnatCL weights: descriptor {encoder['descriptor']}, fold {encoder['fold']}")
    fetch_weights(encoder["descriptor"], encoder["fold"], progress=sys.stdout.isatty())


def draw_graph(workflow, work_dir, destination):
    """Draw ``workflow`` (colored, SVG) and copy the picture to ``destination``."""
    import shutil

    workflow.base_dir = str(Path(work_dir).absolute() / "graphs")
    drawn = workflow.write_graph(graph2use="colored", format="svg", simple_form=True)
    shutil.copyfile(Path(drawn).with_suffix(".svg"), destination)


def write_failures(path, failed, subjects):
    """``failed.tsv``: participant_id, input map and reason of every failed participant."""
    from anatcl_nipype.files import write_failures_tsv

    inputs = {s.participant_id: s.gm_modulated for s in subjects}
    write_failures_tsv(path, [(pid, inputs.get(pid, ""), reason)
                              for pid, reason in sorted(failed.items())])


def _summarise(report, output_dir, subjects):
    done = [s.participant_id for s in subjects if s.participant_id not in report.failed]
    print(f"\nDone: {len(done)} of {len(subjects)} participant(s) written to {output_dir}")
    if report.failed:
        print(f"Failed: {len(report.failed)}")
        for participant, reason in sorted(report.failed.items()):
            print(f"  {participant}: {reason}")
        return EXIT_PARTIAL
    return EXIT_OK
