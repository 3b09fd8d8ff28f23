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
import functools
import logging
import math
import reprlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

import anatcl_nipype
from anatcl_nipype.training.augment import augment_batch, check_augmentations
from anatcl_nipype.encoder.checkpoint import load_checkpoint, read_checkpoint_file
from anatcl_nipype.training.descriptors import RegionalDescriptors
from anatcl_nipype.training.loss import AnatCLLoss, normalise_descriptors
from anatcl_nipype.encoder.model import EMBEDDING_DIM, AnatCLNetwork
from anatcl_nipype.encoder.runner import resolve_device
from anatcl_nipype.encoder.volumes import (
    CAT12_SHAPE,
    check_volume_values,
    crop_to_anatcl,
    load_cat12_volume,
)
from anatcl_nipype.errors import AnatCLError, CheckpointError
from anatcl_nipype.files import atomic_write
from anatcl_nipype.options import FINETUNE_TASKS

LOGGER = logging.getLogger("anatcl_nipype.encoder")
LAST_CHECKPOINT = "last.pth"
LOG_NAME = "training_log.tsv"
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds")
FIGURE_STEM = "loss_curve"
#: Settings that may change when a run is resumed (the others must match the saved run).
RESUMABLE_CHANGES = ("epochs", "precision", "device", "gradient_checkpointing",
                     "package_version", "torch_version")
#: Keys a checkpoint needs to be resumed from, besides the task's own.
RESUME_KEYS = ("opts", "optimizer", "epoch", "run_id", "scheduler", "history")


class EpochRecord(NamedTuple):
    """One epoch: its number (from 1), mean training loss, learning rate and duration."""

    epoch: int
    loss: float
    lr: float
    seconds: float


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
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 2, "BatchNorm and the contrastive loss "
                                                     "need at least 2 volumes per batch")
        _check_int("lr_step", self.lr_step, 1)
        _check_int("num_workers", self.num_workers, 0)
        _check_int("save_every", self.save_every, 0)
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


def _check_int(name, value, minimum, why=""):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AnatCLError(f"{name} must be an integer >= {minimum}, got {value!r}"
                          + (f" ({why})" if why else ""))


class VolumeDataset(torch.utils.data.Dataset):
    """Grey-matter maps as ``(index, (1, X, Y, Z) float32 tensor)``, read when asked for.

    A path is read with :func:`~anatcl_nipype.encoder.volumes.load_cat12_volume`
    (checked, cropped to 121x128x121); an array is used as it is (cropped if on the
    CAT12 grid). ``volume_size`` (an int or 3 ints) resizes by averaging (``area``).

    >>> import numpy as np
    >>> dataset = VolumeDataset([np.ones((121, 145, 121), np.float32)], volume_size=16)
    >>> index, volume = dataset[0]
    >>> index, tuple(volume.shape)
    (0, (1, 16, 16, 16))
    """

    def __init__(self, volumes, volume_size=None):
        self.volumes = list(volumes)
        self.volume_size = _check_volume_size(volume_size)

    def __len__(self):
        return len(self.volumes)

    def __getitem__(self, index):
        volume = torch.from_numpy(_read_volume(self.volumes[index]))[None]
        if self.volume_size:
            volume = F.interpolate(volume[None], size=self.volume_size, mode="area")[0]
        return index, volume


def _check_volume_size(volume_size):
    if volume_size is None:
        return None
    size = (volume_size,) * 3 if isinstance(volume_size, int) else tuple(volume_size)
    if len(size) != 3 or not all(isinstance(side, int) and side >= 8 for side in size):
        raise AnatCLError(f"volume_size must be None (full size), an integer >= 8 or 3 of "
                          f"them, got {volume_size!r}")
    return size


