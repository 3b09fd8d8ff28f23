"""benchmarks/device-check.sh's pieces: --device parsing, the JSON rows, the table, the guard.

The whole script runs the benchmarks (minutes on a CPU), too long for CI; its CPU proof run
is in benchmarks/RESULTS.md (## Device check).
"""

import argparse
import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "device-check.sh"


@pytest.fixture
def bench(monkeypatch):
    """The benchmarks' shared modules, imported as the scripts import them."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import device
    import device_table

    return argparse.Namespace(device=device, table=device_table)


def parse(bench, *argv):
    return bench.device.add_device_options(argparse.ArgumentParser()).parse_args(argv)


def test_device_options_default_to_the_cpu_and_writing_results(bench):
    args = parse(bench)
    assert (args.device, args.json_dir, args.write) == (torch.device("cpu"), None, True)
    args = parse(bench, "--device", "cpu", "--json-dir", "out", "--no-write")
    assert (args.device, args.json_dir, args.write) == (torch.device("cpu"), Path("out"), False)


@pytest.mark.parametrize("device, message", [
    ("auto", "argument --device: name the device: cpu, cuda or cuda:N"),
    ("tpu", "argument --device: unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
])
def test_device_option_refuses_what_is_not_a_device(bench, capsys, device, message):
    with pytest.raises(SystemExit):
        parse(bench, "--device", device)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_is_refused_where_torch_sees_none(bench, capsys):
    with pytest.raises(SystemExit):
        parse(bench, "--device", "cuda:1")
    assert ("argument --device: device 'cuda:1' asked for, but CUDA is not available here"
            in capsys.readouterr().err)


def test_forward_flops_are_counted_not_assumed(bench):
    assert bench.device.forward_gflop() * 1e9 == 59_976_572_928


def test_a_row_divides_achieved_flops_by_the_measured_peak(bench, monkeypatch):
    monkeypatch.setattr(bench.device, "matmul_peak_tflops", lambda device, kind: 0.1)
    row = bench.device.row("5 folds", torch.device("cpu"), "bf16", 2.0, (1.25, "RSS"),
                           models=5)
    assert row["volumes_per_s"] == 0.5 and row["arithmetic"] == "bf16"
    assert row["achieved_tflops"] == pytest.approx(5 * 59.976572928 / 2 / 1e3)
    assert row["fraction_of_peak"] == pytest.approx(row["achieved_tflops"] / 0.1)
    assert (row["peak_memory_gib"], row["memory"]) == (1.25, "RSS")


def test_rows_written_as_json_come_back_as_one_table(bench, monkeypatch, tmp_path):
    monkeypatch.setattr(bench.device, "matmul_peak_tflops", lambda device, kind: 0.2)
    cpu = torch.device("cpu")
    rows = [bench.device.row("ours fp32", cpu, "fp32", 0.5, (1.5, "process max RSS"))]
    bench.device.write_rows(tmp_path, "streaming", cpu, rows, {"n": 2})
    bench.device.write_rows(tmp_path, "encoder", cpu, rows, {"n": 2})
    piped = dict(rows[0], method="participant level", peak_memory_gib=None, memory="not here")
    (tmp_path / "pipeline.json").write_text(json.dumps(
        {"benchmark": "pipeline", "device": "cuda", "device_name": "GPU X", "torch": "2.x",
         "rows": [dict(piped, device="cuda")]}))
    lines = bench.table.table(bench.table.read_results(tmp_path)).splitlines()
    name = bench.device.device_name(cpu)
    assert lines[:3] == [f"Device cpu: {name}, torch {torch.__version__}.",
                         "Device cuda: GPU X, torch 2.x.", ""]
    assert lines[3] == bench.table.HEADER
    assert lines[5:] == [
        "| encoder | ours fp32 | cpu | fp32 | 2 | 60.0% | 0.2 TFLOP/s fp32 | "
        "1.50 GiB (process max RSS) |",
        "| streaming | ours fp32 | cpu | fp32 | 2 | 60.0% | 0.2 TFLOP/s fp32 | "
        "1.50 GiB (process max RSS) |",
        "| pipeline | participant level | cuda | fp32 | 2 | 60.0% | 0.2 TFLOP/s fp32 | "
        "n/a (not here) |",
    ]


def test_table_doctest_and_empty_folder(bench, tmp_path, capsys):
    assert doctest.testmod(bench.table).failed == 0
    with pytest.raises(SystemExit, match="no benchmark results"):
        bench.table.main([str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_script_defaults_to_cuda_and_stops_at_once_where_there_is_none(tmp_path):
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    env = {key: value for key, value in os.environ.items() if key not in ("DEVICE", "OUT")}
    env.update(PYTHON=sys.executable, RESULTS_DIR=str(tmp_path / "results"))
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert f"DEVICE=cuda but torch {torch.__version__}" in done.stderr
    assert "set PYTHON to an interpreter with a CUDA build of torch, or DEVICE=cpu" in done.stderr
    assert not (tmp_path / "results").exists()
