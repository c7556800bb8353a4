"""Known losses for class imbalance, one per-sample function each.

Each takes the logits ``[B, K]`` (or one output, read as ``[0, z]``), integer
labels ``[B]`` and the training split's class counts ``n_c`` (``K`` of them),
and returns the ``[B]`` per-sample losses. Counts are clamped at 1, so a class
absent from the training split gives a large but finite adjustment rather
than ``log 0``. The counts must be the training split's: measured on the
evaluation data they would leak it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from evomal.losses.zoo.classification import class_logits

#: LDAM's logit scale for raw (unnormalised) logits: see :func:`ldam`.
LDAM_SCALE = 1.0


def _counts(class_counts: Tensor | Sequence[int], logits: Tensor) -> Tensor:
    """The counts as a float tensor on the logits' device, clamped at 1, one per class."""
    counts = torch.as_tensor(class_counts, device=logits.device).to(logits.dtype).clamp_min(1.0)
    if counts.shape != (logits.shape[-1],):
        raise ValueError(
            f"{logits.shape[-1]} classes but {tuple(counts.shape)} class counts; the counts "
            "must be the training split's, one per class"
        )
    return counts


def logit_adjust(
    logits: Tensor, labels: Tensor, class_counts: Tensor | Sequence[int], tau: float = 1.0
) -> Tensor:
    """Logit-adjusted cross-entropy ``-log softmax(z + tau log pi)_y``, ``pi_c = n_c / N``.

    Menon et al., "Long-Tail Learning via Logit Adjustment", ICLR 2021. Adding
    the log prior during training makes the plain ``argmax z`` at test time
    approximate the balanced-error-optimal classifier; ``tau = 1`` is the
    Fisher-consistent choice.
    """
    logits, labels = class_logits(logits, labels)
    counts = _counts(class_counts, logits)
    log_prior = torch.log(counts / counts.sum())
    return F.cross_entropy(logits + tau * log_prior, labels, reduction="none")


def balanced_softmax(
    logits: Tensor, labels: Tensor, class_counts: Tensor | Sequence[int]
) -> Tensor:
    """Balanced softmax ``-log softmax(z + log n)_y``.

    Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
    NeurIPS 2020. The same function as :func:`logit_adjust` at ``tau = 1``
    (``log n`` and ``log pi`` differ by a constant, which softmax ignores),
    derived there as the likelihood under a label-shifted prior.
    """
    logits, labels = class_logits(logits, labels)
    counts = _counts(class_counts, logits)
    return F.cross_entropy(logits + torch.log(counts), labels, reduction="none")


def ldam(
    logits: Tensor,
    labels: Tensor,
    class_counts: Tensor | Sequence[int],
    max_margin: float = 0.5,
    s: float = LDAM_SCALE,
) -> Tensor:
    """LDAM ``-log softmax(s (z - Delta_y e_y))_y``, ``Delta_c = C / n_c^(1/4)``.

    Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019. The true class's logit must beat the others by
    a margin that grows for rare classes; ``C`` makes the rarest class's margin
    ``max_margin``. Their deferred re-weighting (DRW) is a training schedule,
    not part of the loss.

    ``s`` defaults to 1 (:data:`LDAM_SCALE`), not the authors' 30: their code
    computes the logits as cosines (features and weights normalised, so
    ``|z| <= 1``) and ``s`` restores a usable range. evomal's models give raw
    logits, and there ``s = 30`` multiplies the loss's gradient, hence the
    effective learning rate, by 30: MNIST-1D with imbalance 10 trained to
    chance (balanced error 0.900) at the preset's lr, against 0.560 with
    ``s = 1`` (README, "Where a loss matters"). Pass ``s`` (the loss file's
    setting) to use another scale.
    """
    logits, labels = class_logits(logits, labels)
    inverse_root = _counts(class_counts, logits).pow(-0.25)
    margins = inverse_root * (max_margin / inverse_root.max())
    shifted = logits - F.one_hot(labels, logits.shape[-1]).to(logits.dtype) * margins[labels, None]
    return F.cross_entropy(s * shifted, labels, reduction="none")


def class_balanced(
    logits: Tensor, labels: Tensor, class_counts: Tensor | Sequence[int], beta: float = 0.9999
) -> Tensor:
    """Class-balanced cross-entropy ``w_y (-log p_y)``, ``w_c ∝ (1 - beta) / (1 - beta^n_c)``.

    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019. ``(1 - beta^n) / (1 - beta)`` is a class's effective number of
    samples; weights are its inverse, normalised so that ``sum_c w_c = K``
    (``beta = 0`` gives plain cross-entropy, ``beta -> 1`` inverse frequency).

    The batch loss is the plain mean of ``w_y CE_i``, as in the authors' code.
    ``F.cross_entropy(weight=w)`` would instead divide by ``sum_i w_y_i``,
    which cancels the weights' overall scale batch by batch and changes the
    effective learning rate with the batch's class mix.
    """
    logits, labels = class_logits(logits, labels)
    counts = _counts(class_counts, logits)
    if beta == 0.0:
        weights = torch.ones_like(counts)
    else:  # 1 - beta^n as -expm1(n log beta): no cancellation for beta near 1
        weights = (1.0 - beta) / -torch.expm1(counts * math.log(beta))
    weights = weights * (counts.shape[0] / weights.sum())
    return weights[labels] * F.cross_entropy(logits, labels, reduction="none")


__all__ = ["LDAM_SCALE", "balanced_softmax", "class_balanced", "ldam", "logit_adjust"]
