"""``anatcl-nipype <cat12_dir> <output_dir> participant``: encode every participant's map.

Checks the inputs (CAT12 maps, output folder, weights) before importing Nipype's workflow
machinery, then runs one branch per participant and writes BIDS derivatives, the methods
text, ``failed.tsv`` and the report.
"""

import os
import sys
from pathlib import Path

from anatcl_nipype.cli.execution import prepare_output_dir, start_workers_early
from anatcl_nipype.cli.parser import EXIT_OK, EXIT_PARTIAL
from anatcl_nipype.cli.progress import Phases, finish_level, run_timed
from anatcl_nipype.inputs import discover_cat12, find_participants_tsv


def run_participant_level(options):
    """Encode every participant's map and write BIDS derivatives; print a summary."""
    if options.reports_only:
        return rebuild_report(options)
    options.check_precision()  # an explicit bf16 refused once, before any work
    phases = Phases()
    with phases("discovery"):
        discovery = discover_cat12(options.cat12_dir, options.participant_label,
                                   options.session_label)
        subjects = discovery.subjects
        phases.say("\n".join(discovery.describe()))
        output_dir = prepare_output_dir(options.output_dir)
        participants_tsv = find_participants_tsv(options.cat12_dir, options.participants)
    with phases("start-up"):
        start_workers_early(options)
        ensure_weights(options)
        shard_size = choose_shard_size(options, len(subjects))
        workflow, folder = _build(options, subjects, output_dir, shard_size)
    phases.say(f"Encoding {_count(subjects)} from {Path(options.cat12_dir).absolute()} into "
               f"{output_dir}")
    report = run_timed(workflow, options, phases, "encoding, regional and sinks",
                       total_subjects=len(subjects))
    failures = failures_by_scan(report.failed, subjects, discovery.unusable, shard_size)
    tracebacks = failures_by_scan(report.tracebacks, subjects, shard_size=shard_size)
    write_failures(folder / "failed.tsv", failures,
                   {scan: text for scan, (_, text) in tracebacks.items()})
    code = _summarise(failures, output_dir, subjects)
    finish_level(options, "participant", phases, participants_tsv)
    return code


def _build(options, subjects, output_dir, shard_size=1):
    """The participant workflow (and its graph); returns it and the report folder."""
    from functools import partial

    from anatcl_nipype.cli.execution import configure_nipype
    from anatcl_nipype.cli.report import report_dir
    from anatcl_nipype.workflows.base import init_anatcl_participant_wf

    configure_nipype(options.work_dir, options.verbose)
    encoding_nodes = -(-len(subjects) // shard_size)  # one per participant, or per shard
    build = partial(init_anatcl_participant_wf, output_dir=output_dir, omp_nthreads=(
        options.omp_nthreads or max(1, options.nprocs // max(1, min(options.nprocs,
                                                                    encoding_nodes)))),
        encoder=options.encoder_options())
    inputs = [subject.as_inputs() for subject in subjects]
    workflow = build(subjects=inputs, shard_size=shard_size)
    folder = report_dir(output_dir)  # methods.md is the report's, written with it at the end
    if options.write_graph:  # the first participant's branch; sharded: a shard of two
        draw_graph(build(subjects=inputs[:2], shard_size=shard_size) if shard_size > 1 else
                   workflow.get_node(workflow.list_node_names()[0].split(".")[0]),
                   folder / "graph.svg")
    return workflow, folder


#: ``--shard-size`` when the maps are encoded on CUDA: a batch that keeps a GPU busy.
CUDA_SHARD_SIZE = 64


def choose_shard_size(options, n_scans):
    """``--shard-size``, or the default for the device (:data:`CUDA_SHARD_SIZE` on CUDA, 1,
    one encoding node per participant, on a CPU); says the choice in one line."""
    size, why = options.shard_size, f"--shard-size {options.shard_size}"
    if size is None:
        cuda = str(options.device).startswith("cuda") or (options.device == "auto"
                                                          and gpu_visible())
        size = CUDA_SHARD_SIZE if cuda else 1
        why = f"the default on {'CUDA' if cuda else 'a CPU'}; set with --shard-size"
    if size <= 1:
        print(f"Shards: off, one encoding node per participant ({why})", flush=True)
    else:
        print(f"Shards: {-(-n_scans // size)} encoding node(s) of up to {size} scans each "
              f"({why})", flush=True)
    return size


