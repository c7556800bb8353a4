"""Fully connected models for tabular data, 1-D signals, or flattened images."""

from __future__ import annotations

import math

from torch import nn

from evomal.tasks.models.layers import int_sequence


def build_linear(input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """Linear (or logistic) regression: flatten the input, one ``Linear`` layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs))


def build_mlp(
    input_shape: tuple[int, ...], n_outputs: int, *, hidden: tuple[int, ...] = (100, 100)
) -> nn.Module:
    """Multilayer perceptron: flatten, then ``Linear`` + ReLU per entry of ``hidden``.

    ``hidden=()`` reduces it to :func:`build_linear`. (The EvoMAL reference code
    used two hidden layers of 1000 units; pass ``hidden=(1000, 1000)`` for that.)
    """
    sizes = int_sequence("hidden", hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)
