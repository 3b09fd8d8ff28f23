"""``anatcl-nipype demo``: a synthetic CAT12 cohort through both levels, and the report.

No real MRI and, on a machine that cannot download, no pretrained weights: the demo makes a
SYNTHETIC cohort with planted effects and, unless ``--weights`` is given or the released
weights are in the cache, uses seeded random weights, and says so loudly.
"""

import argparse
from dataclasses import replace
from pathlib import Path

from anatcl_nipype.cli.parser import EXIT_OK, Options, add_encoder_options, add_execution_options
from anatcl_nipype.options import DESCRIPTORS, FOLDS

#: The demo's own options that the participant and group levels take as they are.
SHARED_OPTIONS = ("weights", "descriptor", "fold", "precision", "device", "nprocs", "plugin",
                  "plugin_args", "work_dir", "verbose")

BANNER = "=" * 78


def _demo_parser():
    parser = argparse.ArgumentParser(
        prog="anatcl-nipype demo",
        description="Run anatcl-nipype end to end on a synthetic CAT12-like cohort.")
    parser.add_argument("output_dir", nargs="?", type=Path, default=Path("anatcl_demo"),
                        help="folder for the cohort, the results and the report "
                             "(default: ./anatcl_demo)")
    parser.add_argument("--n-subjects", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    add_encoder_options(parser)
    add_execution_options(parser)
    parser.set_defaults(nprocs=2, descriptor=DESCRIPTORS[0], fold=FOLDS[0])
    return parser


def _loud(lines):
    print(BANNER)
    for line in lines:
        print(f"  {line}")
    print(BANNER, flush=True)


def choose_weights(args, folder):
    """``--weights``, else cached released weights, else seeded random ones (said loudly)."""
    from anatcl_nipype.encoder.weights import cached_weights_path

    if args.weights is not None:
        return args.weights
    cached = cached_weights_path(args.descriptor, args.fold)
    if cached.is_file():
        print(f"Using the cached released AnatCL weights: {cached}")
        return None
    from anatcl_nipype.encoder.checkpoint import write_random_checkpoint

    path = write_random_checkpoint(folder / "random-weights-seed0.pth", seed=0)
    _loud(["NO PRETRAINED WEIGHTS: using SEEDED RANDOM weights.",
           "The embeddings below carry no learned anatomy; predictions from them show the",
           "pipeline works, not what AnatCL can do. For real weights run",
           "`anatcl-nipype weights fetch` on a machine that can download, or pass --weights."])
    return path


def run_demo(argv):
    """Generate the cohort, run participant then group level, print where everything is."""
    from anatcl_nipype.cli.execution import prepare_output_dir
    from anatcl_nipype.cli.group import run_group_level
    from anatcl_nipype.cli.participant import run_participant_level
    from anatcl_nipype.data import make_cat12_cohort

    args = _demo_parser().parse_args(argv)
    root = prepare_output_dir(args.output_dir)
    if args.work_dir == Path("work"):
        args.work_dir = root / "work"
    _loud(["anatcl-nipype demo on SYNTHETIC data: a made-up CAT12-like cohort with planted",
           "age and diagnosis effects (see ground_truth.json). No real person's scan."])
    print(f"Generating {args.n_subjects} synthetic participants in {root / 'cat12'} ...")
    cohort = make_cat12_cohort(root / "cat12", n_subjects=args.n_subjects, seed=args.seed)
    args.weights = choose_weights(args, root)
    results = root / "derivatives"
    options = Options(cat12_dir=cohort.root, output_dir=results, write_graph=True,
                      participants=cohort.participants_tsv,
                      **{name: getattr(args, name) for name in SHARED_OPTIONS})
    code = run_participant_level(options)
    for target in ("diagnosis", "age"):
        group = replace(options, analysis_level="group", target=target, features="both")
        code = max(code, run_group_level(group))
    print(f"\nDemo finished. Results: {results}\nReport:  {results / 'anatcl' / 'report.html'}")
    return code if code else EXIT_OK
