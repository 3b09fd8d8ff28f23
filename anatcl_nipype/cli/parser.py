"""Command-line arguments of ``anatcl-nipype`` (BIDS-App style), and the options object
the participant and group levels take.

>>> options = parse_options(["cat12", "out", "participant", "--fold", "2"])
>>> options.analysis_level, options.fold, options.encoder_options()["descriptor"]
('participant', 2, 'global')
"""

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import anatcl_nipype
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import DESCRIPTORS, FEATURE_KINDS, FOLDS, PRECISION_CHOICES, TASKS

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class UsageError(AnatCLError):
    """Options that contradict each other or a file (exit code 2, before any work)."""


@dataclass
class Options:
    """What the participant and group levels need; the parsed command line, or built in
    Python (the demo does). ``descriptor``/``fold`` None: not given (the defaults, global
    and 0, for encoding; the probe card's, when applying a probe)."""

    cat12_dir: Path
    output_dir: Path
    analysis_level: str = "participant"
    participant_label: list | None = None
    target: str | None = None
    task: str | None = None
    features: str | None = None
    model: Path | None = None
    participants: Path | None = None
    cv: int = 5
    n_repeats: int = 1
    group_column: str | None = None
    weights: Path | None = None
    descriptor: str | None = None
    fold: int | None = None
    precision: str = "fp32"
    device: str = "auto"
    nprocs: int = 1
    plugin: str | None = None
    plugin_args: dict = field(default_factory=dict)
    work_dir: Path = Path("work")
    write_graph: bool = False
    verbose: bool = False
    session_label: list | None = None
    reports_only: bool = False

    def encoder_options(self):
        """The encoding options the workflows take (defaults where not given)."""
        return dict(weights=str(Path(self.weights).absolute()) if self.weights else None,
                    descriptor=self.descriptor or DESCRIPTORS[0],
                    fold=FOLDS[0] if self.fold is None else self.fold,
                    precision=self.precision, device=self.device)


def parse_options(argv):
    """``argv`` -> :class:`Options` (argparse exits with code 2 on bad usage)."""
    args = vars(build_parser().parse_args(argv))
    return Options(**{f.name: args[f.name] for f in fields(Options) if f.name in args})

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
    group.add_argument("--descriptor", choices=DESCRIPTORS,
                       help="released weights: anatomical descriptor (default: global; when "
                            "applying a probe: the probe card's)")
    group.add_argument("--fold", type=int, choices=FOLDS, metavar="{0..4}",
                       help="released weights: OpenBHB fold (default: 0; when applying a "
                            "probe: the probe card's)")
    group.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                       help="fp32 matches the official package; bf16 is faster on CPUs/GPUs "
                            "with fast bfloat16 units; auto picks the fastest mode that keeps "
                            "its accuracy on this machine")
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
    group.add_argument("--target", help="participants.tsv column to predict, e.g. diagnosis, "
                       "age (with --model: the probe card's)")
    group.add_argument("--task", choices=TASKS,
                       help="default: brain_age for 'age', classification for text columns, "
                            "regression for numbers (with --model: the probe card's)")
    group.add_argument("--features", choices=FEATURE_KINDS,
                       help="what the probe is trained on (default: embeddings; with "
                            "--model: the probe card's)")
    group.add_argument("--model", type=Path, help="apply this saved probe (.skops) instead "
                       "of fitting one; writes desc-applied_predictions.tsv beside the "
                       "fitted results")
    group.add_argument("--participants", type=Path, help="participants.tsv (default: found in "
                       "or above cat12_dir)")
    group.add_argument("--cv", type=int, default=5, help="cross-validation folds (default: 5)")
    group.add_argument("--n-repeats", type=int, default=1, help="repeated CV (default: 1)")
    group.add_argument("--group-column", help="participants.tsv column for group-aware "
                       "splits, e.g. site")
    add_encoder_options(parser)
    add_execution_options(parser)
    add_selection_options(parser)
    return parser


def add_selection_options(parser):
    """Longitudinal studies and re-runs: which sessions, and rebuilding the report only."""
    group = parser.add_argument_group("sessions and reports")
    group.add_argument("--session-label", nargs="+", metavar="LABEL",
                       help="only these sessions (with or without ses-); each session is "
                            "one scan with its own outputs")
    group.add_argument("--reports-only", action="store_true",
                       help="rebuild the report from the outputs already in output_dir, "
                            "computing nothing")
