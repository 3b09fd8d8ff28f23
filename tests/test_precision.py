"""precision="auto" and the bf16 refusal: decisions from injected CPU features and GPUs."""

import json

import pytest

from anatcl_nipype.encoder.precision import (
    CPUFeatures,
    PrecisionRefused,
    bf16_speed,
    choose_precision,
    measure_modes,
    measured_modes,
    precision_cache_path,
)
from anatcl_nipype.errors import AnatCLError

ZEN3 = CPUFeatures("AMD EPYC 7B13", "AuthenticAMD", "x86_64", avx2=True, avx512=False,
                   avx512_bf16=False, amx=False)
ZEN4 = CPUFeatures("AMD EPYC 9B14", "AuthenticAMD", "x86_64", avx2=True, avx512=True,
                   avx512_bf16=True, amx=False)
XEON_BF16_NO_AMX = CPUFeatures("Intel Xeon Platinum 8373C", "GenuineIntel", "x86_64", avx2=True,
                               avx512=True, avx512_bf16=True, amx=False)
XEON_AMX = CPUFeatures("Intel Xeon Platinum 8488C", "GenuineIntel", "x86_64", avx2=True,
                       avx512=True, avx512_bf16=True, amx=True)
SKYLAKE = CPUFeatures("Intel Xeon Gold 6148", "GenuineIntel", "x86_64", avx2=True, avx512=True,
                      avx512_bf16=False, amx=False)
GRAVITON = CPUFeatures("Neoverse-V1", "", "aarch64", avx2=False, avx512=False,
                       avx512_bf16=False, amx=False)


def figures(fp32=1.0, channels_last=1.0, bf16=1.0, channels_last_diff=1e-6, bf16_cosine=0.9999):
    """A fake micro-benchmark: seconds per mode, and the calls it received."""
    table = {"fp32": {"seconds": fp32, "max_abs_diff": 0.0, "cosine_min": 1.0},
             "fp32-channels-last": {"seconds": channels_last, "max_abs_diff": channels_last_diff,
                                    "cosine_min": 1.0},
             "bf16": {"seconds": bf16, "max_abs_diff": 1e-2, "cosine_min": bf16_cosine}}
    calls = []

    def measure(modes):
        calls.append(tuple(modes))
        return {mode: table[mode] for mode in modes}

    return measure, calls


def refuse_to_measure(modes):
    raise AssertionError(f"no micro-benchmark expected, asked for {modes}")


@pytest.mark.parametrize("cpu, mode, reason", [
    (ZEN3, "fp32", "bf16 is emulated on this CPU (AMD EPYC 7B13, AVX2 only, no bf16 units), "
                   "~100x slower than fp32; channels-last fp32 is slower than fp32 on "
                   "AVX2-only CPUs"),
    (ZEN4, "bf16", "AVX512-BF16 on an AMD CPU (AMD EPYC 9B14, AVX512-BF16, no AMX): bf16 autocast"),
    (XEON_AMX, "bf16", "AMX bf16 units on this CPU (Intel Xeon Platinum 8488C, AMX)"),
])
def test_auto_decides_known_cpus_by_their_features(cpu, mode, reason):
    choice = choose_precision("auto", "cpu", cpu=cpu, measure=refuse_to_measure)
    assert (choice.requested, choice.mode) == ("auto", mode)
    assert choice.reason.startswith(reason)
    assert choice.provenance == {"requested": "auto", "mode": mode, "reason": choice.reason}


@pytest.mark.parametrize("channels_last, difference, mode", [
    (0.7, 1e-6, "fp32-channels-last"),  # faster and within 1e-5: picked
    (1.1, 1e-6, "fp32"),                # slower: fp32 kept
    (0.7, 5e-5, "fp32"),                # faster but further than 1e-5 from fp32: fp32 kept
])
def test_auto_measures_channels_last_where_avx512_makes_it_uncertain(channels_last, difference,
                                                                     mode):
    measure, calls = figures(fp32=1.0, channels_last=channels_last, channels_last_diff=difference)
    choice = choose_precision("auto", "cpu", cpu=XEON_BF16_NO_AMX, measure=measure)
    assert choice.mode == mode and calls == [("fp32", "fp32-channels-last")]
    assert "bf16 measured 0.5x the speed of fp32" in choice.reason
    assert f"channels-last fp32 measured at {channels_last:.2f}x fp32's time" in choice.reason


@pytest.mark.parametrize("bf16, cosine, mode", [(0.4, 0.9999, "bf16"), (2.0, 0.9999, "fp32"),
                                                (0.4, 0.99, "fp32")])
def test_auto_measures_bf16_on_cpus_it_does_not_know(bf16, cosine, mode):
    measure, calls = figures(bf16=bf16, channels_last=1.2, bf16_cosine=cosine)
    choice = choose_precision("auto", "cpu", cpu=GRAVITON, measure=measure)
    assert choice.mode == mode and calls[0] == ("fp32", "bf16")
    assert f"bf16 measured at {bf16:.2f}x fp32's time" in choice.reason


