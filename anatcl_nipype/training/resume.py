"""Checkpoints of a training run, and resuming from the last one: the saved run must have
the same settings and data (a few settings, such as ``epochs``, may change)."""

import reprlib

import torch

from anatcl_nipype.encoder.checkpoint import read_checkpoint_file
from anatcl_nipype.errors import AnatCLError, CheckpointError
from anatcl_nipype.files import atomic_write
from anatcl_nipype.training.records import EpochRecord

#: Settings that may change when a run is resumed (the others must match the saved run).
RESUMABLE_CHANGES = ("epochs", "precision", "device", "gradient_checkpointing",
                     "package_version", "torch_version")
#: Keys a checkpoint needs to be resumed from, besides the task's own.
RESUME_KEYS = ("opts", "optimizer", "epoch", "run_id", "scheduler", "history")


def write_checkpoint(path, content):
    """Save ``content`` with every tensor on the CPU (loads on machines without a GPU)."""
    with atomic_write(path) as tmp:
        torch.save(_on_cpu(content), tmp)


def _on_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def resume_run(path, options, task, optimizer, scheduler, scaler):
    """Load the run saved at ``path`` into the training state; return (history, run_id)."""
    saved = _read_saved_run(path)
    _check_same_settings(saved["opts"], options, path)
    task.load(saved)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler.is_enabled() and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    return [EpochRecord(*row) for row in saved["history"]], saved["run_id"]


def _read_saved_run(path):
    """Read a checkpoint of this loop (safely: no code runs) to resume from it."""
    try:
        saved = read_checkpoint_file(path)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; delete it, or pass resume=False to start over") from None
    missing = [key for key in RESUME_KEYS if key not in saved]
    if missing:
        raise CheckpointError(f"{path}: not written by this training loop (no "
                              f"{', '.join(missing)}); pass resume=False to start over, or "
                              "use another out_dir")
    return saved


def _check_same_settings(saved_options, options, path):
    saved_options = vars(saved_options)
    changed = [f"{key} {reprlib.repr(saved_options.get(key))} -> {reprlib.repr(value)}"
               for key, value in options.items()
               if key not in RESUMABLE_CHANGES and saved_options.get(key) != value]
    if changed:
        raise AnatCLError(f"{path}: holds a run with other settings or data ("
                          f"{'; '.join(changed)}); pass resume=False to start over, or use "
                          "another out_dir")
