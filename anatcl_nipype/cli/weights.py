"""``anatcl-nipype weights list|fetch|verify``: the released AnatCL weights and their cache."""

import argparse
import sys

from anatcl_nipype.cli.parser import EXIT_OK, EXIT_USAGE
from anatcl_nipype.options import DESCRIPTORS, FOLDS

ACTIONS = {
    "list": "per descriptor and fold: the download URL, the exact path to place the file at "
            "(by hand, offline) and whether it is present and verified",
    "fetch": "download the chosen checkpoints into the cache (skips those present)",
    "verify": "re-check the cached checkpoints against their recorded SHA-256",
}


def weights_parser():
    """The parser of ``anatcl-nipype weights``."""
    actions = "\n".join(f"  {name:7} {text}" for name, text in ACTIONS.items())
    parser = argparse.ArgumentParser(
        prog="anatcl-nipype weights",
        description="The ten released AnatCL checkpoints (descriptor global|local, folds 0-4) "
                    "and their cache ($ANATCL_NIPYPE_HOME/weights).",
        epilog=f"actions:\n{actions}\n\nexample: anatcl-nipype weights fetch --descriptor "
               "global --fold 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=tuple(ACTIONS), nargs="?",
                        help="what to do: list, fetch or verify (see below)")
    parser.add_argument("--descriptor", choices=DESCRIPTORS, nargs="+", default=list(DESCRIPTORS),
                        help="only these descriptors (default: both)")
    parser.add_argument("--fold", type=int, choices=FOLDS, nargs="+", default=list(FOLDS),
                        metavar="{0..4}", help="only these folds (default: all five)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="tracebacks on errors")
    return parser


def run_weights_command(argv):
    """``anatcl-nipype weights list|fetch|verify [--descriptor D ...] [--fold K ...]``."""
    from anatcl_nipype.encoder import weights

    parser = weights_parser()
    args = parser.parse_args(argv)
    if args.action is None:
        parser.print_usage(sys.stderr)
        print("anatcl-nipype weights: say what to do: list (where each file goes, what is "
              "here), fetch (download) or verify (re-check the cache); --help for more",
              file=sys.stderr)
        return EXIT_USAGE
    chosen = [(d, f) for d in args.descriptor for f in args.fold]
    if args.action == "list":
        print(f"Weights cache: {weights.cache_dir()}")
        for entry in weights.list_weights():  # only the chosen files are read and hashed
            if (entry["descriptor"], entry["fold"]) in chosen:
                state = weights.weights_state(entry["descriptor"], entry["fold"])
                print(f"{entry['descriptor']} fold {entry['fold']}: {state}\n"
                      f"    URL:      {entry['url']}\n"
                      f"    place at: {entry['place_at']}")
        return EXIT_OK
    for descriptor, fold in chosen:
        if args.action == "fetch":
            path = weights.fetch_weights(descriptor, fold, progress=sys.stdout.isatty())
            print(f"{descriptor} fold {fold}: {path}")
        elif weights.cached_weights_path(descriptor, fold).is_file():
            print(f"{descriptor} fold {fold}: ok, sha256 "
                  f"{weights.verify_cached_weights(descriptor, fold)}")
        else:
            print(f"{descriptor} fold {fold}: not present "
                  f"(place it at {weights.cached_weights_path(descriptor, fold)})")
    return EXIT_OK
