"""Run a Nipype workflow for the command line: plugin, progress lines, failures with reasons."""

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: How often Nipype's scheduler looks for finished nodes (its default, 2 s, is long next to
#: an encoding node's ~0.5 s; see benchmarks/RESULTS.md).
POLL_SECONDS = 0.2


@dataclass
class RunReport:
    """What happened to each node that matters to a person: done and failed (with reasons
    and tracebacks), what is running now, and node time per kind of step."""

    total_subjects: int = 0
    done: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)  # participant_id -> reason
    tracebacks: dict = field(default_factory=dict)  # participant_id -> traceback text
    running: dict = field(default_factory=dict)  # node's full name -> monotonic start
    step_seconds: dict = field(default_factory=dict)  # kind of step -> summed node seconds
    last_line: float = 0.0  # monotonic time of the last progress line printed

    def finished(self):
        """How many participants are finished, well or not."""
        return len(set(self.done) | set(self.failed))

    def describe_running(self):
        """``running: sub-03 anatcl_encode, fit_probe`` (the heartbeat's detail)."""
        from anatcl_nipype.workflows.base import scan_of_branch

        names = [" ".join(filter(None, (scan_of_branch(name), name.rsplit(".", 1)[-1])))
                 for name in sorted(self.running)]
        return f"running: {', '.join(names[:4])}" + (" ..." if len(names) > 4 else "") \
            if names else ""


#: Kinds of step the summary times, by a word in the node's name (first match wins; sinks
#: are the ``ds_*`` nodes).
STEP_KINDS = (("encode", "encoding"), ("regional", "regional"), ("roi", "regional"),
              ("relevance", "relevance maps"), ("probe", "probe"))


def step_kind(node_name):
    """The kind of step a node does, for the summary.

    >>> step_kind("anatcl_encode"), step_kind("ds_embedding"), step_kind("bids_source")
    ('encoding', 'sinks', 'other steps')
    """
    if node_name.startswith("ds_"):
        return "sinks"
    return next((kind for word, kind in STEP_KINDS if word in node_name), "other steps")


class ProgressPrinter:
    """Nipype status callback: one line per finished or failed participant, counting both
    (``[3/5] sub-03 failed: <reason>``), or per finished shard of the sharded path
    (``[4/5] anatcl_encode_shard_2 done: 2 of 2 scan(s) encoded (sub-03 .. sub-04)``),
    and the running nodes and time per kind of step
    in the report (for the heartbeat and the summary).

    It pickles (Nipype pickles a MapNode with the plugin's arguments, this callback among
    them): without a ``stream`` it writes to the ``sys.stdout`` of the moment, never holding it.

    >>> import pickle, types
    >>> copy = pickle.loads(pickle.dumps(ProgressPrinter(RunReport(total_subjects=2))))
    >>> copy(types.SimpleNamespace(name="anatcl_encode",
    ...                            fullname="wf.single_subject_01_wf.anatcl_encode"), "end")
      [1/2] sub-01: anatcl_encode done
    """

    def __init__(self, report, watched=("anatcl_encode",), stream=None):
        self.report = report
        self.watched = watched
        self.stream = stream  # None: sys.stdout, looked up at each line

    def __call__(self, node, status):
        if status == "start":
            self.report.running[node.fullname] = time.monotonic()
            return
        started = self.report.running.pop(node.fullname, None)
        if started is not None:
            kind = step_kind(node.name)
            self.report.step_seconds[kind] = (self.report.step_seconds.get(kind, 0.0)
                                              + time.monotonic() - started)
        from anatcl_nipype.workflows.base import encoded_scans, shard_scans

        participant = _participant_of(node)
        shard = None if participant else shard_scans(node)  # a shard node's scans
        if status == "exception":
            key = participant or node.fullname
            self.report.tracebacks[key], self.report.failed[key] = _failure_of(node)
            if participant:  # another step's failure is said once: in the summary or error
                self._say(f"{key} failed: {self.report.failed[key]}")
            elif shard:
                self._say(f"{node.name} failed ({len(shard)} scans): {self.report.failed[key]}")
        elif status == "end" and node.name in self.watched and participant:
            self.report.done.append(participant)
            self._say(f"{participant}: {node.name} done")
        elif status == "end" and shard:
            encoded = encoded_scans(node)
            self.report.done.extend(encoded)
            scans = shard[0] if len(shard) == 1 else f"{shard[0]} .. {shard[-1]}"
            self._say(f"{node.name} done: {len(encoded)} of {len(shard)} scan(s) encoded "
                      f"({scans})")

    def _say(self, text):
        counter = f"[{self.report.finished()}/{self.report.total_subjects or '?'}] "
        stream = sys.stdout if self.stream is None else self.stream
        stream.write(f"  {counter}{text}\n")  # one write: never split by the heartbeat
        stream.flush()
        self.report.last_line = time.monotonic()


