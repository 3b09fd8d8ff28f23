"""Run a Nipype workflow for the command line: plugin, progress lines, failures with reasons."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

#: How often Nipype's scheduler looks for finished nodes (its default, 2 s, is long next to
#: an encoding node's ~0.5 s; see benchmarks/RESULTS.md).
POLL_SECONDS = 0.2


@dataclass
class RunReport:
    """What happened to each node that matters to a person: done and failed (with reasons)."""

    total_subjects: int = 0
    done: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)  # participant_id -> reason


class ProgressPrinter:
    """Nipype status callback printing one line per finished or failed subject step."""

    def __init__(self, report, watched=("anatcl_encode",), stream=sys.stdout):
        self.report = report
        self.watched = watched
        self.stream = stream

    def __call__(self, node, status):
        if status not in ("end", "exception"):
            return
        participant = _participant_of(node)
        if status == "exception":
            self.report.failed[participant or node.fullname] = _failure_reason(node)
            print(f"  FAILED {participant or node.fullname}: "
                  f"{self.report.failed[participant or node.fullname]}", file=self.stream)
        elif node.name in self.watched and participant:
            self.report.done.append(participant)
            total = self.report.total_subjects or "?"
            print(f"  [{len(self.report.done)}/{total}] {participant}: {node.name} done",
                  file=self.stream, flush=True)


def _participant_of(node):
    """``sub-<l>`` or ``sub-<l>_ses-<s>`` of the participant branch ``node`` is in, or None."""
    from anatcl_nipype.workflows.base import scan_of_branch

    return scan_of_branch(node.fullname)


def _failure_reason(node):
    """The last line of the node's traceback: the AnatCLError message where there is one."""
    from nipype.utils.filemanip import loadpkl

    result_file = Path(node.output_dir()) / f"result_{node.name}.pklz"
    try:
        traceback = loadpkl(result_file).runtime.traceback
    except Exception:  # no result written: the node died before Nipype could record why
        return "crashed; see the crash file in the work folder"
    lines = [line.strip() for line in str(traceback).splitlines() if line.strip()]
    return lines[-1].split(": ", 1)[-1] if lines else "crashed"


def configure_nipype(work_dir, verbose):
    """Quiet Nipype unless verbose (failures are reported by :class:`ProgressPrinter`);
    crash files as text in ``<work_dir>/crashes``."""
    from nipype import config, logging

    config.set("execution", "crashdump_dir", str(Path(work_dir).absolute() / "crashes"))
    config.set("execution", "crashfile_format", "txt")
    config.set("execution", "remove_unnecessary_outputs", "false")
    config.set("execution", "poll_sleep_duration", str(POLL_SECONDS))
    for logger in ("workflow", "interface", "utils"):
        config.set("logging", f"{logger}_level", "INFO" if verbose else "CRITICAL")
    logging.update_logging(config)


def run_workflow(workflow, options, report):
    """Run ``workflow`` with the plugin the user chose; fill ``report``; return it."""
    plugin = options.plugin or ("MultiProc" if options.nprocs > 1 else "Linear")
    plugin_args = dict(options.plugin_args)
    if plugin == "MultiProc":
        plugin_args.setdefault("n_procs", options.nprocs)
    plugin_args["status_callback"] = ProgressPrinter(report)
    workflow.base_dir = str(Path(options.work_dir).absolute())
    try:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
    except RuntimeError:
        if not report.failed:  # not a node failure: something else went wrong
            raise
    return report


def prepare_output_dir(output_dir):
    """Create ``output_dir`` and check it is writable, before any work starts."""
    import os

    from anatcl_nipype.errors import AnatCLError

    output_dir = Path(output_dir).absolute()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnatCLError(f"{output_dir}: cannot create the output folder ({error.strerror})") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise AnatCLError(f"{output_dir}: the output folder is not writable; choose another")
    return output_dir


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically."""
    from anatcl_nipype.files import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(text)