@pytest.mark.parametrize("cpu, message", [
    (ZEN3, "bf16 on this CPU is emulated, ~100x slower than fp32; use precision='auto' or 'fp32' "
           "(--precision auto|fp32) (this CPU: AMD EPYC 7B13, AVX2 only, no bf16 units; "
           "force_precision=True or --force-precision runs it anyway)"),
    (SKYLAKE, "bf16 on this CPU is emulated, slower than fp32; use precision='auto' or 'fp32'"),
    (XEON_BF16_NO_AMX, "bf16 on this CPU is slower than fp32; use precision='auto' or 'fp32' "
                       "(--precision auto|fp32) (this CPU (Intel Xeon Platinum 8373C, "
                       "AVX512-BF16, no AMX) has AVX512-BF16 "
                       "but no AMX"),
])
def test_explicit_bf16_is_refused_without_fast_units_unless_forced(cpu, message):
    pattern = "^" + message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(PrecisionRefused, match=pattern):
        choose_precision("bf16", "cpu", cpu=cpu, measure=refuse_to_measure)
    forced = choose_precision("bf16", "cpu", force=True, cpu=cpu, measure=refuse_to_measure)
    assert forced.mode == "bf16" and forced.reason.startswith("requested (forced: ")
    assert isinstance(PrecisionRefused("x"), AnatCLError)


def test_explicit_bf16_with_fast_units_and_fp32_are_taken_as_asked():
    assert choose_precision("bf16", "cpu", cpu=ZEN4, measure=refuse_to_measure).mode == "bf16"
    exact = choose_precision("fp32", "cpu", cpu=ZEN4, measure=refuse_to_measure)
    assert (exact.mode, exact.autocast_bf16, exact.channels_last) == ("fp32", False, False)
    with pytest.raises(AnatCLError,
                       match=r"precision must be one of \('auto', 'fp32', 'bf16'\), not 'fp16'"):
        choose_precision("fp16")


@pytest.mark.parametrize("capability, auto_mode",
                         [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 0), "fp32")])
def test_cuda_decision_follows_compute_capability(capability, auto_mode):
    auto = choose_precision("auto", "cuda:1", cuda_capability=capability)
    assert auto.mode == auto_mode
    assert f"CUDA device cuda:1 (compute capability {capability[0]}.{capability[1]})" in auto.reason
    if auto_mode == "bf16":
        assert choose_precision("bf16", "cuda", cuda_capability=capability).mode == "bf16"
    else:
        with pytest.raises(PrecisionRefused, match="^bf16 on this GPU is slower than fp32; use "
                                                   "precision='auto' or 'fp32' "
                                                   ".*no bf16 tensor cores"):
            choose_precision("bf16", "cuda", cuda_capability=capability)
        forced = choose_precision("bf16", "cuda", force=True, cuda_capability=capability)
        assert forced.mode == "bf16"


def test_bf16_speed_classes():
    assert [bf16_speed(cpu)[0] for cpu in (ZEN3, ZEN4, XEON_BF16_NO_AMX, XEON_AMX, SKYLAKE)] == [
        "emulated", "fast", "slower", "fast", "emulated"]
    assert bf16_speed(GRAVITON)[0] == "slower"  # unknown and nothing measured: not assumed fast


def test_measurements_are_cached_per_cpu_model_and_torch_version(tmp_path, monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))
    measure, calls = figures(channels_last=0.5)
    first = measured_modes(XEON_BF16_NO_AMX, ("fp32", "fp32-channels-last"), measure=measure)
    again = measured_modes(XEON_BF16_NO_AMX, ("fp32-channels-last",), measure=measure)
    assert calls == [("fp32", "fp32-channels-last")] and again == first
    measured_modes(XEON_BF16_NO_AMX, ("bf16",), measure=measure)  # only the missing mode
    assert calls[1] == ("fp32", "bf16")
    path = precision_cache_path(XEON_BF16_NO_AMX.model, "2.13.0")
    assert path.parent == tmp_path / "precision"
    assert (path != precision_cache_path(ZEN4.model, "2.13.0")
            != precision_cache_path(ZEN4.model, "2.14.0"))
    import torch

    cached = json.loads(precision_cache_path(XEON_BF16_NO_AMX.model, torch.__version__).read_text())
    assert cached["cpu"]["model"] == XEON_BF16_NO_AMX.model and set(cached["modes"]) == {
        "fp32", "fp32-channels-last", "bf16"}


def test_a_corrupt_cache_is_measured_again(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))
    path = precision_cache_path(SKYLAKE.model, torch.__version__)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    measure, calls = figures()
    assert measured_modes(SKYLAKE, ("fp32",), measure=measure)["fp32"]["seconds"] == 1.0
    assert calls == [("fp32",)]


def test_the_micro_benchmark_measures_the_network_in_each_mode():
    result = measure_modes(("fp32", "fp32-channels-last"), size=16, repeats=1)
    assert result["fp32"]["max_abs_diff"] == 0.0
    assert result["fp32"]["cosine_min"] == pytest.approx(1.0)
    assert result["fp32-channels-last"]["max_abs_diff"] <= 1e-5
    assert all(figure["seconds"] > 0 for figure in result.values())


def test_auto_on_this_machine_follows_its_features(tmp_path, monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))  # a micro-benchmark caches here
    here = CPUFeatures.of_this_machine()
    choice = choose_precision("auto", "cpu")
    assert choice.requested == "auto" and here.model in choice.reason
    speed = bf16_speed(here, lambda modes: measured_modes(here, modes))[0]
    assert (choice.mode == "bf16") == (speed == "fast")
    if here.avx2 and not here.avx512:  # AVX2-only, like the Zen 3 these tests are written on
        assert choice.mode == "fp32" and not (tmp_path / "precision").exists()


def test_checking_a_precision_on_a_cpu_needs_no_torch_import():
    # the command line refuses --precision bf16 before it pays for importing torch
    import subprocess
    import sys

    script = ("import sys\n"
              "from anatcl_nipype.encoder.precision import CPUFeatures, choose_precision\n"
              "here = CPUFeatures.of_this_machine()\n"
              "choose_precision('bf16', 'cpu', force=True, cpu=here._replace(machine='x86_64'))\n"
              "print(here.model, 'torch' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert output == f"{CPUFeatures.of_this_machine().model} False"