def gpu_visible():
    """Whether this process sees an NVIDIA GPU, asked of the driver, not of torch (which
    would set up CUDA in the process MultiProc starts its workers from).

    >>> isinstance(gpu_visible(), bool)
    True
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(Path("/proc/driver/nvidia/gpus").glob("*"))


def ensure_weights(options):
    """Make sure the weights are here before nodes start (download once, with progress)."""
    if options.weights is not None:
        from anatcl_nipype.encoder.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(options.weights)  # refuse a bad file now, not per node
        if checkpoint.options.get("random"):
            warn_random_weights(Path(options.weights).absolute())
        return
    from anatcl_nipype.encoder.weights import fetch_weights

    encoder = options.encoder_options()
    for fold in encoder.folds or [encoder.fold]:
        print(f"AnatCL weights: descriptor {encoder.descriptor}, fold {fold}")
        fetch_weights(encoder.descriptor, fold, progress=sys.stdout.isatty())


def warn_random_weights(path):
    """Say loudly that ``path`` holds seeded random weights (the sidecars record it too)."""
    banner = "=" * 78
    print("\n".join([
        banner,
        f"  {path} holds SEEDED RANDOM weights, not AnatCL's pretrained ones.",
        "  The embeddings carry no learned anatomy: predictions from them show the pipeline",
        "  works, not what AnatCL can do. Every sidecar records \"random\": true. For real",
        "  weights run `anatcl-nipype weights fetch`, or pass --weights with a trained file.",
        banner]), flush=True)


def draw_graph(workflow, destination):
    """Draw ``workflow`` (colored, SVG) into ``destination``, without a shell."""
    from anatcl_nipype.graphs import draw_workflow_graph

    draw_workflow_graph(workflow, destination, graph2use="colored")


def rebuild_report(options):
    """``--reports-only``: rewrite the report from the outputs already there."""
    from anatcl_nipype.cli.report import write_report
    from anatcl_nipype.errors import AnatCLError

    output_dir = Path(options.output_dir).absolute()
    if not output_dir.is_dir():
        raise AnatCLError(f"{output_dir}: no such output folder; --reports-only rebuilds the "
                          "report of a folder a run already wrote")
    participants_tsv = find_participants_tsv(options.cat12_dir, options.participants)
    print(f"Rebuilding the report of {output_dir} (nothing is recomputed)")
    print(f"Report: {write_report(output_dir, participants_tsv, work_dir=options.work_dir)}")
    return EXIT_OK


def failures_by_scan(failed, subjects, unusable=(), shard_size=1):
    """``{scan id: (input path, reason)}`` from the run's failures (keyed by participant or
    by a node's name) and the maps that gave no id (keyed by :func:`unnamed_id`).

    A failure is traced to its scan through the branch's name, so ``failed.tsv`` and the
    summary name the participant (and session) and the input, never a node; a shard node
    that failed as a whole (``shard_size`` above 1) fails each scan of its shard.
    """
    from anatcl_nipype.bids import unnamed_id
    from anatcl_nipype.workflows.base import (
        scan_of_branch,
        shard_number,
        shards_of,
        single_subject_wf_name,
    )

    branches = {scan_of_branch(single_subject_wf_name(s.as_inputs())): s for s in subjects}
    shards = shards_of(subjects, shard_size) if shard_size > 1 else []
    failures = {}
    for key, reason in failed.items():
        number = shard_number(key)
        if number is not None and number <= len(shards):
            for subject in shards[number - 1]:
                failures.setdefault(subject.scan_id, (subject.gm_modulated, reason))
            continue
        subject = branches.get(key) or branches.get(scan_of_branch(key))
        scan, path = (subject.scan_id, subject.gm_modulated) if subject else (key, "")
        failures.setdefault(scan, (path, reason))
    for path, reason in unusable:
        failures.setdefault(unnamed_id(path), (path, reason))
    return failures


def write_failures(path, failures, tracebacks=None):
    """``failed.tsv``: participant (and session), input map, reason and traceback excerpt
    (``tracebacks``: by scan id) of every failure."""
    from anatcl_nipype.files import write_failures_tsv
    from anatcl_nipype.reports.collect import encode_traceback

    tracebacks = tracebacks or {}
    write_failures_tsv(path, [(scan, source, reason, encode_traceback(tracebacks.get(scan, "")))
                              for scan, (source, reason) in sorted(failures.items())])


def _count(subjects):
    """``12 participant(s)``, or with sessions ``24 scan(s) of 12 participant(s)``."""
    participants = len({s.participant_id for s in subjects})
    if all(s.session_id is None for s in subjects):
        return f"{len(subjects)} participant(s)"
    return f"{len(subjects)} scan(s) of {participants} participant(s)"


def _summarise(failures, output_dir, subjects):
    done = [s for s in subjects if s.scan_id not in failures]
    print(f"\nDone: {len(done)} of {_count(subjects)} written to {output_dir}")
    if failures:
        print(f"Failed: {len(failures)}")
        for scan, (source, reason) in sorted(failures.items()):
            # a reason that names no file gets the scan's input
            named = reason if "/" in reason or not source else f"{reason} (input: {source})"
            print(f"  {scan}: {named}")
        return EXIT_PARTIAL
    return EXIT_OK
