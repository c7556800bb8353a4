"""A user's own model for evomal: a builder ``build(input_shape, n_outputs, seed)``.

Used by the README's worked example:
``evomal search --task csv:wine.csv --target class --model examples.custom_model:build``.
evomal seeds torch's generator before calling it, so the layers' default
initialisation is already reproducible; ``seed`` is there for builders that
draw their own random numbers.
"""

import math

from torch import nn


def build(input_shape: tuple[int, ...], n_outputs: int, seed: int) -> nn.Module:
    """A two-layer tanh MLP over the flattened input."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 32),
        nn.Tanh(),
        nn.Linear(32, n_outputs),
    )
