"""Pretrain AnatCL with its contrastive loss, and fine-tune it on a label.

Both loops stream the volumes from disk through a torch ``DataLoader`` (never all in
memory), train with Adam and a step decay of the learning rate (the released recipe:
lr 1e-4, times 0.9 every 10 epochs, weight decay 5e-5, batch 32), use mixed precision on
CUDA only (bf16 autocast where the GPU has it, else fp16 with a gradient scaler), and
after every epoch write into ``out_dir``:

- ``last.pth`` (and ``epoch<k>.pth`` every ``save_every`` epochs), atomically, in the
  official format: ``model`` (the ``encoder.*``/``head.*`` state dict, which loads into
  the official ``AnatCL(pretrained=False).backbone``), ``opts`` (an
  ``argparse.Namespace`` of the run's settings), ``optimizer``, ``epoch``, ``run_id``,
  plus ``scheduler``, ``scaler`` and ``history`` for resuming, and for fine-tuning
  ``task_head`` (the linear head's state dict);
- ``training_log.tsv`` (``epoch``, ``loss``, ``lr``, ``seconds``); at the end
  ``loss_curve.svg`` and ``loss_curve.png``.

Resuming: with ``resume=True`` a run whose ``out_dir`` holds a ``last.pth`` continues
after its saved epoch with the saved network, optimizer, scheduler and scaler. Every
random draw (data order, augmented views) comes from a generator seeded by (seed,
epoch), so on the CPU an interrupted and resumed run ends with the same weights, bit for
bit, as an uninterrupted one; on CUDA, non-deterministic cuDNN kernels make it close,
not identical.

Real training uses the full 121x128x121 volumes (``volume_size=None``). ``volume_size``
shrinks them by averaging so that tests and demos run on a CPU in seconds; a network
trained on shrunken volumes does not give AnatCL embeddings of full-size maps.

>>> import tempfile, numpy as np
>>> rng = np.random.default_rng(0)
>>> volumes = [rng.random((12, 12, 12), dtype=np.float32) for _ in range(4)]
>>> result = pretrain(volumes, rng.normal(size=(4, 3, 2)), out_dir=tempfile.mkdtemp(),
...                   epochs=1, batch_size=4, sigma=3.0)
>>> result.checkpoint.name, [record.epoch for record in result.history]
('last.pth', [1])
>>> import shutil; shutil.rmtree(result.checkpoint.parent)
"""

import argparse
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

import anatcl_nipype
from anatcl_nipype.encoder.model import EMBEDDING_DIM
from anatcl_nipype.encoder.runner import resolve_device
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import FINETUNE_TASKS
from anatcl_nipype.training.augment import check_augmentations
from anatcl_nipype.training.data import (
    VolumeDataset,
    check_ages,
    check_volume_size,
    descriptor_values,
    finetune_targets,
)
from anatcl_nipype.training.loss import AnatCLLoss, normalise_descriptors
from anatcl_nipype.training.records import (
    FIGURE_STEM,
    LOG_NAME,
    EpochRecord,
    plot_loss_curve,
    write_training_log,
)
from anatcl_nipype.training.resume import resume_run, write_checkpoint
from anatcl_nipype.training.tasks import FineTuneTask, PretrainTask, initial_network

LOGGER = logging.getLogger("anatcl_nipype.training")
LAST_CHECKPOINT = "last.pth"
__all__ = ["EpochRecord", "TrainingResult", "VolumeDataset", "finetune", "pretrain"]


@dataclass
class TrainingResult:
    """What a training run wrote and how it went.

    ``history`` holds every epoch of the run, including those before a resume;
    ``resumed_from`` is the epoch the run continued after (0 for a fresh run).
    """

    checkpoint: Path
    log_tsv: Path
    figures: tuple
    history: list
    run_id: str
    options: dict
    resumed_from: int


