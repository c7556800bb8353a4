"""Known regression losses, one per-sample function each.

Each takes predictions ``[B, D]`` (or ``[B]``) and targets of the same number
of elements (``[B]`` targets match ``[B, 1]`` predictions) and returns the
``[B]`` per-sample losses, each the mean over the ``D`` outputs. The mean over
the batch is then the mean over every element, as evomal's task loss
(``F.mse_loss``) takes it, so :func:`mse` averaged over the batch is the task
loss.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from evomal.symbolic.transforms import regression_inputs


def _per_sample(values: Tensor) -> Tensor:
    """The mean over outputs of elementwise losses shaped ``[B, ...]``."""
    return values.reshape(values.shape[0], -1).mean(dim=1)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error ``(f - y)^2``: the maximum-likelihood loss under Gaussian noise."""
    pred, target = regression_inputs(pred, target)
    return _per_sample(F.mse_loss(pred, target, reduction="none"))


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute error ``|f - y|``: estimates the conditional median, robust to outliers."""
    pred, target = regression_inputs(pred, target)
    return _per_sample(F.l1_loss(pred, target, reduction="none"))


def huber(pred: Tensor, target: Tensor, delta: float = 1.0) -> Tensor:
    """Huber loss: ``d^2 / 2`` for ``|d| <= delta``, else ``delta (|d| - delta / 2)``.

    Huber, "Robust Estimation of a Location Parameter", Annals of
    Mathematical Statistics 1964: quadratic near zero, linear in the tails.
    Equal to ``F.huber_loss(delta=delta)``; ``delta`` is in the targets' units
    (the zoo's grid assumes standardised targets).
    """
    pred, target = regression_inputs(pred, target)
    return _per_sample(F.huber_loss(pred, target, reduction="none", delta=delta))


def log_cosh(pred: Tensor, target: Tensor) -> Tensor:
    """Log-cosh ``log cosh(f - y)``: smooth, about ``d^2 / 2`` near zero and ``|d|`` far out.

    Computed as ``|d| + softplus(-2 |d|) - log 2``, which equals
    ``log cosh d`` without overflowing ``cosh`` for large ``|d|``.
    """
    pred, target = regression_inputs(pred, target)
    d = (pred - target).abs()
    return _per_sample(d + F.softplus(-2.0 * d) - math.log(2.0))


__all__ = ["huber", "l1", "log_cosh", "mse"]