def _participant_of(node):
    """``sub-<l>`` or ``sub-<l>_ses-<s>`` of the participant branch ``node`` is in, or None."""
    from anatcl_nipype.workflows.base import scan_of_branch

    return scan_of_branch(node.fullname)


def _failure_of(node):
    """The node's traceback and its last line (the AnatCLError message where there is one)."""
    from nipype.utils.filemanip import loadpkl

    result_file = Path(node.output_dir()) / f"result_{node.name}.pklz"
    try:
        traceback = str(loadpkl(result_file).runtime.traceback)
    except Exception:  # no result written: the node died before Nipype could record why
        return "", "crashed; see the crash file in the work folder"
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    return traceback, (lines[-1].split(": ", 1)[-1] if lines else "crashed")


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


def start_workers_early(options):
    """Start the forkserver MultiProc's workers will come from, when the run uses one, so
    that its imports overlap this process's start-up (checking weights, building)."""
    from anatcl_nipype.cli.supervision import plugin_settings, start_worker_template

    start_worker_template(*plugin_settings(options.plugin, options.plugin_args,
                                           options.nprocs, options.mem_gb))


def run_workflow(workflow, options, report):
    """Run ``workflow`` with the plugin the user chose; fill ``report``; return it.

    The work folder is locked for the run (a second run refuses or waits); SIGINT/SIGTERM
    raise :class:`~anatcl_nipype.cli.supervision.RunInterrupted` after the workers are
    stopped and partial outputs removed; any other way the run ends early stops the
    workers too.
    """
    from anatcl_nipype.cli.locking import work_dir_lock
    from anatcl_nipype.cli.supervision import (
        GuardedCallback,
        RunInterrupted,
        SchedulerError,
        descendants,
        first_crash_message,
        make_runner,
        pending_interrupt,
        plugin_settings,
        remove_partial_outputs,
        signals_interrupt_run,
        stop_workers,
    )

    plugin, plugin_args = plugin_settings(options.plugin, options.plugin_args, options.nprocs,
                                          options.mem_gb)
    plugin_args["status_callback"] = GuardedCallback(ProgressPrinter(report))
    workflow.base_dir = str(Path(options.work_dir).absolute())
    workflow.config["execution"]["stop_on_first_crash"] = str(
        options.stop_on_first_crash).lower()
    with work_dir_lock(options.work_dir, wait=options.wait_for_lock), \
            signals_interrupt_run():
        spared = descendants(os.getpid())  # not started by this run: left alone
        runner = make_runner(plugin, plugin_args)
        try:
            workflow.run(plugin=runner, plugin_args=plugin_args)
            if pending_interrupt():  # caught by Nipype inside a node of this process
                raise pending_interrupt()
        except RunInterrupted:
            stop_workers(runner, spared)
            remove_partial_outputs(options.output_dir)
            raise
        except BaseException as error:
            stop_workers(runner, spared)
            if pending_interrupt():
                remove_partial_outputs(options.output_dir)
                raise pending_interrupt() from None
            if not (isinstance(error, RuntimeError) and report.failed):
                raise  # not a node failure: something else went wrong
            if options.stop_on_first_crash:
                raise SchedulerError(first_crash_message(report)) from None
    return report


def prepare_output_dir(output_dir):
    """Create ``output_dir`` and check it is writable, before any work starts."""
    from anatcl_nipype.errors import AnatCLError

    output_dir = Path(output_dir).absolute()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnatCLError(f"{output_dir}: cannot create the output folder ({error.strerror}); "
                          "choose another") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise AnatCLError(f"{output_dir}: the output folder is not writable; choose another")
    return output_dir