@dataclass(frozen=True)
class _Settings:
    """The optimisation settings pretrain and finetune share (see :func:`pretrain`)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    lr_step: int
    lr_decay: float
    device: str
    amp: bool
    gradient_checkpointing: bool
    seed: int
    resume: bool
    volume_size: tuple | None
    num_workers: int
    save_every: int
    progress: Callable | None

    def __post_init__(self):
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2, "BatchNorm and the contrastive loss "
                                                     "need at least 2 volumes per batch")
        check_int("lr_step", self.lr_step, 1)
        check_int("num_workers", self.num_workers, 0)
        check_int("save_every", self.save_every, 0)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AnatCLError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise AnatCLError(f"weight_decay must be a finite number >= 0, got "
                              f"{self.weight_decay!r}")
        if not 0 < self.lr_decay <= 1:
            raise AnatCLError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")

    def recipe(self):
        """The settings recorded in the checkpoint's ``opts``."""
        return {"model": "resnet18", "optimizer": "adam", "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": float(self.lr),
                "weight_decay": float(self.weight_decay), "lr_step": self.lr_step,
                "lr_decay": float(self.lr_decay), "seed": int(self.seed),
                "gradient_checkpointing": bool(self.gradient_checkpointing),
                "volume_size": list(self.volume_size) if self.volume_size else None}


def check_int(name, value, minimum, why=""):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AnatCLError(f"{name} must be an integer >= {minimum}, got {value!r}"
                          + (f" ({why})" if why else ""))


def pretrain(volumes, descriptors, ages=None, *, out_dir, epochs, batch_size=32, lr=1e-4,
             weight_decay=5e-5, lr_step=10, lr_decay=0.9, temperature=0.1, sigma=2.0,
             age_sigma=None, descriptor="global", alpha=1.0, lambd=1.0, views=2, augment=None,
             device="auto", amp=True, gradient_checkpointing=False, init_weights=None, seed=0,
             resume=True, volume_size=None, num_workers=0, save_every=0, progress=None):
    """Pretrain the AnatCL network with :class:`~anatcl_nipype.training.loss.AnatCLLoss`.

    Parameters
    ----------
    volumes : list of paths or arrays
        CAT12 ``mwp1`` maps, one per subject, read when their batch is due.
    descriptors : array (N, R, M) or (N, F), or RegionalDescriptors
        Raw regional measures, one row per volume (:func:`descriptors_from_table`).
        They are z-scored per column here; the mean and std go into the checkpoint's
        ``opts`` (``descriptor_mean``, ``descriptor_std``), with the atlas, regions and
        measures when a :class:`RegionalDescriptors` is given.
    ages : array (N,), optional
        Ages in years: adds ``lambd`` times the age-kernel term.
    out_dir : path
        Where the checkpoints, the log and the figure go (created if missing).
    epochs, batch_size, lr, weight_decay, lr_step, lr_decay
        Adam with ``StepLR(lr_step, lr_decay)``, stepped once per epoch.
    temperature, sigma, age_sigma, descriptor, alpha, lambd
        The loss (see :mod:`anatcl_nipype.training.loss`); ``age_sigma`` in years,
        defaults to ``sigma``.
    views : int
        Views per subject. Without ``augment`` they are identical (the released
        ``tf_none`` recipe), so the network runs once and its output is repeated: the
        same loss and gradients as running every copy, at 1/``views`` of the cost.
    augment : None or list of "crop", "cutout"
        Random views (:mod:`anatcl_nipype.training.augment`).
    device : "auto", "cpu", "cuda" or "cuda:N"
    amp : bool
        Mixed precision on CUDA (bf16, or fp16 with a gradient scaler); ignored on CPU.
    gradient_checkpointing : bool
        Recompute the activations of the four ResNet stages in the backward pass
        instead of storing them: less GPU memory, about a third more compute.
    init_weights : path, optional
        Start from this checkpoint (e.g. released weights) instead of ``seed``'s random
        initialisation.
    seed : int
        Seeds the initialisation, the data order and the augmentations.
    resume : bool
        Continue the run saved in ``out_dir/last.pth``, if any; its settings and data
        must match (``epochs`` may grow). A run already at ``epochs`` is returned as it
        is. ``False`` starts over and overwrites it.
    volume_size : None, int or 3 ints
        Shrink the volumes (tests, demos); None trains at full size, as AnatCL does.
    num_workers : int
        DataLoader processes reading volumes ahead (2-4 on a GPU machine).
    save_every : int
        Also keep ``epoch<k>.pth`` every ``save_every`` epochs (0: only ``last.pth``).
    progress : callable, optional
        Called with an :class:`EpochRecord` after each epoch's checkpoint is written.

    Returns a :class:`TrainingResult`.
    """
    volumes = list(volumes)
    values, names = descriptor_values(descriptors, len(volumes))
    normalised, scaling = normalise_descriptors(values)
    ages = check_ages(ages, len(volumes))
    augment = check_augmentations(augment)
    check_int("views", views, 1)
    criterion = AnatCLLoss(temperature, sigma, descriptor, alpha, lambd, age_sigma)
    settings = _Settings(epochs, batch_size, lr, weight_decay, lr_step, lr_decay, device, amp,
                         gradient_checkpointing, seed, resume, check_volume_size(volume_size),
                         num_workers, save_every, progress)
    network, init_identity = initial_network(init_weights, seed)
    options = {
        "method": "anatcl-pretrain", **settings.recipe(), **init_identity,
        "n_subjects": len(volumes), "temperature": float(temperature), "sigma": float(sigma),
        "age_sigma": float(criterion.age_sigma), "descriptor": descriptor,
        "alpha": float(alpha), "lambd": float(lambd), "use_age": ages is not None,
        "views": views, "augment": list(augment),
        "kernel": "rbf", "descriptor_shape": list(values.shape[1:]),
        "descriptor_mean": scaling.mean.tolist(), "descriptor_std": scaling.std.tolist(),
        **names,
    }
    run_id = (f"{seed}_resnet18_{'amp' if amp else 'fp32'}_yaware_adam_tf_"
              f"{'_'.join(augment) or 'none'}_lr{lr}_step_step{lr_step}_rate{lr_decay}"
              f"_wd{weight_decay}_bsz{batch_size}_temp{temperature}_views{views}_kernel_rbf"
              f"_sigma{sigma}_alpha{alpha}_anat_{names.get('anat_atlas', 'custom')}"
              f"_normTrue_{descriptor}_lambd{lambd}")
    task = PretrainTask(network, criterion, normalised, ages, views, augment,
                         gradient_checkpointing)
    return _train(task, VolumeDataset(volumes, volume_size), settings, options, run_id,
                  Path(out_dir))


