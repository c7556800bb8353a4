"""Task losses and metrics, vectorised and free of host syncs.

The task loss is what the local search minimises through the unrolled step
(cross-entropy for classification, MSE for regression); the metric is what
fitness and meta-testing report (error rate, MSE). Both return tensors so a
caller decides when to synchronise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from evomal.tasks.task import Split, Task


def task_loss(kind: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Cross-entropy (binary cross-entropy with one output) or mean squared error."""
    if kind == "classification":
        if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(
                y_pred.reshape(-1), y_true.reshape(-1).to(y_pred.dtype)
            )
        return F.cross_entropy(y_pred, y_true)
    return F.mse_loss(y_pred, y_true.reshape(y_pred.shape).to(y_pred.dtype))


def per_sample_metric(kind: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Per-sample error indicator (classification) or squared error (regression)."""
    if kind == "classification":
        if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            predicted = (y_pred.reshape(-1) > 0).to(y_true.dtype)
            return (predicted != y_true.reshape(-1)).to(y_pred.dtype)
        return (y_pred.argmax(dim=-1) != y_true).to(y_pred.dtype)
    diff = y_pred - y_true.reshape(y_pred.shape).to(y_pred.dtype)
    return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1)


def metric(kind: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Error rate (classification) or mean squared error (regression), as a 0-d tensor."""
    return per_sample_metric(kind, y_pred, y_true).mean()


def metric_name(kind: str) -> str:
    return "error rate" if kind == "classification" else "MSE"


def task_metric_name(task: Task) -> str:
    """What a task is scored by: "error rate", "balanced error rate" or "MSE"."""
    if task.kind == "classification" and task.metric == "balanced_error":
        return "balanced error rate"
    return metric_name(task.kind)


def balanced_weights(y: Tensor, n_classes: int) -> Tensor:
    """Per-sample weights ``N / (K' * n_c)`` that make a mean of error indicators balanced.

    ``n_c`` counts sample ``i``'s class in ``y`` and ``K'`` the classes present,
    so ``mean(weights * errors)`` is the mean over present classes of each
    class's error rate: the balanced error.
    """
    labels = y.reshape(-1).to(torch.long)
    counts = torch.bincount(labels, minlength=max(n_classes, 1)).to(torch.get_default_dtype())
    present = (counts > 0).sum()
    return labels.shape[0] / (present * counts[labels])


def sample_weights(task: Task, split: Split) -> Tensor | None:
    """The weights of ``split``'s per-sample metric under ``task.metric`` (None: plain mean)."""
    if task.kind != "classification" or task.metric != "balanced_error":
        return None
    return balanced_weights(split.y, task.n_classes).to(split.x.device)


def stacked_task_loss(kind: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """:func:`task_loss` of each of K stacked predictions ``[K, batch, outputs]``, shape ``[K]``.

    One call for the whole stack; equal to ``task_loss`` on each slice.
    """
    k, b = y_pred.shape[0], y_pred.shape[1]
    if kind == "classification":
        if y_pred.shape[-1] == 1 or y_pred.ndim == 2:
            logits = y_pred.reshape(k, b)
            target = y_true.reshape(1, b).to(y_pred.dtype).expand(k, b)
            losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return losses.mean(dim=1)
        flat = F.cross_entropy(y_pred.reshape(k * b, -1), y_true.repeat(k), reduction="none")
        return flat.reshape(k, b).mean(dim=1)
    diff = y_pred - y_true.reshape(y_pred.shape[1:]).to(y_pred.dtype)
    return diff.pow(2).reshape(k, -1).mean(dim=1)
