"""The ``anatcl-nipype`` command: participant and group levels, the demo, the weights cache.

Every error a user can cause ends in one line on stderr and exit code 1 (2 for bad usage),
with the traceback only under ``-v``.
"""

import argparse
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from anatcl_nipype.cli.report import report_dir, write_report
from anatcl_nipype.cli.parser import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, build_parser
from anatcl_nipype.errors import AnatCLError


def main(argv=None):
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    try:
        if argv[:1] == ["demo"]:
            from anatcl_nipype.cli.demo import run_demo

            return run_demo(argv[1:])
        if argv[:1] == ["weights"]:
            return run_weights_command(argv[1:])
        args = build_parser().parse_args(argv)
        if args.analysis_level == "participant":
            return run_participant_level(args)
        from anatcl_nipype.cli.group import run_group_level

        return run_group_level(args)
    except AnatCLError as error:
        return _fail(error, verbose)
    except (OSError, RuntimeError) as error:
        return _fail(error, verbose, prefix=f"{type(error).__name__}: ")
    except KeyboardInterrupt:
        print("anatcl-nipype: interrupted; re-run with the same --work-dir to resume",
              file=sys.stderr)
        return EXIT_ERROR


def _fail(error, verbose, prefix=""):
    if verbose:
        traceback.print_exc()
    print(f"anatcl-nipype: error: {prefix}{error}", file=sys.stderr)
    return EXIT_ERROR


def prepare_output_dir(output_dir):
    """Create ``output_dir`` and check it is writable, before any work starts."""
    output_dir = Path(output_dir).absolute()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnatCLError(f"{output_dir}: cannot create the output folder ({error.strerror})") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise AnatCLError(f"{output_dir}: the output folder is not writable; choose another")
    return output_dir


def ensure_weights(args):
    """Make sure the weights are here before nodes start (download once, with progress)."""
    if args.weights is not None:
        from anatcl_nipype.encoder.checkpoint import load_checkpoint

        load_checkpoint(args.weights)  # refuse a bad file now, not in every node
        return
    from anatcl_nipype.encoder.weights import fetch_weights

    print(f"AnatCL weights: descriptor {args.descriptor}, fold {args.fold}")
    fetch_weights(args.descriptor, args.fold, progress=sys.stdout.isatty())


def encoder_options(args):
    """The encoding options the workflows take, from parsed arguments."""
    return dict(weights=str(args.weights.absolute()) if args.weights else None,
                descriptor=args.descriptor, fold=args.fold, precision=args.precision,
                device=args.device)


def run_participant_level(args):
    """Encode every participant's map and write BIDS derivatives; print a summary."""
    from anatcl_nipype.inputs import find_cat12_subjects
    from anatcl_nipype.cli.execution import RunReport, configure_nipype, run_workflow
    from anatcl_nipype.workflows.base import init_anatcl_participant_wf

    subjects = find_cat12_subjects(args.cat12_dir, args.participant_label)
    output_dir = prepare_output_dir(args.output_dir)
    ensure_weights(args)
    configure_nipype(args.work_dir, args.verbose)
    workflow = init_anatcl_participant_wf(
        subjects=[asdict(s) for s in subjects], output_dir=output_dir,
        omp_nthreads=max(1, args.nprocs // max(1, min(args.nprocs, len(subjects)))),
        **encoder_options(args))
    folder = report_dir(output_dir)
    write_text_atomic(folder / "methods.md", workflow.visit_desc())
    if args.write_graph:
        draw_graph(workflow.get_node(workflow.list_node_names()[0].split(".")[0]),
                   args.work_dir, folder / "graph.svg")
    print(f"Encoding {len(subjects)} participant(s) from {args.cat12_dir} into {output_dir}")
    report = run_workflow(workflow, args, RunReport(total_subjects=len(subjects)))
    write_failures(folder / "failed.tsv", report.failed, subjects)
    code = _summarise(report, output_dir, subjects)
    print(f"Report: {write_report(output_dir, find_participants_tsv(args))}")
    return code


def draw_graph(workflow, work_dir, destination):
    """Draw ``workflow`` (colored, SVG) and copy the picture to ``destination``."""
    import shutil

    workflow.base_dir = str(Path(work_dir).absolute() / "graphs")
    drawn = workflow.write_graph(graph2use="colored", format="svg", simple_form=True)
    shutil.copyfile(Path(drawn).with_suffix(".svg"), destination)


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically."""
    from anatcl_nipype.files import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_failures(path, failed, subjects):
    """``failed.tsv``: participant_id, input map and reason of every failed participant."""
    from anatcl_nipype.files import write_failures_tsv

    inputs = {s.participant_id: s.gm_modulated for s in subjects}
    write_failures_tsv(path, [(pid, inputs.get(pid, ""), reason)
                              for pid, reason in sorted(failed.items())])


def find_participants_tsv(args):
    """``--participants``, else the first participants.tsv in or above the CAT12 folder."""
    if getattr(args, "participants", None):
        if not args.participants.is_file():
            raise AnatCLError(f"{args.participants}: no such participants.tsv")
        return args.participants.absolute()
    folder = Path(args.cat12_dir).absolute()
    for candidate in [folder, *folder.parents][:4]:
        if (candidate / "participants.tsv").is_file():
            return candidate / "participants.tsv"
    return None


def _summarise(report, output_dir, subjects):
    done = [s.participant_id for s in subjects if s.participant_id not in report.failed]
    print(f"\nDone: {len(done)} of {len(subjects)} participant(s) written to {output_dir}")
    if report.failed:
        print(f"Failed: {len(report.failed)}")
        for participant, reason in sorted(report.failed.items()):
            print(f"  {participant}: {reason}")
        return EXIT_PARTIAL
    return EXIT_OK


def run_weights_command(argv):
    """``anatcl-nipype weights list|fetch|verify [--descriptor D] [--fold K]``."""
    from anatcl_nipype.encoder import weights

    parser = argparse.ArgumentParser(prog="anatcl-nipype weights",
                                     description="The released AnatCL weights and their cache "
                                                 "($ANATCL_NIPYPE_HOME/weights).")
    parser.add_argument("action", choices=("list", "fetch", "verify"))
    parser.add_argument("--descriptor", choices=weights.DESCRIPTORS, nargs="+",
                        default=list(weights.DESCRIPTORS))
    parser.add_argument("--fold", type=int, choices=weights.FOLDS, nargs="+",
                        default=list(weights.FOLDS))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    chosen = [(d, f) for d in args.descriptor for f in args.fold]
    if args.action == "list":
        print(f"cache: {weights.cache_dir()}")
        for entry in weights.list_weights():
            if (entry["descriptor"], entry["fold"]) in chosen:
                state = entry["path"] or "not downloaded"
                print(f"{entry['descriptor']:6} fold {entry['fold']}  {state}\n    {entry['url']}")
        return EXIT_OK
    for descriptor, fold in chosen:
        if args.action == "fetch":
            path = weights.fetch_weights(descriptor, fold, progress=sys.stdout.isatty())
            print(f"{descriptor} fold {fold}: {path}")
        elif weights.cached_weights_path(descriptor, fold).is_file():
            print(f"{descriptor} fold {fold}: ok, sha256 "
                  f"{weights.verify_cached_weights(descriptor, fold)}")
        else:
            print(f"{descriptor} fold {fold}: not downloaded")
    return EXIT_OK

