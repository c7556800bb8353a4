"""Scale normalisation: keep the learned loss's weights from acting as a learning rate.

Multiplying a loss by ``c`` multiplies every SGD step by ``c``: a learning
rate in disguise. Left alone, the local search uses phi mostly for that
(docs/decisions.md), and a gradient scale tuned through one step can
overshoot once momentum accumulates over thousands.

:class:`ScaleNormaliser` removes that freedom. For weights ``phi`` it gives
the factor ``c(phi) = g_task / g(phi)``, where ``g`` is the mean per-sample
norm of the loss's gradient with respect to the predictions on the fixed
screening probes and ``g_task`` the same for the task loss (cross-entropy or
MSE as a tree). ``c(phi) * loss`` then has the task loss's gradient scale
whatever phi is, so its value does not change when the loss is scaled: the
meta-gradient of the normalised loss has no component along a pure scale.
The factor stays differentiable with respect to phi inside the unrolled
step, and the loss handed back carries ``c(phi*)`` as its ``scale``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from evomal.gp.filters import ParametricLoss, ScreeningProbe, gradient_norms
from evomal.losses.learned import task_loss_tree

#: Below this mean gradient norm a loss is treated as flat on the probe and left unscaled.
FLAT = 1e-12


class ScaleNormaliser:
    """``c(phi)`` for losses of one task kind, measured on fixed probes."""

    def __init__(self, probes: Sequence[ScreeningProbe]) -> None:
        if not probes:
            raise ValueError("scale normalisation needs at least one screening probe")
        self.probes = list(probes)
        kind = self.probes[0].kind
        task = task_loss_tree(kind)
        ones = torch.ones(task.tree.n_edges, device=self.probes[0].predictions.device)
        self.reference = float(self._mean_norm(task.loss_fn, ones, create_graph=False))

    def _mean_norm(self, loss: ParametricLoss, phi: Tensor, create_graph: bool) -> Tensor:
        norms = [
            gradient_norms(loss, phi.to(p.predictions.device), p, create_graph).mean()
            for p in self.probes
        ]
        return torch.stack([n.to(phi.device) for n in norms]).mean()

    def factor(self, loss: ParametricLoss, phi: Tensor, create_graph: bool = True) -> Tensor:
        """``c(phi)`` as a 0-d tensor (differentiable in ``phi`` with ``create_graph``).

        A loss that is flat on the probes (mean norm below :data:`FLAT`) or
        whose norm is not finite gets the factor 1: there is nothing to
        normalise, and the filters deal with it.
        """
        norm = self._mean_norm(loss, phi, create_graph)
        usable = torch.isfinite(norm) & (norm > FLAT)
        safe = torch.where(usable, norm, torch.ones_like(norm))
        return torch.where(usable, self.reference / safe, torch.ones_like(norm))


def final_scale(normaliser: ScaleNormaliser | None, loss: ParametricLoss, phi: Tensor) -> float:
    """The loss scale to hand back with a learned ``phi``: its normalising factor, or 1 when
    the local search does not normalise (``normaliser`` is ``None``)."""
    if normaliser is None:
        return 1.0
    return float(normaliser.factor(loss, phi.detach(), create_graph=False))
