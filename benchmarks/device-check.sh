#!/usr/bin/env bash
# Device check: the tests marked `gpu`, then the encoder, streaming and pipeline benchmarks
# briefly on one device, then one table (throughput, fraction of peak, peak memory).
#
#   DEVICE=cuda bash benchmarks/device-check.sh     # under 8 minutes on an H100
#   DEVICE=cpu bash benchmarks/device-check.sh      # the proof run where no GPU is lent
#
# Run from anywhere; it works in the repository root. Settings (environment):
#   PYTHON       the interpreter (default .venv/bin/python). DEVICE=cuda needs a CUDA build
#                of torch there: a .venv that got the CPU build (the +cpu wheel of this
#                project's build machines) stops here with a message. On a GPU machine
#                whose python3 has CUDA torch, PYTHON=python3 with the project's other
#                dependencies installed (the package itself is found in this checkout)
#   DEVICE       cpu, cuda or cuda:N (default cuda)
#   RESULTS_DIR  where the benchmarks write their JSON (default $OUT if set, else a new
#                temporary folder); the table is built from it
#   WRITE=1      also update the benchmarks' sections of benchmarks/RESULTS.md (default: no)
#   ENCODER_ARGS, STREAMING_ARGS, PIPELINE_ARGS   replace each benchmark's sizes
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
RESULTS_DIR=${RESULTS_DIR:-${OUT:-$(mktemp -d -t anatcl-device-check-XXXXXX)}}
WRITE_FLAG=--no-write
[[ ${WRITE:-0} == 1 ]] && WRITE_FLAG=--write
# The benchmarks import the package from this checkout, installed or not.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ $DEVICE == cuda* ]]; then
    "$PYTHON" -c 'import sys, torch; torch.cuda.is_available() or sys.exit(
        f"DEVICE=cuda but torch {torch.__version__} ({sys.executable}) sees no CUDA device; "
        "set PYTHON to an interpreter with a CUDA build of torch, or DEVICE=cpu")'
    # Sizes for a GPU: enough volumes to keep it busy for a measurable time.
    ENCODER_ARGS=${ENCODER_ARGS:---n 32 --rounds 3 --batch-size 8}
    STREAMING_ARGS=${STREAMING_ARGS:---n 32 --rounds 2}
    PIPELINE_ARGS=${PIPELINE_ARGS:---n 14 --rounds 1}
else
    # Sizes for 2 CPU cores: each benchmark once, as small as it runs (the pipeline's
    # cross-validation needs 7 participants per class).
    ENCODER_ARGS=${ENCODER_ARGS:---n 2 --rounds 1}
    STREAMING_ARGS=${STREAMING_ARGS:---n 2 --rounds 1}
    PIPELINE_ARGS=${PIPELINE_ARGS:---n 14 --rounds 1}
fi
mkdir -p "$RESULTS_DIR"
echo "device check: DEVICE=$DEVICE PYTHON=$PYTHON results in $RESULTS_DIR"

step() {
    local name=$1
    shift
    echo
    echo "== $name: $*"
    local start=$SECONDS
    "$@"
    echo "== $name done in $((SECONDS - start)) s"
}

# Only the files that hold gpu tests: collecting every test file would import their
# dependencies (selenium, slurm helpers) that a GPU machine may not have.
mapfile -t GPU_TEST_FILES < <(grep -l "mark.gpu" tests/test_*.py)
step "tests marked gpu" "$PYTHON" -m pytest -p no:cacheprovider -q -rs -m gpu \
    "${GPU_TEST_FILES[@]}"
# shellcheck disable=SC2086  # the *_ARGS are word lists on purpose
step encoder "$PYTHON" benchmarks/encoder.py --device "$DEVICE" --json-dir "$RESULTS_DIR" \
    $WRITE_FLAG $ENCODER_ARGS
# shellcheck disable=SC2086
step streaming "$PYTHON" benchmarks/streaming.py --device "$DEVICE" --json-dir "$RESULTS_DIR" \
    $WRITE_FLAG $STREAMING_ARGS
# shellcheck disable=SC2086
step pipeline "$PYTHON" benchmarks/pipeline.py --device "$DEVICE" --json-dir "$RESULTS_DIR" \
    $WRITE_FLAG $PIPELINE_ARGS

echo
echo "== device check: $DEVICE, ${SECONDS} s in all"
"$PYTHON" benchmarks/device_table.py "$RESULTS_DIR"
