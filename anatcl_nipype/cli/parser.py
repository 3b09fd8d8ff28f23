"""Command-line arguments of ``anatcl-nipype`` (BIDS-App style), and the options object
the participant and group levels take.

>>> options = parse_options(["cat12", "out", "participant", "--fold", "2"])
>>> options.analysis_level, options.fold, options.encoder_options().descriptor
('participant', 2, 'global')
"""

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import anatcl_nipype
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import (
    DESCRIPTORS,
    ENCODER_FIELDS,
    FEATURE_KINDS,
    FOLDS,
    PRECISION_CHOICES,
    TASKS,
    EncoderOptions,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
#: ``--fold all``: a fold ensemble of the five released folds.
ALL_FOLDS = "all"


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
    bias_cv: int | None = 5
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
    force_precision: bool = False
    harmonize: str = "none"
    site_column: str = "site"
    covariates: list = field(default_factory=list)
    unseen_sites: str = "refuse"
    relevance_maps: bool = False
    relevance_steps: int = 20
    relevance_method: str = "integrated_gradients"
    relevance_baseline: str = "group_mean"
    relevance_atlas: Path | None = None
    relevance_labels: Path | None = None
    stop_on_first_crash: bool = False
    omp_nthreads: int | None = None
    shard_size: int | None = None
    mem_gb: float | None = None
    wait_for_lock: bool = False
    resample: bool = False
    argv: list = field(default_factory=list)  # the command as typed (run records)

    def encoder_options(self):
        """The :class:`~anatcl_nipype.options.EncoderOptions` of these options: each of its
        fields that is an option here, with the defaults where not given; ``--fold all``
        gives ``folds`` (0..4) and the first of them as ``fold``."""
        ensemble = self.fold == ALL_FOLDS
        given = {name: getattr(self, name) for name in ENCODER_FIELDS if hasattr(self, name)}
        return EncoderOptions(**dict(
            given, weights=str(Path(self.weights).absolute()) if self.weights else None,
            descriptor=self.descriptor or DESCRIPTORS[0],
            fold=FOLDS[0] if self.fold is None or ensemble else self.fold,
            folds=FOLDS if ensemble else None))

    def check_precision(self):
        """Refuse an explicit ``--precision bf16`` on a CPU without fast bf16 units, once,
        before any work (reads /proc/cpuinfo; no torch import). Raises
        :class:`~anatcl_nipype.encoder.precision.PrecisionRefused`."""
        if self.precision == "bf16" and not str(self.device).startswith("cuda"):
            from anatcl_nipype.encoder.precision import choose_precision

            choose_precision("bf16", "cpu", force=self.force_precision)


def parse_options(argv):
    """``argv`` -> :class:`Options` (argparse exits with code 2 on bad usage)."""
    args = vars(build_parser().parse_args(argv))
    return Options(argv=list(argv),
                   **{f.name: args[f.name] for f in fields(Options) if f.name in args})

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


def _bias_cv(text):
    """``--bias-cv``: 2 folds or more, or ``none`` (in-sample predictions).

    >>> _bias_cv("3"), _bias_cv("none")
    (3, None)
    """
    if text.lower() == "none":
        return None
    if text.isdigit() and int(text) >= 2:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: choose 2 folds or more, or none")


def _fold(text):
    """``--fold``: one of the released folds, or ``all``."""
    if text == ALL_FOLDS:
        return text
    if text.isdigit() and int(text) in FOLDS:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: choose one of 0..4 or all")


def add_encoder_options(parser):
    """Options shared by every command that encodes: weights, precision, device."""
    group = parser.add_argument_group("AnatCL weights and inference")
    group.add_argument("--weights", type=Path, help="AnatCL checkpoint file (default: the released "
                       "weights of --descriptor/--fold from the cache)")
    group.add_argument("--descriptor", choices=DESCRIPTORS,
                       help="released weights: anatomical descriptor (default: global; when "
                            "applying a probe: the probe card's)")
    group.add_argument("--fold", type=_fold, metavar="{0..4,all}",
                       help="released weights: OpenBHB fold (default: 0; when applying a "
                            "probe: the probe card's); all: a fold ensemble, each map read "
                            "once and encoded by all five folds (desc-anatcl...Fold<k>), "
                            "and at the group level one probe per fold plus their ensemble")
    group.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                       help="fp32 matches the official package; bf16 is faster on CPUs/GPUs "
                            "with fast bfloat16 units; auto picks the fastest mode that keeps "
                            "its accuracy on this machine")
    group.add_argument("--force-precision", action="store_true",
                       help="run --precision bf16 even where it is much slower than fp32 "
                            "(a CPU without fast bf16 units); refused otherwise")
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
    parser.add_argument("analysis_level", choices=("participant", "group"),
                        help="participant: encode each participant's map (and read its CAT12 "
                             "ROI measures); group: fit or apply a probe on those outputs")
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
    group.add_argument("--bias-cv", type=_bias_cv, default=5, metavar="{N,none}",
                       help="brain age: folds of the cross-validation within each training "
                            "set whose predictions the age-bias line is fitted on (default: "
                            "5; with sessions or --group-column at most one per participant "
                            "or group); none: fit it on in-sample predictions, for cohorts "
                            "too small to split (it then under-corrects)")
    group.add_argument("--n-repeats", type=int, default=1, help="repeated CV (default: 1)")
    group.add_argument("--group-column", help="participants.tsv column for group-aware "
                       "splits, e.g. site")
    add_encoder_options(parser)
    add_execution_options(parser)
    add_selection_options(parser)
    add_harmonization_options(parser)
    add_relevance_options(parser)
    add_run_control_options(parser)
    add_input_map_options(parser)
    return parser


