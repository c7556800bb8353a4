"""Plain convolutional networks sized for small images (MNIST 28x28, CIFAR/SVHN 32x32).

Each builder takes ``input_shape = (channels, height, width)``; any channel count
works. Pooling uses ``ceil_mode`` and the classifier sits behind an adaptive
average pool where the original had a fixed flatten size, so 28x28 inputs go
through the same layers as 32x32 ones and the parameter count does not depend
on the image size (LeNet-5 excepted: it pads small images to 32x32, as LeCun
et al. padded MNIST).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evomal.errors import ModelError
from evomal.tasks.models.layers import (
    choice,
    conv_bn_relu,
    flag,
    init_conv_kaiming,
    positive_float,
    positive_int,
    probability,
    scaled,
)


def build_lenet5(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    activation: str = "tanh",
    pad_to_32: bool = True,
    init: str = "default",
) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998): conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc.

    Images smaller than 32x32 are zero-padded by the first convolution up to
    about 32x32 (padding 2 for MNIST), so a 28x28 model has the classic 61,706
    parameters for 10 classes. Classic tanh and average-pool subsampling by
    default; ``activation="relu"`` for the modern variant.

    The EvoMAL authors' LeNet-5 (``shared/paper/reference-configs.md``) is
    ``pad_to_32=False`` (no padding: the first linear layer takes 16 x 4 x 4 =
    256 features on MNIST) with ``init="xavier"`` (Xavier-uniform weights,
    zero biases); ``init="default"`` keeps PyTorch's layer defaults.
    """
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[choice("activation", activation, ("tanh", "relu"))]
    choice("init", init, ("default", "xavier"))
    channels, height, width = input_shape
    padding = max(0, (32 - min(height, width) + 1) // 2) if flag("pad_to_32", pad_to_32) else 0
    if min(height, width) + 2 * padding < 16:
        raise ModelError(
            f"LeNet-5 needs images of at least 16x16 (after padding), got {height}x{width}"
        )

    def side(size: int) -> int:
        return ((size + 2 * padding - 4) // 2 - 4) // 2

    model = nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=padding),
        act(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        act(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side(height) * side(width), 120),
        act(),
        nn.Linear(120, 84),
        act(),
        nn.Linear(84, n_outputs),
    )
    if init == "xavier":
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


def build_alexnet(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    width: float = 1.0,
    hidden: int = 4096,
    dropout: float = 0.0,
) -> nn.Module:
    """AlexNet (Krizhevsky et al. 2012) adapted to 32x32 images.

    Five 3x3 convolutions (64-192-384-256-256 channels; the first with stride 2)
    with three 2x2 max-pools, then two fully connected layers of ``hidden``
    units on the 256x2x2 feature map. This is the variant of the EvoMAL
    reference code (about 23.3M parameters, most in the classifier); its
    dropout was 0, which is the default here too.
    """
    w = positive_float("width", width)
    hidden = positive_int("hidden", hidden)
    p = probability("dropout", dropout)
    c1, c2, c3, c4, c5 = (scaled(c, w) for c in (64, 192, 384, 256, 256))
    features = [
        *conv_bn_relu(input_shape[0], c1, 3, stride=2, padding=1, batch_norm=False),
        nn.MaxPool2d(2, ceil_mode=True),
        *conv_bn_relu(c1, c2, 3, padding=1, batch_norm=False),
        nn.MaxPool2d(2, ceil_mode=True),
        *conv_bn_relu(c2, c3, 3, padding=1, batch_norm=False),
        *conv_bn_relu(c3, c4, 3, padding=1, batch_norm=False),
        *conv_bn_relu(c4, c5, 3, padding=1, batch_norm=False),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    ]
    classifier: list[nn.Module] = []
    for n_in in (c5 * 4, hidden):
        classifier += [nn.Dropout(p)] if p > 0 else []
        classifier += [nn.Linear(n_in, hidden), nn.ReLU()]
    classifier.append(nn.Linear(hidden, n_outputs))
    return init_conv_kaiming(nn.Sequential(*features, *classifier))


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def build_vgg16(input_shape: tuple[int, ...], n_outputs: int, *, width: float = 1.0) -> nn.Module:
    """VGG-16 with BatchNorm (Simonyan & Zisserman 2015), CIFAR variant.

    Thirteen 3x3 conv-BN-ReLU layers in five blocks separated by 2x2 max-pools,
    then global average pooling and a single linear classifier (the usual
    CIFAR head instead of the 4096-4096 ImageNet head): about 14.7M parameters.
    """
    w = positive_float("width", width)
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for item in _VGG16:
        if isinstance(item, str):
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            out = scaled(item, w)
            layers += conv_bn_relu(channels, out, 3, padding=1)
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_outputs)]
    return init_conv_kaiming(nn.Sequential(*layers))


