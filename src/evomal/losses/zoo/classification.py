"""Known classification losses, one per-sample function each.

Every function takes logits ``[B, K]`` and integer labels ``[B]`` and returns
the ``[B]`` per-sample losses; the caller reduces them (``ZooLoss`` takes the
mean over the batch, like the task loss). A binary task with one output
(logits ``[B, 1]`` or ``[B]``) is read as the two-class logits ``[0, z]``, so
the probabilities are ``(1 - sigmoid(z), sigmoid(z))``: the same convention
as evomal's tree losses (:mod:`evomal.symbolic.transforms`), so a zoo loss and
its tree agree on one-output models too.

Probabilities are handled in log space (``log_softmax``) wherever the formula
allows, so that every loss is finite, with finite gradients, for any finite
logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Hui & Belkin's rescaling of the square loss, (classes from, k, M), in increasing order of
#: classes; see :func:`square_scaling`.
SQUARE_SCALING: tuple[tuple[int, float, float], ...] = (
    (1, 1.0, 1.0),
    (42, 1.0, 15.0),
    (1000, 15.0, 30.0),
)

#: Wang et al.'s clipping of log 0 in the reverse cross-entropy (the paper's A).
RCE_LOG_ZERO = -4.0


def class_logits(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Logits ``[B, K]`` and ``long`` labels ``[B]``; one output ``z`` becomes ``[0, z]``.

    Raises ``ValueError`` naming the problem for shapes or label types a
    classification loss cannot read (soft targets are not supported here).
    """
    if logits.ndim == 0 or labels.ndim == 0 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"logits and labels disagree on the batch size: {tuple(logits.shape)} vs "
            f"{tuple(labels.shape)}"
        )
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        z = logits.reshape(logits.shape[0])
        return torch.stack([torch.zeros_like(z), z], dim=-1), labels.reshape(-1).long()
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [batch, classes], got {tuple(logits.shape)}")
    if labels.is_floating_point() or labels.ndim != 1:
        raise ValueError(
            "zoo classification losses take integer class labels of shape [batch]; got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    return logits, labels.long()


def _log_p_true(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """All log-probabilities ``[B, K]`` and the true class's ``[B]``."""
    logits, labels = class_logits(logits, labels)
    log_p = F.log_softmax(logits, dim=-1)
    return log_p, log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _one_minus_p(log_p_true: Tensor) -> Tensor:
    """``1 - p_y`` computed as ``-expm1(log p_y)``, accurate when ``p_y`` is near 1."""
    return -torch.expm1(log_p_true)


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy ``-log p_y``: the task loss every other loss is measured against."""
    logits, labels = class_logits(logits, labels)
    return F.cross_entropy(logits, labels, reduction="none")


def label_smoothing(logits: Tensor, labels: Tensor, eps: float = 0.1) -> Tensor:
    """Cross-entropy against the smoothed target ``q = (1 - eps) t + eps / K``.

    Szegedy et al., "Rethinking the Inception Architecture for Computer
    Vision", CVPR 2016. Equal to ``F.cross_entropy(label_smoothing=eps)``,
    which uses the same ``q``; it keeps the model from driving one logit
    infinitely far above the others.
    """
    log_p, log_p_y = _log_p_true(logits, labels)
    return -(1.0 - eps) * log_p_y - eps * log_p.mean(dim=-1)


def focal(logits: Tensor, labels: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal loss ``-(1 - p_y)^gamma log p_y``: well-classified samples weigh less.

    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (here
    without the class weight alpha). ``1 - p_y`` is clamped at the smallest
    positive normal number of its dtype: for ``gamma < 1`` the derivative of
    ``(1 - p_y)^gamma`` is infinite at ``p_y = 1``, which turned a confident
    sample's gradient into NaN; the clamp makes it zero there (its limit).
    """
    _, log_p_y = _log_p_true(logits, labels)
    tiny = torch.finfo(log_p_y.dtype).tiny
    return -_one_minus_p(log_p_y).clamp_min(tiny).pow(gamma) * log_p_y


def poly1(logits: Tensor, labels: Tensor, eps: float = 1.0) -> Tensor:
    """Poly-1 ``-log p_y + eps (1 - p_y)``: cross-entropy with its first polynomial term moved.

    Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022. ``eps >= -1`` keeps the loss
    decreasing in ``p_y``; the paper uses 2 for ImageNet classification.
    """
    _, log_p_y = _log_p_true(logits, labels)
    return -log_p_y + eps * _one_minus_p(log_p_y)


def brier(logits: Tensor, labels: Tensor) -> Tensor:
    """Brier score ``sum_k (p_k - t_k)^2``, a bounded, strictly proper scoring rule.

    Brier, "Verification of Forecasts Expressed in Terms of Probability",
    Monthly Weather Review 1950.
    """
    logits, labels = class_logits(logits, labels)
    p = torch.softmax(logits, dim=-1)
    t = F.one_hot(labels, p.shape[-1]).to(p.dtype)
    return (p - t).square().sum(dim=-1)


def square_scaling(n_classes: int) -> tuple[float, float]:
    """Hui & Belkin's ``(k, M)`` for ``n_classes`` classes.

    Hui & Belkin (ICLR 2021; arXiv 2006.07322, Section 3) use the plain
    square loss, ``k = M = 1``, on their datasets with few classes (up to 10:
    MNIST, CIFAR-10, the NLP sets), and rescale it only for datasets with
    many classes (42 and more): ``k = 1, M = 15`` for TIMIT (42 classes) and
    WSJ (52), ``k = 15, M = 30`` for Librispeech and ImageNet (1000). The
    paper gives no values between those points, so this rule takes the
    nearest paper setting below ``n_classes``: plain below 42 classes,
    ``(1, 15)`` from 42, ``(15, 30)`` from 1000. Pass ``k`` and ``M`` to
    :func:`square` (or as ``ZooLoss`` settings) to override it.
    """
    k, big_m = 1.0, 1.0
    for start, k_value, m_value in SQUARE_SCALING:
        if n_classes >= start:
            k, big_m = k_value, m_value
    return k, big_m


def square(
    logits: Tensor, labels: Tensor, k: float | None = None, M: float | None = None
) -> Tensor:
    """Square loss on the logits ``(1/K) [k (z_y - M)^2 + sum_{j != y} z_j^2]``.

    Hui & Belkin, "Evaluation of Neural Architectures Trained with Square
    Loss vs Cross-Entropy in Classification Tasks", ICLR 2021. No softmax:
    the logits regress onto the one-hot target scaled by ``M``, with the true
    class's term weighted by ``k``. ``k`` and ``M`` default to
    :func:`square_scaling` of the number of classes.
    """
    logits, labels = class_logits(logits, labels)
    n_classes = logits.shape[-1]
    default_k, default_m = square_scaling(n_classes)
    k = default_k if k is None else k
    M = default_m if M is None else M
    t = F.one_hot(labels, n_classes).to(logits.dtype)
    weights = 1.0 + (k - 1.0) * t  # k on the true class, 1 elsewhere
    return (weights * (logits - M * t).square()).sum(dim=-1) / n_classes


def mae(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean absolute error on probabilities, ``sum_k |p_k - t_k| = 2 (1 - p_y)``.

    Ghosh et al., "Robust Loss Functions under Label Noise for Deep Neural
    Networks", AAAI 2017: symmetric, hence robust to symmetric label noise,
    but slow to fit clean data. Ma et al.'s public code uses ``1 - p_y``
    (half this value).
    """
    _, log_p_y = _log_p_true(logits, labels)
    return 2.0 * _one_minus_p(log_p_y)


def gce(logits: Tensor, labels: Tensor, q: float = 0.7) -> Tensor:
    """Generalised cross-entropy ``(1 - p_y^q) / q``, between CE (q -> 0) and MAE/2 (q = 1).

    Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels", NeurIPS 2018 (their L_q loss, without the
    truncation). Computed as ``-expm1(q log p_y) / q``, exact for small ``q``.
    """
    _, log_p_y = _log_p_true(logits, labels)
    return -torch.expm1(q * log_p_y) / q


def sce(logits: Tensor, labels: Tensor, alpha: float = 0.1, beta: float = 1.0) -> Tensor:
    """Symmetric cross-entropy ``alpha CE + beta RCE``, ``RCE = -sum_k p_k log t_k``.

    Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
    Labels", ICCV 2019. With ``log 0`` clipped to ``A = -4`` as in the paper,
    the reverse term of a one-hot target is ``-A (1 - p_y) = 4 (1 - p_y)``.
    The authors' public code (Keras and PyTorch) instead clips the one-hot
    target at 1e-4, i.e. ``A = log 1e-4 = -9.21``, and clamps ``p`` at 1e-7:
    its reverse term is about 2.3 times this one, as if ``beta`` were larger.
    """
    _, log_p_y = _log_p_true(logits, labels)
    return -alpha * log_p_y + beta * (-RCE_LOG_ZERO) * _one_minus_p(log_p_y)


def nce_mae(logits: Tensor, labels: Tensor, alpha: float = 1.0, beta: float = 1.0) -> Tensor:
    """Active-passive loss ``alpha NCE + beta MAE``, ``NCE = log p_y / sum_k log p_k``.

    Ma et al., "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML 2020. MAE is :func:`mae`, ``2 (1 - p_y)``; the authors'
    code uses ``1 - p_y``, so their ``beta`` is twice the ``beta`` here.
    ``-sum_k log p_k >= K log K > 0``, so NCE is always defined.
    """
    log_p, log_p_y = _log_p_true(logits, labels)
    normalised = log_p_y / log_p.sum(dim=-1)
    return alpha * normalised + beta * 2.0 * _one_minus_p(log_p_y)


__all__ = [
    "RCE_LOG_ZERO",
    "SQUARE_SCALING",
    "brier",
    "class_logits",
    "cross_entropy",
    "focal",
    "gce",
    "label_smoothing",
    "mae",
    "nce_mae",
    "poly1",
    "sce",
    "square",
    "square_scaling",
]
