"""Shared fixtures: seeded checkpoints in the official format, CAT12-grid maps, and one
``anatcl-nipype demo`` run per session."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from anatcl_nipype.encoder.volumes import CAT12_AFFINE, CAT12_SHAPE


def brain_like_volume(seed=0, shape=CAT12_SHAPE):
    """A smooth, positive, brain-sized blob with seeded texture (float32, ~0..1)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid ** 2 / np.array([0.7, 0.8, 0.7])[:, None, None, None] ** 2).sum(0))
    texture = sum(
        rng.uniform(0.05, 0.2) * np.sin(rng.uniform(2, 9) * grid[axis] + rng.uniform(0, 6))
        for axis in range(3) for _ in range(2)
    )
    volume = np.clip(0.6 + texture, 0, None) * (radius < 1)
    return volume.astype(np.float32)


def write_map(path, volume=None, affine=CAT12_AFFINE, seed=0, dtype=np.float32):
    """Write a NIfTI map (a brain-like CAT12-grid volume unless ``volume`` is given)."""
    volume = brain_like_volume(seed) if volume is None else volume
    image = nib.Nifti1Image(np.asarray(volume).astype(dtype), affine)
    image.set_data_dtype(dtype)
    nib.save(image, path)
    return path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A seeded random checkpoint in the official format (model, opts, optimizer, epoch)."""
    from anatcl_nipype.encoder.checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("weights") / "weights.pth", seed=7)


@pytest.fixture(scope="session")
def cat12_maps(tmp_path_factory):
    """Three full-size CAT12-grid grey-matter maps (uncompressed, as CAT12 writes them)."""
    folder = tmp_path_factory.mktemp("cat12")
    return [write_map(folder / f"mwp1sub-0{i}_T1w.nii", seed=i) for i in range(1, 4)]


#: Participants of the session's demo: the fewest its probes take (7 per class for 5-fold CV
#: with the inner search of the penalty); every one more is another full-size encoding.
DEMO_SUBJECTS = 14


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``anatcl-nipype demo`` run once per session: (its folder, what it printed).
    test_demo checks it; the snippets of the README and docs/ run in it, as a user runs them.
    The demo takes minutes: run it once, not once per test file."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", "demo", str(folder),
                           "--n-subjects", str(DEMO_SUBJECTS)], capture_output=True, text=True,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, done.stdout


def pytest_configure(config):
    """Keep Nipype's crash files out of the working tree; let MultiProc poll every 0.2 s (as
    the command line does) instead of Nipype's 2 s, which left workflow tests mostly idle."""
    import tempfile

    from nipype import config as nipype_config

    nipype_config.set("execution", "crashdump_dir", tempfile.mkdtemp(prefix="nipype-crash-"))
    nipype_config.set("execution", "poll_sleep_duration", "0.2")
