"""Inner filters (Section 3.4.2-3.4.3): the rejection protocol and gradient equivalence.

Both work on a :class:`ScreeningProbe`: ``B`` training samples (chosen by
the run seed) and the predictions an untrained base model (initialised from
the run seed) makes on them. The probe is fixed for a run, so every
candidate is screened on the same predictions and the verdicts are
deterministic under the run seed.

Rejection protocol. The predictions themselves (not the network) are
optimised under the candidate loss with Adam for ``steps`` steps. The score
is the fraction of the initial metric removed,
``g = (m_before - m_after) / m_before`` (for classification, the share of
the B samples' errors that minimising the loss fixes; for regression, of
their MSE). A loss whose minimisation does not move the predictions towards
the targets scores near or below zero. Candidates with ``g < threshold`` are
rejected. The default threshold is the paper's 0.6 (which it takes from
AutoLoss-Zero, where the score is the metric reached after optimising the
predictions): a loss must fix at least 60% of the initial errors. Adam makes
the test about the direction of the loss's gradient, not its scale, which
the local search can still adjust through phi.

Gradient equivalence. The per-sample gradient norms of the loss with
respect to the probe predictions, each rounded to 2 significant digits, form
a signature; two candidates with equal signatures are treated as
functionally equivalent and share a fitness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from evomal.symbolic.compile import CompiledLoss
from evomal.training.metrics import per_sample_metric


@dataclass(frozen=True)
class ScreeningProbe:
    """B fixed (prediction, target) pairs from an untrained model, for one task."""

    kind: str
    predictions: Tensor
    targets: Tensor

    @property
    def size(self) -> int:
        return int(self.predictions.shape[0])


def make_probe(
    model: torch.nn.Module,
    task_x: Tensor,
    task_y: Tensor,
    kind: str,
    samples: int,
    seed: int,
    prepare: torch.nn.Module | None = None,
) -> ScreeningProbe:
    """Predictions of an untrained ``model`` on ``samples`` training points chosen by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    n = task_x.shape[0]
    idx = torch.randperm(n, generator=generator)[: min(samples, n)].to(task_x.device)
    x = task_x[idx]
    if prepare is not None:
        x = prepare(x)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predictions = model(x).detach()
    model.train(was_training)
    return ScreeningProbe(kind, predictions, task_y[idx])


def rejection_score(
    loss: CompiledLoss, phi: Tensor, probe: ScreeningProbe, steps: int, lr: float
) -> float:
    """Fraction of the probe's initial metric removed by optimising the predictions.

    Returns ``-inf`` when the loss or its gradient becomes non-finite.
    """
    phi = phi.detach()
    before = per_sample_metric(probe.kind, probe.predictions, probe.targets).mean()
    predictions = probe.predictions.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([predictions], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            value = loss(predictions, probe.targets, phi, "sum")
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
    finite = torch.isfinite(predictions).all()
    after = per_sample_metric(probe.kind, predictions.detach(), probe.targets).mean()
    if not bool(finite):
        return float("-inf")
    if float(before) == 0.0:
        return 1.0 if float(after) == 0.0 else float("-inf")
    return float((before - after) / before)


def gradient_norms(loss: CompiledLoss, phi: Tensor, probe: ScreeningProbe) -> Tensor:
    """Per-sample norms of the loss gradient with respect to the probe predictions."""
    predictions = probe.predictions.clone().requires_grad_(True)
    with torch.enable_grad():
        value = loss(predictions, probe.targets, phi.detach(), "sum")
        (grad,) = torch.autograd.grad(value, predictions, allow_unused=True)
    if grad is None:
        return torch.zeros(probe.size)
    return grad.reshape(probe.size, -1).norm(dim=1)


def gradient_signature(norms: Tensor, digits: int = 2) -> str:
    """The norms rounded to ``digits`` significant digits, as a hashable string."""
    return ";".join(f"{v:.{digits - 1}e}" if v == v else "nan" for v in norms.tolist())
