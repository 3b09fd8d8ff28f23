"""The ``anatcl-nipype`` command: parse the arguments, dispatch to a level; nothing else.

``participant`` and ``group`` (:mod:`.participant`, :mod:`.group`) take an
:class:`~anatcl_nipype.cli.parser.Options`; ``demo`` and ``weights`` parse their own
arguments. Every error a user can cause ends in one line on stderr and exit code 1 (2 for
bad usage, e.g. options contradicting a probe card), with the traceback only under ``-v``.
"""

import sys
import traceback

from anatcl_nipype.cli.parser import EXIT_ERROR, EXIT_USAGE, UsageError, parse_options
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
    except KeyboardInterrupt:
        print("anatcl-nipype: interrupted; re-run with the same --work-dir to resume",
              file=sys.stderr)
        return EXIT_ERROR


def _dispatch(argv):
    if argv[:1] == ["demo"]:
        from anatcl_nipype.cli.demo import run_demo

        return run_demo(argv[1:])
    if argv[:1] == ["weights"]:
        from anatcl_nipype.cli.weights import run_weights_command

        return run_weights_command(argv[1:])
    options = parse_options(argv)
    if options.analysis_level == "participant":
        from anatcl_nipype.cli.participant import run_participant_level

        return run_participant_level(options)
    from anatcl_nipype.cli.group import run_group_level

    return run_group_level(options)


def _fail(error, verbose, prefix="", code=EXIT_ERROR):
    if verbose:
        traceback.print_exc()
    print(f"anatcl-nipype: error: {prefix}{error}", file=sys.stderr)
    return code
