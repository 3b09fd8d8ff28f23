"""Command-line arguments of ``anatcl-nipype`` (BIDS-App style).

>>> args = build_parser().parse_args(["cat12", "out", "participant", "--fold", "2"])
>>> args.analysis_level, args.fold, args.descriptor
('participant', 2, 'global')
"""

import argparse
import json
from pathlib import Path

import anatcl_nipype

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

EPILOG = """\
other commands:
  anatcl-nipype demo [output_dir]             synthetic cohort, participant + group, report
  anatcl-nipype weights list|fetch|verify     the released AnatCL weights and their cache

exit codes: 0 success, 1 error, 2 bad usage, 3 some participants failed (the others' outputs
are complete; the summary and the report list the failures and their reasons)
"""


def _plugin_args(text):
    """``--plugin-args`` as JSON (``'{"n_procs": 4}'``) or ``key=value`` pairs."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: expected key=value")
        try:
            pairs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            pairs[key.strip()] = value.strip()
    return pairs


def add_encoder_options(parser):
    """Options shared by every command that encodes: weights, precision, device."""
    group = parser.add_argument_group("AnatCL weights and inference")
    group.add_argument("--weights", type=Path, help="AnatCL checkpoint file (default: the released "
                       "weights of --descriptor/--fold from the cache)")
    group.add_argument("--descriptor", choices=("global", "local"), default="global",
                       help="released weights: anatomical descriptor (default: global)")
    group.add_argument("--fold", type=int, choices=range(5), default=0, metavar="{0..4}",
                       help="released weights: OpenBHB fold (default: 0)")
    group.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="fp32 matches the official package; bf16 is faster on CPUs/GPUs "
                            "with fast bfloat16 units")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def add_execution_options(parser):
    """Options for running Nipype: plugin, processes, work dir, graph, verbosity."""
    group = parser.add_argument_group("execution")
    group.add_argument("--nprocs", type=int, default=1, help="processes to run at once")
    group.add_argument("--plugin", default=None, help="Nipype plugin: Linear, MultiProc, SLURM, "
                       "SLURMGraph, SGE, PBS, ... (default: MultiProc when --nprocs > 1)")
    group.add_argument("--plugin-args", type=_plugin_args, default={},
                       help="plugin arguments as JSON or key=value,key=value")
    group.add_argument("-w", "--work-dir", type=Path, default=Path("work"),
                       help="Nipype work folder; re-running with the same one resumes "
                            "(default: ./work)")
    group.add_argument("--write-graph", action="store_true",
                       help="also draw the workflow graph (SVG) into the output folder")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="Nipype's progress log, and tracebacks on errors")


def build_parser():
    """The parser for ``anatcl-nipype <cat12_dir> <output_dir> {participant,group}``."""
    parser = argparse.ArgumentParser(
        prog="anatcl-nipype",
        description="AnatCL embeddings, region-wise measures and predictions from CAT12 "
                    "outputs, as a Nipype workflow.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"anatcl-nipype {anatcl_nipype.__version__}")
    parser.add_argument("cat12_dir", type=Path, help="folder CAT12 wrote into (plain or BIDS "
                        "derivatives layout)")
    parser.add_argument("output_dir", type=Path, help="BIDS derivatives folder to write")
    parser.add_argument("analysis_level", choices=("participant", "group"))
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL",
                        help="only these participants (with or without sub-)")
    group = parser.add_argument_group("group level")
    group.add_argument("--target", help="participants.tsv column to predict, e.g. diagnosis, age")
    group.add_argument("--task", choices=("classification", "regression", "brain_age"),
                       help="default: brain_age for 'age', classification for text columns, "
                            "regression for numbers")
    group.add_argument("--features", choices=("embeddings", "regional", "both"),
                       default="embeddings", help="what the probe is trained on")
    group.add_argument("--model", type=Path, help="apply this saved probe (.skops) instead "
                       "of fitting one")
    group.add_argument("--participants", type=Path, help="participants.tsv (default: found in "
                       "or above cat12_dir)")
    group.add_argument("--cv", type=int, default=5, help="cross-validation folds (default: 5)")
    group.add_argument("--n-repeats", type=int, default=1, help="repeated CV (default: 1)")
    group.add_argument("--group-column", help="participants.tsv column for group-aware "
                       "splits, e.g. site")
    add_encoder_options(parser)
    add_execution_options(parser)
    return parser