def build_allcnnc(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    width: float = 1.0,
    dropout: float = 0.0,
    batch_norm: bool = True,
) -> nn.Module:
    """All-CNN-C (Springenberg et al. 2015): no pooling layers, only convolutions.

    conv3(96)x2, conv3(96) stride 2, conv3(192)x2, conv3(192) stride 2,
    conv3(192) unpadded, conv1(192), conv1(n_outputs), global average pool
    (over 6x6 for a 32x32 input); about 1.37M parameters. The original used
    dropout 0.5 after each strided layer and no BatchNorm; the EvoMAL reference
    code added BatchNorm. Dropout defaults to 0 here so the model vmaps in
    training mode without a randomness flag; pass ``dropout=0.5`` for the
    original regularisation. The last convolution gives the logits directly.
    """
    w = positive_float("width", width)
    p = probability("dropout", dropout)
    bn = flag("batch_norm", batch_norm)
    c1, c2 = scaled(96, w), scaled(192, w)
    drop: list[nn.Module] = [nn.Dropout(p)] if p > 0 else []
    layers = [
        *conv_bn_relu(input_shape[0], c1, 3, padding=1, batch_norm=bn),
        *conv_bn_relu(c1, c1, 3, padding=1, batch_norm=bn),
        *conv_bn_relu(c1, c1, 3, stride=2, padding=1, batch_norm=bn),
        *drop,
        *conv_bn_relu(c1, c2, 3, padding=1, batch_norm=bn),
        *conv_bn_relu(c2, c2, 3, padding=1, batch_norm=bn),
        *conv_bn_relu(c2, c2, 3, stride=2, padding=1, batch_norm=bn),
        *drop,
        *conv_bn_relu(c2, c2, 3, batch_norm=bn),
        *conv_bn_relu(c2, c2, 1, batch_norm=bn),
        nn.Conv2d(c2, n_outputs, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ]
    return init_conv_kaiming(nn.Sequential(*layers))


class Fire(nn.Module):
    """SqueezeNet fire module: a 1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated."""

    def __init__(self, in_channels: int, squeeze: int, expand: int, batch_norm: bool) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(*conv_bn_relu(in_channels, squeeze, 1, batch_norm=batch_norm))
        self.expand1x1 = nn.Sequential(*conv_bn_relu(squeeze, expand, 1, batch_norm=batch_norm))
        self.expand3x3 = nn.Sequential(
            *conv_bn_relu(squeeze, expand, 3, padding=1, batch_norm=batch_norm)
        )

    def forward(self, x: Tensor) -> Tensor:
        squeezed = self.squeeze(x)
        return torch.cat([self.expand1x1(squeezed), self.expand3x3(squeezed)], dim=1)


# SqueezeNet 1.1: (squeeze, expand) per fire module; "M" is a 3x3 stride-2 max-pool.
_SQUEEZENET_1_1 = (
    (16, 64),
    (16, 64),
    "M",
    (32, 128),
    (32, 128),
    "M",
    (48, 192),
    (48, 192),
    (64, 256),
    (64, 256),
)


def build_squeezenet(
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    width: float = 1.0,
    dropout: float = 0.0,
    batch_norm: bool = True,
) -> nn.Module:
    """SqueezeNet 1.1 (Iandola et al. 2016) adapted to 32x32 images.

    The 1.1 layout of eight fire modules, with the stem changed for small
    images: a 3x3 stride-1 convolution (64 channels) instead of 3x3 stride 2,
    then the three 3x3 stride-2 max-pools (32 -> 16 -> 8 -> 4). BatchNorm in
    every convolution (as in the EvoMAL reference code's CIFAR SqueezeNet) and
    no ReLU after the final 1x1 classifier convolution, so logits can be
    negative; about 0.73M parameters. The original's dropout 0.5 before the
    classifier is off by default (see :func:`build_allcnnc`).
    """
    w = positive_float("width", width)
    p = probability("dropout", dropout)
    bn = flag("batch_norm", batch_norm)
    channels = scaled(64, w)
    layers: list[nn.Module] = [
        *conv_bn_relu(input_shape[0], channels, 3, padding=1, batch_norm=bn),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    ]
    for item in _SQUEEZENET_1_1:
        if isinstance(item, str):
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        else:
            squeeze, expand = (scaled(c, w) for c in item)
            layers.append(Fire(channels, squeeze, expand, bn))
            channels = 2 * expand
    layers += [nn.Dropout(p)] if p > 0 else []
    layers += [nn.Conv2d(channels, n_outputs, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return init_conv_kaiming(nn.Sequential(*layers))
