"""TaylorGLO's invariant, and its softmax-correct form for any elementwise loss.

Gonzalez & Miikkulainen check every TaylorGLO candidate before training it
(``TaylorGLOGenerationStarter.swift`` in cognizant-ai-labs/TaylorGLO): with
their loss a utility ``f(t, p)`` that training maximises and
``gamma = df/dp``, a candidate must satisfy ``gamma(1, 1/n) >= (n - 1) *
gamma(0, 1/n)`` for n classes; a violating one gets fitness 0 untrained. For
evomal's minimised loss ``l = -f`` that reads

    dl/dp(1, 1/n) <= (n - 1) * dl/dp(0, 1/n)          (the authors' form)

It is not invariant to terms such as ``c * sum_k p_k``, which change nothing
under a softmax (the sum is 1) but shift both sides. Through the softmax, at
the uniform prediction the gradient on the true class's logit is
``((n - 1) / n^2) * (g1 - g0)`` with ``g1 = dl/dp(1, 1/n)`` and ``g0 =
dl/dp(0, 1/n)``, so a descent step raises the true class only if

    g1 < g0                                            (the softmax-correct form)

Both are computed by autograd of the loss's elementwise function
(``loss_fn.pointwise(fx, y, weights)``) with the weights given, so they apply
to trees and Taylor polynomials alike.
"""

from __future__ import annotations

from typing import Any

import torch


def slopes(loss: Any, n_classes: int) -> tuple[float, float]:
    """``(g1, g0)``: the loss's derivative in ``p`` at ``p = 1/n`` for ``y = 1`` and ``y = 0``."""
    fn, weights = loss.loss_fn, loss.weights.detach().to(torch.float64)
    p = torch.full((2,), 1.0 / n_classes, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    values = fn.pointwise(p, y, weights)
    (grad,) = torch.autograd.grad(values.sum(), p)
    scale = float(getattr(loss, "scale", 1.0))
    return float(grad[0]) * scale, float(grad[1]) * scale


def authors_invariant(loss: Any, n_classes: int) -> bool:
    """TaylorGLO's check as the authors wrote it, for a minimised loss."""
    g1, g0 = slopes(loss, n_classes)
    return g1 <= (n_classes - 1) * g0


def softmax_condition(loss: Any, n_classes: int) -> bool:
    """The necessary condition for a descent step at the uniform prediction to raise the
    true class through a softmax: ``g1 < g0``."""
    g1, g0 = slopes(loss, n_classes)
    return g1 < g0
