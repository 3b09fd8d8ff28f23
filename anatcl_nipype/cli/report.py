"""The report of an anatcl-nipype output folder, for the command line.

:func:`write_report` rewrites ``<output_dir>/anatcl/report.html`` (and ``methods.md``)
from what the folder holds; every level calls it at its end. The work is done by
:mod:`anatcl_nipype.reports` (nireports, matplotlib; nilearn for relevance maps), imported
only here, inside the call, so the command line's start-up never pays for it. The command
line records each run with :func:`anatcl_nipype.reports.run_record.record_run` (re-exported
here) so that the report can show the command, times, phases and software versions.
"""

from pathlib import Path

from anatcl_nipype.reports import REPORT_DIR
from anatcl_nipype.reports.run_record import record_run

__all__ = ["REPORT_DIR", "record_level", "record_run", "report_dir", "write_report"]


def report_dir(output_dir):
    """``<output_dir>/anatcl``: the report, methods, graph, failures and run records."""
    folder = Path(output_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_report(output_dir, participants_tsv=None, work_dir=None):
    """Write ``<output_dir>/anatcl/report.html`` and ``methods.md``; return the page's
    absolute path (the command line prints every path absolute).

    ``participants_tsv`` colours the embedding overview; ``work_dir`` keeps the reportlets
    and a cache of participant figures (redrawn only when a map changes) between runs.
    """
    from anatcl_nipype.reports.assemble import build_report

    output_dir = Path(output_dir).absolute()
    report_dir(output_dir)
    return build_report(output_dir, participants_tsv, work_dir=work_dir)


def record_level(options, level, phases):
    """Record the run of ``level`` (``participant``/``group``) that ``phases`` timed
    (:class:`~anatcl_nipype.cli.progress.Phases`): ``<output_dir>/anatcl/run-<level>.json``.

    The command is the one typed (``options.argv``), else the one that runs the same level.
    """
    from datetime import datetime, timezone

    from anatcl_nipype.cli.supervision import plugin_settings

    argv = options.argv or [str(options.cat12_dir), str(options.output_dir), level]
    plugin, plugin_args = plugin_settings(options.plugin, options.plugin_args, options.nprocs,
                                          options.mem_gb)
    return record_run(options.output_dir, level, argv, phases.started,
                      datetime.now(timezone.utc), phases.recorded(), plugin, plugin_args)
