"""Never silent: each phase of a run is timed, and while one runs a line is printed whenever
nothing was printed for :data:`HEARTBEAT_SECONDS`; the run ends with elapsed time per phase.

>>> import io
>>> phases = Phases(stream=io.StringIO())
>>> with phases("discovery"):
...     pass
>>> list(phases.seconds)
['discovery']
"""

import contextlib
import sys
import threading
import time
from datetime import datetime, timezone

#: The longest a run stays silent, in seconds.
HEARTBEAT_SECONDS = 5.0


class Phases:
    """The phases of one run, in order, with their elapsed seconds.

    ``with phases("encoding", doing=..., heard=...):`` times the block; while it runs a
    ``  encoding: still working (12 s)`` line (plus ``doing()``, e.g. the running nodes) is
    printed whenever nothing was printed for ``interval`` seconds, by :meth:`say` or by
    whoever ``heard()`` reports the time of (a monotonic clock reading).
    """

    def __init__(self, stream=None, interval=HEARTBEAT_SECONDS):
        self.stream = stream or sys.stdout
        self.interval = interval
        self.seconds = {}
        self.steps = {}  # kind of step -> summed node seconds (set after a workflow ran)
        self.started = datetime.now(timezone.utc)
        self.last_line = time.monotonic()

    def say(self, text):
        """Print ``text`` now (flushed) and restart the silence clock."""
        self.stream.write(f"{text}\n")  # one write: lines of two threads never interleave
        self.stream.flush()
        self.last_line = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, name, doing=None, heard=None):
        start = time.monotonic()
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(name, start, stop, doing, heard),
                                daemon=True, name=f"anatcl-progress-{name}")
        beat.start()
        try:
            yield self
        finally:
            stop.set()
            beat.join()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start

    def _beat(self, name, start, stop, doing, heard):
        poll = min(0.5, self.interval / 4)
        while not stop.wait(poll):
            last = max(self.last_line, heard() if heard else 0.0)
            if time.monotonic() - last >= self.interval - poll:  # never more than interval
                detail = doing() if doing else ""
                self.say(f"  {name}: still working ({time.monotonic() - start:.0f} s)"
                         + (f"; {detail}" if detail else ""))

    def recorded(self):
        """The phases and, after them, the summed node time of each kind of step
        (``steps``, e.g. from the workflow run: they overlap when nodes run in parallel)."""
        return {**self.seconds, **{f"node time: {kind}": seconds
                                   for kind, seconds in self.steps.items()}}

    def summary(self):
        """``Elapsed: discovery 0.1 s, start-up 2.0 s, ...; total 9.3 s``.

        >>> phases = Phases()
        >>> phases.seconds = {"discovery": 0.12, "encoding": 61.0}
        >>> phases.summary()
        'Elapsed: discovery 0.1 s, encoding 61.0 s; total 61.1 s'
        """
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        text = f"Elapsed: {parts}; total {sum(self.seconds.values()):.1f} s"
        if self.steps:
            text += "\n  node time: " + ", ".join(f"{kind} {seconds:.1f} s"
                                                  for kind, seconds in self.steps.items())
        return text


def run_timed(workflow, options, phases, phase, total_subjects=0):
    """Run ``workflow`` (:func:`~anatcl_nipype.cli.execution.run_workflow`) as the phase
    ``phase``, a line at least every few seconds naming the running nodes; keep the node
    time per kind of step in ``phases.steps``; return the run's report."""
    from anatcl_nipype.cli.execution import RunReport, run_workflow

    report = RunReport(total_subjects=total_subjects)
    with phases(phase, doing=report.describe_running, heard=lambda: report.last_line):
        run_workflow(workflow, options, report)
    phases.steps = dict(report.step_seconds)
    return report


def finish_level(options, level, phases, participants_tsv):
    """The end of a level: record the run, write the report (timed), print the time per
    phase."""
    from anatcl_nipype.cli.report import record_level, write_report

    record_level(options, level, phases)
    with phases("report"):
        page = write_report(options.output_dir, participants_tsv, work_dir=options.work_dir)
    phases.say(f"Report: {page}")
    phases.say(phases.summary())
