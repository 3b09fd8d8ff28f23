"""The AnatCL network: a 3D ResNet-18 backbone and its projection head.

Module and parameter names match the official checkpoints exactly
(``encoder.conv1.weight`` ... ``encoder.layer4.1.bn2.num_batches_tracked``,
``head.0.weight`` ... ``head.2.bias``), so an official ``weights.pth`` loads with
no renaming.

>>> net = AnatCLNetwork()
>>> sum(p.numel() for p in net.parameters())
33488320
>>> len(net.state_dict())
124
"""

import torch
from torch import nn
from torch.nn import functional as F

EMBEDDING_DIM = 512
PROJECTION_DIM = 128
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)


def _conv3x3x3(in_channels, out_channels, stride=1):
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock3d(nn.Module):
    """Two 3x3x3 conv-BN layers with an identity (or 1x1x1 conv-BN) shortcut."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = _conv3x3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet3d18(nn.Module):
    """3D ResNet-18 for one-channel volumes; returns the 512-d pooled representation.

    >>> ResNet3d18().eval()(torch.zeros(1, 1, 16, 16, 16)).shape
    torch.Size([1, 512])
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        for index, (width, blocks) in enumerate(zip(STAGE_WIDTHS, BLOCKS_PER_STAGE), start=1):
            stride = 1 if index == 1 else 2
            stage = [BasicBlock3d(in_channels, width, stride)]
            stage += [BasicBlock3d(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            in_channels = width
        self.avgpool = nn.AdaptiveAvgPool3d(1)

    def feature_maps(self, x):
        """Return the output of each stage: ``{"layer1": ..., ..., "layer4": ...}``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = {}
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
            maps[f"layer{index}"] = x
        return maps

    def forward(self, x):
        return torch.flatten(self.avgpool(self.feature_maps(x)["layer4"]), 1)


class AnatCLNetwork(nn.Module):
    """Backbone (``encoder``) plus the MLP projection head (``head``) used in pretraining.

    ``forward(x)`` gives the 512-d representation that downstream work uses;
    ``forward(x, use_head=True)`` gives the L2-normalised 128-d projection.

    >>> net = AnatCLNetwork().eval()
    >>> x = torch.zeros(2, 1, 16, 16, 16)
    >>> net(x).shape, net(x, use_head=True).shape
    (torch.Size([2, 512]), torch.Size([2, 128]))
    """

    def __init__(self):
        super().__init__()
        self.encoder = ResNet3d18()
        self.head = nn.Sequential(
            nn.Linear(EMBEDDING_DIM, EMBEDDING_DIM),
            nn.ReLU(inplace=True),
            nn.Linear(EMBEDDING_DIM, PROJECTION_DIM),
        )

    def forward(self, x, use_head=False):
        features = self.encoder(x)
        if not use_head:
            return features
        return F.normalize(self.head(features), dim=1)
