"""Models as a user would write them, importable by path for the process executor and the CLI.

``build_mlp`` and ``build_cnn`` follow the builder convention
``builder(input_shape, n_outputs, seed) -> nn.Module``; the classes are also
passed as ``nn.Module`` templates.
"""

import math

import torch
from torch import nn


class SmallCNN(nn.Module):
    """One convolution, pooling and a linear head, for (channels, height, width) inputs."""

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(4 * (height // 2) * (width // 2), n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))


def build_cnn(input_shape: tuple[int, ...], n_outputs: int, seed: int) -> nn.Module:
    return SmallCNN(input_shape, n_outputs)


def build_mlp(input_shape: tuple[int, ...], n_outputs: int, seed: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.Tanh(), nn.Linear(16, n_outputs)
    )


class NoReset(nn.Module):
    """A layer with a parameter of its own and no ``reset_parameters``."""

    def __init__(self, features: int, n_outputs: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))
        self.head = nn.Linear(features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x * self.scale)


class ItemInForward(nn.Module):
    """Data-dependent Python control flow (``.item()``): fine eagerly, impossible under vmap."""

    def __init__(self, features: int, n_outputs: int) -> None:
        super().__init__()
        self.head = nn.Linear(features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x)
        return out if out.sum().item() < 1e9 else out * 0


class ParameterTypeCheck(nn.Module):
    """Insists its weight is an ``nn.Parameter``, which ``functional_call`` replaces."""

    def __init__(self, features: int, n_outputs: int) -> None:
        super().__init__()
        self.head = nn.Linear(features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.head.weight, nn.Parameter):
            raise TypeError("head.weight must be an nn.Parameter")
        return self.head(x)
