"""Inner filters (Section 3.4.2-3.4.3): the rejection protocol and gradient equivalence.

Both work on a :class:`ScreeningProbe`: ``B`` training samples (chosen by
the run seed) and the predictions an untrained base model (initialised from
the run seed) makes on them. The probe is fixed for a run, so every
candidate is screened on the same predictions and the verdicts are
deterministic under the run seed.

Rejection protocol. The predictions themselves (not the network) are
optimised under the candidate loss with Adam for ``steps`` steps, long
enough to converge (default 1,000; the authors use 100 for MNIST and 1,000
elsewhere). The score is the fraction of the initial metric removed,
``g = (m_before - m_after) / m_before`` (for classification, the share of
the B samples' errors that minimising the loss fixes; for regression, of
their MSE). A loss whose minimisation does not move the predictions towards
the targets scores near or below zero. Candidates with ``g < threshold`` are
rejected. The default threshold is the paper's 0.6 (which it takes from
AutoLoss-Zero, where the score is the metric reached after optimising the
predictions): a loss must fix at least 60% of the initial errors. Adam makes
the test about the direction of the loss's gradient, not its scale, which
the local search can still adjust through phi.

Run to convergence, the protocol also sees a loss whose minimum
misclassifies: it fixes most errors early and then undoes them (such a loss
can score 1.0 after 50 steps and below 0 at convergence; docs/decisions.md). The
metric is recorded every ``check_every`` steps, and the *late rise* is how
far the final metric lies above the best one seen, as a fraction of the
initial metric; :func:`rejection_reason` rejects a rise above a tolerance.

For regression, Adam's step is multiplied by the root-mean-square distance
between the probe's predictions and targets, so the protocol means the same
whatever the targets' units: MSE always converges (tested), however far the
targets lie from the untrained predictions.

:func:`rejection_traces` screens K candidates at once: the K copies of the
probe's predictions are one stacked tensor, each candidate's loss acts on
its own slice, and one Adam step (elementwise) performs the K separate
updates; it equals screening them one by one.

Gradient equivalence. The per-sample gradient norms of the loss with
respect to the probe predictions, each rounded to 2 significant digits, form
a signature; two candidates with equal signatures are treated as
functionally equivalent and share a fitness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from evomal.symbolic.population import population_program
from evomal.symbolic.transforms import reduce_output, stacked_task_inputs
from evomal.training.metrics import per_sample_metric


class ParametricLoss(Protocol):
    """``loss(y_pred, y_true, phi, reduction)``: a compiled tree, an ML3 network, a polynomial."""

    def __call__(
        self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean"
    ) -> Tensor: ...


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


@dataclass(frozen=True)
class RejectionTrace:
    """What the rejection protocol saw for one candidate.

    ``score`` is the fraction of the initial metric removed by the end
    (``-inf`` when the loss or the predictions became non-finite);
    ``late_rise`` how far the final metric lies above the best one seen on
    the way, as a fraction of the initial metric (0 when it never rose).
    """

    score: float
    late_rise: float
    metrics: tuple[float, ...] = ()


def _adam_lr(probe: ScreeningProbe, lr: float) -> float:
    """Adam's learning rate on this probe: ``lr``, times the RMS distance to the targets for
    regression (so the protocol does not depend on the targets' units)."""
    if probe.kind != "regression":
        return lr
    diff = probe.predictions - probe.targets.reshape(probe.predictions.shape)
    distance = float(diff.pow(2).mean().sqrt())
    return lr * max(distance, 1e-3)


def rejection_traces(
    losses: Sequence[ParametricLoss],
    phis: Sequence[Tensor],
    probe: ScreeningProbe,
    steps: int,
    lr: float,
    check_every: int = 50,
) -> list[RejectionTrace]:
    """Run the rejection protocol for K candidates at once (one stacked Adam)."""
    k_count = len(losses)
    if k_count == 0:
        return []
    if len(phis) != k_count:
        raise ValueError("need one phi per loss")
    targets = probe.targets
    start = probe.predictions.detach()
    before = per_sample_metric(probe.kind, start, targets).mean()
    predictions = start.unsqueeze(0).repeat(k_count, *([1] * start.ndim)).requires_grad_(True)
    weights = [phi.detach().to(start.device) for phi in phis]
    optimiser = torch.optim.Adam([predictions], lr=_adam_lr(probe, lr))
    checks = [0, *range(check_every, steps, check_every), steps]
    recorded = torch.empty(len(checks), k_count, device=start.device)
    recorded[0] = before
    total_loss = _stacked_sum(losses, probe.kind, targets)
    row = 1
    with torch.enable_grad():
        for step in range(1, steps + 1):
            optimiser.zero_grad(set_to_none=True)
            total_loss(predictions, weights).backward()
            optimiser.step()
            if step == checks[row]:
                recorded[row] = _stacked_metric(probe.kind, predictions.detach(), targets)
                row += 1
    finite = torch.isfinite(predictions.detach().reshape(k_count, -1)).all(dim=1).tolist()
    history = recorded.t().tolist()
    initial = float(before)
    traces = []
    for k in range(k_count):
        metrics = tuple(history[k])
        after = metrics[-1]
        if not finite[k] or not math.isfinite(after):
            traces.append(RejectionTrace(-math.inf, 0.0, metrics))
            continue
        if initial == 0.0:
            score = 1.0 if after == 0.0 else -math.inf
            rise = 0.0 if after == 0.0 else math.inf
        else:
            score = (initial - after) / initial
            rise = max(0.0, (after - min(metrics)) / initial)
        traces.append(RejectionTrace(score, rise, metrics))
    return traces


def _stacked_sum(
    losses: Sequence[ParametricLoss], kind: str, targets: Tensor
) -> Callable[[Tensor, Sequence[Tensor]], Tensor]:
    """``f(predictions [K, B, ...], phis)``: the sum over k of loss k on slice k ("sum" reduction).

    Elementwise losses (compiled trees) share the input transforms (one
    softmax over the whole stack, one one-hot of the targets) and run as one
    :class:`~evomal.symbolic.population.PopulationProgram`; any other loss is
    called on its slice.
    """
    if all(hasattr(loss, "pointwise") for loss in losses):
        activations = [getattr(loss, "output_activation", "identity") for loss in losses]

        same = all(a == activations[0] for a in activations)
        program = population_program(losses)

        def shared(predictions: Tensor, phis: Sequence[Tensor]) -> Tensor:
            fx, y = stacked_task_inputs(kind, predictions, targets)
            if program is not None:
                stacked = program(fx, y, phis)
                values = list(stacked)
            else:
                values = [loss.pointwise(fx[k], y, phis[k]) for k, loss in enumerate(losses)]  # type: ignore[attr-defined]
                stacked = torch.stack(values)
            if same:
                return reduce_output(stacked, activations[0], "sum")
            return torch.stack(
                [reduce_output(v, a, "sum") for v, a in zip(values, activations, strict=True)]
            ).sum()

        return shared

    def separate(predictions: Tensor, phis: Sequence[Tensor]) -> Tensor:
        total = predictions.new_zeros(())
        for k, loss in enumerate(losses):
            total = total + loss(predictions[k], targets, phis[k], "sum")
        return total

    return separate


def _stacked_metric(kind: str, predictions: Tensor, targets: Tensor) -> Tensor:
    """The probe metric of each of K stacked prediction sets, shape ``[K]``."""
    return torch.stack([per_sample_metric(kind, p, targets).mean() for p in predictions])


def rejection_score(
    loss: ParametricLoss, phi: Tensor, probe: ScreeningProbe, steps: int, lr: float
) -> float:
    """Fraction of the probe's initial metric removed by optimising the predictions.

    Returns ``-inf`` when the loss or its gradient becomes non-finite.
    """
    return rejection_traces([loss], [phi], probe, steps, lr)[0].score


def rejection_reason(
    score: float,
    late_rise: float,
    threshold: float,
    reject_late_rise: bool,
    tolerance: float,
) -> str | None:
    """Why a candidate with this trace is rejected, or ``None`` when it passes."""
    if not score >= threshold:
        return f"rejection score {score:.3g} below threshold {threshold}"
    if reject_late_rise and late_rise > tolerance:
        return (
            f"probe error rose again late by {late_rise:.3g} of its initial value "
            f"(tolerance {tolerance})"
        )
    return None


def gradient_norms(
    loss: ParametricLoss, phi: Tensor, probe: ScreeningProbe, create_graph: bool = False
) -> Tensor:
    """Per-sample norms of the loss gradient with respect to the probe predictions.

    With ``create_graph`` the norms stay differentiable with respect to
    ``phi`` (the scale normalisation of the local search needs that);
    otherwise ``phi`` is treated as a constant.
    """
    predictions = probe.predictions.clone().requires_grad_(True)
    with torch.enable_grad():
        value = loss(predictions, probe.targets, phi if create_graph else phi.detach(), "sum")
        (grad,) = torch.autograd.grad(
            value, predictions, allow_unused=True, create_graph=create_graph
        )
    if grad is None:
        return torch.zeros(probe.size, device=probe.predictions.device)
    return grad.reshape(probe.size, -1).norm(dim=1)


def gradient_signature(norms: Tensor, digits: int = 2) -> str:
    """The norms rounded to ``digits`` significant digits, as a hashable string."""
    return ";".join(f"{v:.{digits - 1}e}" if v == v else "nan" for v in norms.tolist())
