"""The ``anatcl-nipype`` command: parse the arguments, dispatch to a level; nothing else.

``participant`` and ``group`` (:mod:`.participant`, :mod:`.group`) take an
:class:`~anatcl_nipype.cli.parser.Options`; ``demo`` and ``weights`` parse their own
arguments. Every error a user can cause ends in one line on stderr and exit code 1 (2 for
bad usage, e.g. options contradicting a probe card), with the traceback only under ``-v``;
an interrupted run (SIGINT/SIGTERM) prints one line and exits 130/143.
"""

import signal
import sys
import traceback

from anatcl_nipype.cli.locking import work_dir_lock
from anatcl_nipype.cli.parser import EXIT_ERROR, EXIT_USAGE, UsageError, parse_options
from anatcl_nipype.cli.paths import check_paths
from anatcl_nipype.cli.supervision import (
    INTERRUPTED_EXIT,
    INTERRUPTED_MESSAGE,
    signals_interrupt_run,
)
from anatcl_nipype.errors import AnatCLError


def main(argv=None):
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    try:
        return _dispatch(argv)
    except UsageError as error:
        return _fail(error, verbose, code=EXIT_USAGE)
    except AnatCLError as error:
        return _fail(error, verbose)
    except (OSError, RuntimeError) as error:
        return _fail(error, verbose, prefix=f"{type(error).__name__}: ")
    except KeyboardInterrupt as interrupt:  # RunInterrupted (SIGINT/SIGTERM) or Ctrl-C
        print(f"anatcl-nipype: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return getattr(interrupt, "exit_code", INTERRUPTED_EXIT[signal.SIGINT])


def _dispatch(argv):
    if argv[:1] == ["demo"]:
        from anatcl_nipype.cli.demo import run_demo

        return run_demo(argv[1:])
    if argv[:1] == ["weights"]:
        from anatcl_nipype.cli.weights import run_weights_command

        return run_weights_command(argv[1:])
    options = parse_options(argv)
    check_paths(options)
    with signals_interrupt_run(), \
            work_dir_lock(options.work_dir, wait=options.wait_for_lock):  # before any work
        if options.analysis_level == "participant":
            from anatcl_nipype.cli.participant import run_participant_level

            return run_participant_level(options)
        from anatcl_nipype.cli.group import run_group_level

        return run_group_level(options)


def _fail(error, verbose, prefix="", code=EXIT_ERROR):
    if verbose:
        traceback.print_exc()
    print(f"anatcl-nipype: error: {prefix}{one_line(str(error))}", file=sys.stderr)
    return code


def one_line(text):
    r"""``text`` on one line: line breaks become spaces (with the indentation after them),
    other control characters are escaped.

    >>> print(one_line("cannot read a\n  b.pth\tnow"))
    cannot read a b.pth\tnow
    """
    text = " ".join(line.strip() for line in text.splitlines())
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