def finetune(volumes, labels, *, task="classification", init_weights, out_dir, epochs,
             freeze_encoder_epochs=0, batch_size=8, lr=1e-4, weight_decay=5e-5, lr_step=10,
             lr_decay=0.9, device="auto", amp=True, gradient_checkpointing=False, seed=0,
             resume=True, volume_size=None, num_workers=0, save_every=0, progress=None):
    """Train the AnatCL encoder and a linear head end to end on one label per volume.

    ``task="classification"``: cross-entropy over the sorted distinct ``labels`` (kept
    in ``opts.classes``); ``"regression"``: mean squared error on the z-scored labels
    (``opts.target_mean``/``target_std``; predictions are ``output * std + mean``). The
    head is ``Linear(512, n_classes or 1)`` on the 512-d representation, saved under
    the checkpoint's ``task_head`` key; ``model`` keeps the whole backbone (the
    projection head as loaded, unused), so the fine-tuned encoder loads in the official
    package and :func:`~anatcl_nipype.encoder.load_checkpoint`.

    For the first ``freeze_encoder_epochs`` epochs the encoder is frozen (no gradients,
    BatchNorm statistics fixed) and only the head learns; then everything does. The
    other options are those of :func:`pretrain`. Returns a :class:`TrainingResult`.
    """
    volumes = list(volumes)
    if task not in FINETUNE_TASKS:
        raise AnatCLError(f"task must be one of {FINETUNE_TASKS}, got {task!r}")
    check_int("freeze_encoder_epochs", freeze_encoder_epochs, 0)
    targets, target_options = finetune_targets(labels, task, len(volumes))
    settings = _Settings(epochs, batch_size, lr, weight_decay, lr_step, lr_decay, device, amp,
                         gradient_checkpointing, seed, resume, check_volume_size(volume_size),
                         num_workers, save_every, progress)
    if init_weights is None:
        raise AnatCLError("finetune needs init_weights: a pretrained AnatCL checkpoint")
    network, init_identity = initial_network(init_weights, seed)
    n_outputs = len(target_options["classes"]) if task == "classification" else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(EMBEDDING_DIM, n_outputs)
    options = {"method": "anatcl-finetune", **settings.recipe(), **init_identity,
               "n_subjects": len(volumes), "task": task,
               "freeze_encoder_epochs": freeze_encoder_epochs, **target_options}
    run_id = (f"{seed}_resnet18_finetune_{task}_adam_lr{lr}_step{lr_step}_rate{lr_decay}"
              f"_wd{weight_decay}_bsz{batch_size}_freeze{freeze_encoder_epochs}")
    objective = FineTuneTask(network, head, targets, task, freeze_encoder_epochs,
                              gradient_checkpointing)
    return _train(objective, VolumeDataset(volumes, volume_size), settings, options, run_id,
                  Path(out_dir))