def add_input_map_options(parser):
    """How input maps off the CAT12 grid are treated."""
    group = parser.add_argument_group("input maps")
    group.add_argument("--resample", action="store_true",
                       help="resample MNI-space maps on another grid onto the CAT12 1.5 mm grid "
                            "(default: refuse them; embeddings of resampled maps differ from "
                            "CAT12's own)")


def add_selection_options(parser):
    """Longitudinal studies and re-runs: which sessions, and rebuilding the report only."""
    group = parser.add_argument_group("sessions and reports")
    group.add_argument("--session-label", nargs="+", metavar="LABEL",
                       help="only these sessions (with or without ses-); each session is "
                            "one scan with its own outputs")
    group.add_argument("--reports-only", action="store_true",
                       help="rebuild the report from the outputs already in output_dir, "
                            "computing nothing")


def _columns(text):
    """``--covariates age,sex`` -> ``["age", "sex"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_harmonization_options(parser):
    """Group level: ComBat site harmonisation inside the cross-validation."""
    group = parser.add_argument_group("site harmonisation (group level)")
    group.add_argument("--harmonize", choices=("none", "combat"), default="none",
                       help="combat: remove site effects with ComBat (neuroCombat), fitted on "
                            "the training folds only and saved with the probe")
    group.add_argument("--site-column", default="site",
                       help="participants.tsv column giving each participant's site "
                            "(default: site)")
    group.add_argument("--covariates", type=_columns, default=[], metavar="COL,COL",
                       help="participants.tsv columns whose effects ComBat protects, e.g. "
                            "age,sex (never the target)")
    group.add_argument("--unseen-sites", choices=("refuse", "estimate"), default="refuse",
                       help="a participant from a site the probe was not fitted on: refuse "
                            "(default), or estimate that site's offsets from its own "
                            "participants (use with --group-column site)")


def add_relevance_options(parser):
    """Group level: voxel relevance maps of the fitted probe."""
    group = parser.add_argument_group("relevance maps (group level)")
    group.add_argument("--relevance-maps", action="store_true",
                       help="map which voxels drive the fitted probe (integrated gradients "
                            "through the frozen encoder; probes on --features embeddings, one "
                            "fold, no --harmonize). Slow: --relevance-steps forward+backward "
                            "passes per map (20 steps: about 3.5 min per map on a 2-core CPU)")
    group.add_argument("--relevance-steps", type=int, default=20,
                       help="integrated-gradients steps (default: 20)")
    group.add_argument("--relevance-method", choices=("integrated_gradients", "occlusion"),
                       default="integrated_gradients", help="captum attribution method")
    group.add_argument("--relevance-baseline", default="group_mean",
                       help="group_mean (default), zeros, or a GM map on the CAT12 grid")
    group.add_argument("--relevance-atlas", type=Path,
                       help="label image on the CAT12 grid: adds a table of relevance per "
                            "region")
    group.add_argument("--relevance-labels", type=Path,
                       help="region names of --relevance-atlas (dseg.tsv, LUT, CAT12 csv)")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
        return value
    return parse


def add_run_control_options(parser):
    """Running Nipype as sMRIPrep/fMRIPrep do: first crash, threads, memory, work lock."""
    group = parser.add_argument_group("run control")
    group.add_argument("--stop-on-first-crash", action="store_true",
                       help="stop the whole run at the first failed node (Nipype's "
                            "stop_on_first_crash) instead of finishing the other participants")
    group.add_argument("--omp-nthreads", type=_positive(int), metavar="N",
                       help="threads per node (torch/OpenMP; default: nprocs divided among "
                            "the participants running at once)")
    group.add_argument("--shard-size", type=_positive(int), metavar="N",
                       help="participant level: encode the maps in shards of N scans, one "
                            "node (one model load, one cluster job) per shard, outputs "
                            "unchanged (default: 64 on CUDA, 1 on a CPU: one node per "
                            "participant)")
    group.add_argument("--mem-gb", type=_positive(float), metavar="GB",
                       help="memory MultiProc may schedule (its memory_gb; default: 90%% of "
                            "this machine's)")
    group.add_argument("--wait-for-lock", action="store_true",
                       help="if another run uses the work folder, wait for it to finish "
                            "instead of refusing")
