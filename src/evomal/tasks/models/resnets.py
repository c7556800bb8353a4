"""Residual networks in their CIFAR form: a 3x3 stem, no stem max-pool, global average pool.

All four families take ``input_shape = (channels, height, width)`` with any
channel count; stride-2 stages shrink 32x32 to 4x4 (ResNet-18) or 8x8 (the
three-stage networks), and 28x28 inputs go through the same layers.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from evomal.errors import ModelError
from evomal.tasks.models.layers import (
    choice,
    init_conv_kaiming,
    positive_float,
    positive_int,
    probability,
    scaled,
)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


def _head(channels: int, n_outputs: int) -> list[nn.Module]:
    """Final BN-ReLU of a pre-activation network, global average pool, linear classifier."""
    return [
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, n_outputs),
    ]


class BasicBlock(nn.Module):
    """Post-activation residual block (He et al. 2015): conv-BN-ReLU-conv-BN, add, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv3x3-BN-ReLU-conv3x3.

    Also the wide-ResNet block, with optional dropout between the convolutions.
    A projection shortcut (1x1 conv) is used when the shape changes, applied to
    the pre-activated input as in the authors' code.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.projection: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.projection = _conv1x1(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 (4x wider)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out_channels)
        self.projection: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.projection = _conv1x1(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(pre)
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


def build_resnet18(
    input_shape: tuple[int, ...], n_outputs: int, *, width: float = 1.0
) -> nn.Module:
    """ResNet-18 (He et al. 2015), CIFAR form: 3x3 stem, no max-pool, basic blocks [2, 2, 2, 2].

    Stages of 64-128-256-512 channels (times ``width``); about 11.2M parameters.
    """
    w = positive_float("width", width)
    stem = scaled(64, w)
    layers: list[nn.Module] = [_conv3x3(input_shape[0], stem), nn.BatchNorm2d(stem), nn.ReLU()]
    channels = stem
    for stage, planes in enumerate(scaled(c, w) for c in (64, 128, 256, 512)):
        for index in range(2):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(BasicBlock(channels, planes, stride))
            channels = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_outputs)]
    return init_conv_kaiming(nn.Sequential(*layers))


def build_preresnet(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    depth: int = 101,
    block: str = "auto",
    width: float = 1.0,
) -> nn.Module:
    """Pre-activation ResNet (He et al. 2016), CIFAR form: three stages of 16-32-64 planes.

    ``depth = 6n + 2`` with basic blocks or ``9n + 2`` with bottleneck blocks
    (4x expansion), n blocks per stage. ``block="auto"`` follows the naming in
    He et al.: basic blocks for the 6n+2 depths up to 110 (20, 32, 44, 56, 110),
    bottlenecks otherwise (101, 164, 1001). The default, the paper's
    "Preactivation ResNet-101", is therefore the CIFAR bottleneck network with
    11 blocks per stage (about 1.1M parameters), not the ImageNet ResNet-101.
    The EvoMAL reference code instead defaulted to PreResNet-110 with basic
    blocks (``depth=110``, about 1.7M parameters).
    """
    depth = positive_int("depth", depth, minimum=8)
    kind = choice("block", block, ("auto", "basic", "bottleneck"))
    if kind == "auto":
        kind = "basic" if (depth - 2) % 6 == 0 and depth <= 110 else "bottleneck"
    per_block = 6 if kind == "basic" else 9
    if (depth - 2) % per_block != 0:
        raise ModelError(
            f"option depth={depth} is invalid: expected 6n+2 for basic blocks (e.g. 20, 56, 110) "
            f"or 9n+2 for bottleneck blocks (e.g. 11, 101, 164); block={block!r}"
        )
    n = (depth - 2) // per_block
    w = positive_float("width", width)
    stem = scaled(16, w)
    layers: list[nn.Module] = [_conv3x3(input_shape[0], stem)]
    channels = stem
    for stage, planes in enumerate(scaled(c, w) for c in (16, 32, 64)):
        for index in range(n):
            stride = 2 if stage > 0 and index == 0 else 1
            if kind == "basic":
                layers.append(PreActBlock(channels, planes, stride))
                channels = planes
            else:
                layers.append(PreActBottleneck(channels, planes, stride))
                channels = planes * PreActBottleneck.expansion
    layers += _head(channels, n_outputs)
    return init_conv_kaiming(nn.Sequential(*layers))


def build_wideresnet(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    depth: int = 28,
    widen: int = 10,
    dropout: float = 0.0,
) -> nn.Module:
    """Wide ResNet WRN-depth-widen (Zagoruyko & Komodakis 2016); WRN-28-10 by default.

    ``depth = 6n + 4``: a 3x3 stem of 16 channels, three stages of n
    pre-activation basic blocks with 16k-32k-64k channels (k = ``widen``),
    dropout between each block's convolutions. WRN-28-10 has about 36.5M
    parameters. Dropout defaults to 0 as in the EvoMAL reference code (the WRN
    paper also reports 0.3).
    """
    depth = positive_int("depth", depth, minimum=10)
    if (depth - 4) % 6 != 0:
        raise ModelError(f"option depth={depth} is invalid: expected 6n+4 (e.g. 10, 16, 28, 40)")
    widen = positive_int("widen", widen)
    p = probability("dropout", dropout)
    n = (depth - 4) // 6
    layers: list[nn.Module] = [_conv3x3(input_shape[0], 16)]
    channels = 16
    for stage, planes in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for index in range(n):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(PreActBlock(channels, planes, stride, dropout=p))
            channels = planes
    layers += _head(channels, n_outputs)
    return init_conv_kaiming(nn.Sequential(*layers))


class PyramidBlock(nn.Module):
    """PyramidNet basic block (Han et al. 2017): BN-conv3x3-BN-ReLU-conv3x3-BN.

    The shortcut is parameter-free: 2x2 average pooling when the block
    downsamples, and zero channels appended when the block widens.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.extra_channels = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.bn3(self.conv2(F.relu(self.bn2(out))))
        shortcut = self.pool(x)
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return out + shortcut


def build_pyramidnet(
    input_shape: tuple[int, ...], n_outputs: int, *, depth: int = 110, alpha: float = 48
) -> nn.Module:
    """Additive PyramidNet (Han et al. 2017) with basic blocks; PyramidNet-110 (alpha 48) default.

    ``depth = 6n + 2``: 3n blocks whose width grows linearly by ``alpha / 3n``
    channels per block from 16 to 16 + alpha, halving the resolution at the
    start of the second and third thirds. 110/48 is the setting of the EvoMAL
    reference code (and a configuration of the PyramidNet paper): about 1.7M
    parameters.
    """
    depth = positive_int("depth", depth, minimum=8)
    if (depth - 2) % 6 != 0:
        raise ModelError(f"option depth={depth} is invalid: expected 6n+2 (e.g. 8, 20, 110)")
    growth = positive_float("alpha", alpha)
    n = (depth - 2) // 6
    layers: list[nn.Module] = [_conv3x3(input_shape[0], 16), nn.BatchNorm2d(16)]
    channels, exact_width = 16, 16.0
    for index in range(3 * n):
        exact_width += growth / (3 * n)
        out = round(exact_width)
        stride = 2 if index in (n, 2 * n) else 1
        layers.append(PyramidBlock(channels, out, stride))
        channels = out
    layers += _head(channels, n_outputs)
    return init_conv_kaiming(nn.Sequential(*layers))