def _train(task, dataset, settings, options, run_id, out_dir):
    """Run (or resume) the epochs of ``task``; write checkpoints, the log and the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device)
    precision = _precision(settings.amp, device)
    task.to(device)
    optimizer = torch.optim.Adam(task.parameters(), lr=settings.lr,
                                 weight_decay=settings.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, settings.lr_step, settings.lr_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    options = {**options, "precision": precision, "device": device.type,
               "package_version": anatcl_nipype.__version__,
               "torch_version": str(torch.__version__)}
    last = out_dir / LAST_CHECKPOINT
    history = []
    if settings.resume and last.exists():
        history, run_id = resume_run(last, options, task, optimizer, scheduler, scaler)
        LOGGER.info("resuming %s after epoch %d of %d", last, len(history), settings.epochs)
    resumed_from = len(history)
    for epoch in range(resumed_from + 1, settings.epochs + 1):
        started = time.perf_counter()
        loss = _run_epoch(task, dataset, settings, epoch, optimizer, scaler, device, precision)
        record = EpochRecord(epoch, loss, optimizer.param_groups[0]["lr"],
                             time.perf_counter() - started)
        scheduler.step()
        history.append(record)
        content = {**task.state(), "opts": argparse.Namespace(**options),
                   "optimizer": optimizer.state_dict(), "epoch": epoch, "run_id": run_id,
                   "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                   "history": [list(row) for row in history]}
        if settings.save_every and epoch % settings.save_every == 0:
            write_checkpoint(out_dir / f"epoch{epoch:03d}.pth", content)
        write_checkpoint(last, content)
        write_training_log(history, out_dir / LOG_NAME)
        LOGGER.info("epoch %d/%d: loss %.5f, lr %.3g, %.1f s", epoch, settings.epochs, loss,
                    record.lr, record.seconds)
        if settings.progress is not None:
            settings.progress(record)
    write_training_log(history, out_dir / LOG_NAME)
    title = f"AnatCL {options['method'].removeprefix('anatcl-')}: {run_id}"
    figures = plot_loss_curve(history, out_dir / FIGURE_STEM, title)
    return TrainingResult(last, out_dir / LOG_NAME, figures, history, run_id, options,
                          resumed_from)


def _precision(amp, device):
    if not amp or device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _epoch_generators(seed, epoch):
    """Two generators (data order, augmentations) that depend only on (seed, epoch)."""
    seeds = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)
    return [torch.Generator().manual_seed(int(value)) for value in seeds]


def _run_epoch(task, dataset, settings, epoch, optimizer, scaler, device, precision):
    """Train one epoch; return the mean loss over its subjects."""
    order, views = _epoch_generators(settings.seed, epoch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size, shuffle=True, generator=order,
        # a last batch of one subject has nothing to contrast with (and breaks BatchNorm)
        drop_last=len(dataset) % settings.batch_size == 1,
        num_workers=settings.num_workers, pin_memory=device.type == "cuda")
    task.start_epoch(epoch)
    total, count = 0.0, 0
    for indices, volumes in loader:
        volumes = volumes.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = task.loss(indices, volumes, views)
        if not torch.isfinite(loss):
            raise AnatCLError(f"the training loss became {loss.item()} in epoch {epoch}; "
                              "lower lr, or train with amp=False")
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(indices)
        count += len(indices)
    return total / count


def _autocast(device, precision):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
