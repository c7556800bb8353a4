"""Input transforms and output reductions around an elementwise loss tree.

The tree itself is elementwise over ``(y, fx)`` pairs. This module maps a
model's raw output and the user's targets to those pairs, and reduces the
elementwise values to one scalar, exactly as Section 3 describes:

* classification: ``fx`` is the softmax of the logits and ``y`` the one-hot
  target. With one output the logit goes through a sigmoid and both classes
  are kept, ``fx = (1 - p, p)`` and ``y = (1 - t, t)``; this is the softmax of
  ``(0, z)``, so the cross-entropy tree gives exactly binary cross-entropy.
* regression: both pass through unchanged.

The result is optionally passed through softplus (the non-negative output
constraint of Fig. 2), summed over outputs and averaged over the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from evomal.errors import UnknownNameError

TaskKind = Literal["classification", "regression"]
OutputActivation = Literal["identity", "softplus"]
Reduction = Literal["mean", "sum", "none"]

TASK_KINDS: tuple[str, ...] = ("classification", "regression")
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("identity", "softplus")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    """Raise an :class:`UnknownNameError` naming the allowed values when ``value`` is not one."""
    if value not in allowed:
        raise UnknownNameError(f"unknown {what} {value!r}; expected one of {list(allowed)}")


def _check_batch(y_pred: Tensor, y_true: Tensor) -> None:
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have a batch dimension (shape [batch, ...]), got a scalar")
    if y_true.ndim == 0 or y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_pred and y_true disagree on the batch size: {tuple(y_pred.shape)} vs "
            f"{tuple(y_true.shape)}"
        )


def _is_binary(y_pred: Tensor) -> bool:
    return y_pred.ndim == 1 or (y_pred.ndim == 2 and y_pred.shape[1] == 1)


def _probabilities(logits: Tensor, binary: bool) -> Tensor:
    """Softmax over the last dimension, or ``(1 - p, p)`` with ``p = sigmoid(z)`` for one logit."""
    if binary:
        z = logits.squeeze(-1) if logits.shape[-1] == 1 and logits.ndim > 1 else logits
        return torch.stack([torch.sigmoid(-z), torch.sigmoid(z)], dim=-1)
    return torch.softmax(logits, dim=-1)


def _targets(y_pred: Tensor, y_true: Tensor, probs: Tensor) -> Tensor:
    """One-hot (or given soft) targets matching one batch of probabilities ``probs``."""
    if _is_binary(y_pred):
        t = y_true.reshape(y_true.shape[0]).to(probs.dtype)
        return torch.stack([1.0 - t, t], dim=-1)
    if y_true.is_floating_point() and y_true.shape == y_pred.shape:
        return y_true.to(probs.dtype)
    if y_true.is_floating_point():
        raise ValueError(
            f"classification targets must be integer labels of shape [batch] or a float "
            f"distribution shaped like the logits {tuple(y_pred.shape)}; got float "
            f"{tuple(y_true.shape)}"
        )
    if y_true.ndim != 1:
        raise ValueError(f"integer labels must have shape [batch], got {tuple(y_true.shape)}")
    return torch.zeros_like(probs).scatter(-1, y_true.unsqueeze(-1).long(), 1.0)


def classification_inputs(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Map logits and labels to ``(fx, y)``: probabilities and one-hot targets.

    ``y_true`` may hold integer class labels (shape ``[batch]``) or, for
    multi-class outputs, a float target distribution of the logits' shape.
    """
    _check_batch(y_pred, y_true)
    fx = _probabilities(y_pred, _is_binary(y_pred))
    return fx, _targets(y_pred, y_true, fx)


def regression_inputs(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Regression passes predictions and targets through; ``[B]`` targets match ``[B, 1]``."""
    _check_batch(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        if y_true.numel() != y_pred.numel():
            raise ValueError(
                f"regression targets {tuple(y_true.shape)} do not match predictions "
                f"{tuple(y_pred.shape)}"
            )
        y_true = y_true.reshape(y_pred.shape)
    return y_pred, y_true.to(y_pred.dtype)


def task_inputs(kind: str, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Dispatch to :func:`classification_inputs` or :func:`regression_inputs`."""
    if kind == "classification":
        return classification_inputs(y_pred, y_true)
    return regression_inputs(y_pred, y_true)


def reduce_output(values: Tensor, activation: str, reduction: str) -> Tensor:
    """Apply the output activation, sum over outputs, then reduce over the batch."""
    if activation == "softplus":
        values = F.softplus(values)
    per_sample = values.reshape(values.shape[0], -1).sum(dim=1)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def stacked_task_inputs(kind: str, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`task_inputs` for K stacked predictions ``[K, batch, outputs]`` and one target batch.

    Returns ``fx`` shaped like the stack and ``y`` shaped like one slice (it
    broadcasts against every slice); the shared target is computed once.
    """
    one = y_pred[0]
    _check_batch(one, y_true)
    if kind == "classification":
        binary = _is_binary(one)
        fx = _probabilities(y_pred, binary)
        return fx, _targets(one, y_true, fx[0])
    _, y = regression_inputs(one, y_true)
    return y_pred, y


def reduce_stacked(values: Tensor, activation: str) -> Tensor:
    """Per-model mean over the batch of the per-sample sums: ``[K, batch, ...]`` -> ``[K]``."""
    if activation == "softplus":
        values = F.softplus(values)
    return values.reshape(values.shape[0], values.shape[1], -1).sum(dim=2).mean(dim=1)
