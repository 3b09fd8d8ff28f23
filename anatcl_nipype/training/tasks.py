"""The two training objectives the loops optimise: AnatCL's contrastive pretraining and
supervised fine-tuning with a linear head; the network they start from."""

import contextlib
import functools

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from anatcl_nipype.encoder.checkpoint import load_checkpoint
from anatcl_nipype.encoder.model import AnatCLNetwork
from anatcl_nipype.errors import CheckpointError
from anatcl_nipype.training.augment import augment_batch


def initial_network(init_weights, seed):
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


class PretrainTask:
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


class FineTuneTask:
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
