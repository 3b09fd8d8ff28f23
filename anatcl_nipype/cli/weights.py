"""``anatcl-nipype weights list|fetch|verify``: the released AnatCL weights and their cache."""

import argparse
import sys

from anatcl_nipype.cli.parser import EXIT_OK
from anatcl_nipype.options import DESCRIPTORS, FOLDS


def run_weights_command(argv):
    """``anatcl-nipype weights list|fetch|verify [--descriptor D] [--fold K]``."""
    from anatcl_nipype.encoder import weights

    parser = argparse.ArgumentParser(prog="anatcl-nipype weights",
                                     description="The released AnatCL weights and their cache "
                                                 "($ANATCL_NIPYPE_HOME/weights).")
    parser.add_argument("action", choices=("list", "fetch", "verify"))
    parser.add_argument("--descriptor", choices=DESCRIPTORS, nargs="+",
                        default=list(DESCRIPTORS))
    parser.add_argument("--fold", type=int, choices=FOLDS, nargs="+",
                        default=list(FOLDS))
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