def _read_volume(item):
    if not isinstance(item, np.ndarray):
        return load_cat12_volume(item)
    volume = np.asarray(item, dtype=np.float32)
    volume = crop_to_anatcl(volume) if volume.shape == CAT12_SHAPE else volume
    check_volume_values(volume)
    return np.ascontiguousarray(volume)


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
    values, names = _descriptor_values(descriptors, len(volumes))
    normalised, scaling = normalise_descriptors(values)
    ages = _check_ages(ages, len(volumes))
    augment = check_augmentations(augment)
    _check_int("views", views, 1)
    criterion = AnatCLLoss(temperature, sigma, descriptor, alpha, lambd, age_sigma)
    settings = _Settings(epochs, batch_size, lr, weight_decay, lr_step, lr_decay, device, amp,
                         gradient_checkpointing, seed, resume, _check_volume_size(volume_size),
                         num_workers, save_every, progress)
    network, init_identity = _initial_network(init_weights, seed)
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
    task = _PretrainTask(network, criterion, normalised, ages, views, augment,
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
    _check_int("freeze_encoder_epochs", freeze_encoder_epochs, 0)
    targets, target_options = _targets(labels, task, len(volumes))
    settings = _Settings(epochs, batch_size, lr, weight_decay, lr_step, lr_decay, device, amp,
                         gradient_checkpointing, seed, resume, _check_volume_size(volume_size),
                         num_workers, save_every, progress)
    if init_weights is None:
        raise AnatCLError("finetune needs init_weights: a pretrained AnatCL checkpoint")
    network, init_identity = _initial_network(init_weights, seed)
    n_outputs = len(target_options["classes"]) if task == "classification" else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(EMBEDDING_DIM, n_outputs)
    options = {"method": "anatcl-finetune", **settings.recipe(), **init_identity,
               "n_subjects": len(volumes), "task": task,
               "freeze_encoder_epochs": freeze_encoder_epochs, **target_options}
    run_id = (f"{seed}_resnet18_finetune_{task}_adam_lr{lr}_step{lr_step}_rate{lr_decay}"
              f"_wd{weight_decay}_bsz{batch_size}_freeze{freeze_encoder_epochs}")
    objective = _FineTuneTask(network, head, targets, task, freeze_encoder_epochs,
                              gradient_checkpointing)
    return _train(objective, VolumeDataset(volumes, volume_size), settings, options, run_id,
                  Path(out_dir))


def _descriptor_values(descriptors, n_subjects):
    names = {}
    if isinstance(descriptors, RegionalDescriptors):
        names = {"anat_atlas": descriptors.atlas, "anat_regions": list(descriptors.regions),
                 "anat_measures": list(descriptors.measures)}
        descriptors = descriptors.values
    values = torch.as_tensor(np.asarray(descriptors, dtype=np.float64))
    if values.ndim == 0 or len(values) != n_subjects:
        raise AnatCLError(f"descriptors of shape {tuple(values.shape)} for {n_subjects} "
                          "volumes: give one row of regional measures per volume, same order")
    if n_subjects < 2:
        raise AnatCLError(f"{n_subjects} volume(s): training needs at least 2 subjects")
    return values, names


def _check_ages(ages, n_subjects):
    if ages is None:
        return None
    ages = torch.as_tensor(np.asarray(ages, dtype=np.float64))
    if tuple(ages.shape) != (n_subjects,) or not torch.isfinite(ages).all():
        raise AnatCLError(f"ages must be {n_subjects} finite numbers, one per volume, got "
                          f"{reprlib.repr(ages.tolist())}")
    return ages


def _targets(labels, task, n_subjects):
    labels = np.asarray(labels)
    if labels.shape != (n_subjects,):
        raise AnatCLError(f"labels of shape {labels.shape} for {n_subjects} volumes: give one "
                          "label per volume, in the same order")
    if n_subjects < 2:
        raise AnatCLError(f"{n_subjects} volume(s): training needs at least 2 subjects")
    if task == "classification":
        classes, indices = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise AnatCLError(f"every label is {str(classes[0])!r}: classification needs 2 classes "
                              "or more")
        return torch.as_tensor(indices), {"classes": [str(c) for c in classes]}
    values = labels.astype(np.float64)
    if not np.isfinite(values).all() or values.std() == 0:
        raise AnatCLError("regression labels must be finite numbers that are not all equal")
    mean, std = float(values.mean()), float(values.std())
    return torch.as_tensor((values - mean) / std, dtype=torch.float32), {
        "target_mean": mean, "target_std": std}


def _initial_network(init_weights, seed):
    """Return the network to train (seeded random, or ``init_weights``) and its identity."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = AnatCLNetwork()
    if init_weights is None:
        return network, {"init_weights": None, "init_weights_sha256": None}
    loaded = load_checkpoint(init_weights)
    network.load_state_dict(loaded.state_dict)
    return network, {"init_weights": str(loaded.path.resolve()),
                     "init_weights_sha256": loaded.sha256}


def encode_features(encoder, volumes, gradient_checkpointing=False):
    """Run the ResNet ``encoder`` on a (B, 1, X, Y, Z) batch; return (B, 512) features.

    With ``gradient_checkpointing`` the four stages keep no activations for the backward
    pass and recompute them there; BatchNorm running statistics are updated once, as
    without it.

    >>> from anatcl_nipype.encoder.model import ResNet3d18
    >>> encode_features(ResNet3d18(), torch.zeros(2, 1, 16, 16, 16), True).shape
    torch.Size([2, 512])
    """
    if not gradient_checkpointing:
        return encoder(volumes)
    x = encoder.maxpool(encoder.relu(encoder.bn1(encoder.conv1(volumes))))
    for index in range(1, 5):
        stage = getattr(encoder, f"layer{index}")
        x = checkpoint(stage, x, use_reentrant=False,
                       context_fn=functools.partial(_recompute_contexts, stage))
    return torch.flatten(encoder.avgpool(x), 1)


def _recompute_contexts(stage):
    return contextlib.nullcontext(), _restoring_buffers(stage)


@contextlib.contextmanager
def _restoring_buffers(module):
    """Undo the second BatchNorm running-statistics update that recomputing a stage makes."""
    saved = [buffer.clone() for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved):
                buffer.copy_(value)


class _PretrainTask:
    """The contrastive objective: ``views`` views of each subject, encoder and head."""

    def __init__(self, network, criterion, descriptors, ages, views, augment, checkpointing):
        self.network, self.criterion = network, criterion
        self.descriptors, self.ages = descriptors, ages
        self.views, self.augment, self.checkpointing = views, augment, checkpointing

    def to(self, device):
        self.network.to(device)
        self.descriptors = self.descriptors.to(device, torch.float32)
        if self.ages is not None:
            self.ages = self.ages.to(device, torch.float32)

    def parameters(self):
        return list(self.network.parameters())

    def start_epoch(self, epoch):
        self.network.train()

    def loss(self, indices, volumes, generator):
        indices = indices.to(self.descriptors.device)
        ages = None if self.ages is None else self.ages[indices]
        return self.criterion(self._projections(volumes, generator), self.descriptors[indices],
                              ages)

    def _projections(self, volumes, generator):
        """Return (B, views, 128) L2-normalised projections."""
        if not self.augment:
            return self._project(volumes)[:, None].expand(-1, self.views, -1)
        views = torch.cat([augment_batch(volumes, self.augment, generator)
                           for _ in range(self.views)])
        return self._project(views).reshape(self.views, len(volumes), -1).transpose(0, 1)

    def _project(self, volumes):
        features = encode_features(self.network.encoder, volumes, self.checkpointing)
        return F.normalize(self.network.head(features), dim=1)

    def state(self):
        return {"model": self.network.state_dict()}

    def load(self, saved):
        self.network.load_state_dict(saved["model"])


class _FineTuneTask:
    """Supervised objective: encoder, then a linear head, on one label per subject."""

    def __init__(self, network, head, targets, task, freeze_encoder_epochs, checkpointing):
        self.network, self.head, self.targets = network, head, targets
        self.criterion = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
        self.freeze_encoder_epochs, self.checkpointing = freeze_encoder_epochs, checkpointing
        self.frozen = False

    def to(self, device):
        self.network.to(device)
        self.head.to(device)
        self.targets = self.targets.to(device)

    def parameters(self):
        return [*self.network.encoder.parameters(), *self.head.parameters()]

    def start_epoch(self, epoch):
        self.frozen = epoch <= self.freeze_encoder_epochs
        self.network.train()
        self.head.train()
        self.network.encoder.train(not self.frozen)
        for parameter in self.network.encoder.parameters():
            parameter.requires_grad_(not self.frozen)

    def loss(self, indices, volumes, generator):
        with torch.set_grad_enabled(not self.frozen):
            features = encode_features(self.network.encoder, volumes,
                                       self.checkpointing and not self.frozen)
        output = self.head(features)
        targets = self.targets[indices.to(self.targets.device)]
        return self.criterion(output if output.shape[1] > 1 else output[:, 0], targets)

    def state(self):
        return {"model": self.network.state_dict(), "task_head": self.head.state_dict()}

    def load(self, saved):
        if "task_head" not in saved:
            raise CheckpointError("the checkpoint to resume from has no task_head: it was "
                                  "not written by finetune; pass resume=False or another out_dir")
        self.network.load_state_dict(saved["model"])
        self.head.load_state_dict(saved["task_head"])


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
        history, run_id = _resume(last, options, task, optimizer, scheduler, scaler)
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
            _write_checkpoint(out_dir / f"epoch{epoch:03d}.pth", content)
        _write_checkpoint(last, content)
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


def _write_checkpoint(path, content):
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


def _resume(path, options, task, optimizer, scheduler, scaler):
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


def write_training_log(history, path):
    """Write the epochs as a TSV (``epoch``, ``loss``, ``lr``, ``seconds``), atomically.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.tsv"
    >>> write_training_log([EpochRecord(1, 4.25, 1e-4, 12.3456)], path).read_text().split()
    ['epoch', 'loss', 'lr', 'seconds', '1', '4.25', '0.0001', '12.346']
    """
    rows = ["\t".join(LOG_COLUMNS)]
    rows += [f"{r.epoch}\t{r.loss!r}\t{r.lr!r}\t{r.seconds:.3f}" for r in history]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    return Path(path)


def plot_loss_curve(history, out_stem, title=""):
    """Draw the training loss per epoch; write ``<out_stem>.svg`` and ``.png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([r.epoch for r in history], [r.loss for r in history], marker="o")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="Epoch", ylabel="Training loss")
    axes.set_title(title, fontsize="small", wrap=True)
    FigureCanvasAgg(figure)
    paths = []
    for kind in ("svg", "png"):
        path = Path(out_stem).with_name(f"{Path(out_stem).name}.{kind}")
        with atomic_write(path) as tmp:
            figure.savefig(tmp, format=kind, dpi=100,
                           metadata={"Date": None} if kind == "svg" else None)
        paths.append(path)
    return tuple(paths)
