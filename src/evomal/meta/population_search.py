"""The local search for K candidates at once (population batching of Algorithm 1).

Every candidate's meta step resets the base model to the same seeded
initialisation and reads the same batches (common random numbers), so the K
unrolled SGD steps share one vmapped forward pass over K stacked copies of
the initial weights. The K learned losses each act on their own slice; the
sum of the K inner losses gives each slice its own gradient, the K task
losses after the step are computed in one call, and their sum gives each
``phi_k`` the meta-gradient of its own candidate (no term mixes slices).
Adam is elementwise, so one Adam over the K weight vectors performs the K
separate updates. The result equals :func:`optimise_phi` run per candidate
up to float rounding (``tests/meta/test_population_search.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from evomal.gp.filters import ParametricLoss
from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import (
    CHECK_EVERY,
    LocalSearchResult,
    MetaSplit,
    meta_divergence,
    meta_step_seeds,
    meta_streams,
)
from evomal.meta.scale import ScaleNormaliser, final_scale
from evomal.symbolic.population import PopulationProgram, population_program
from evomal.symbolic.transforms import reduce_stacked, stacked_task_inputs
from evomal.training.metrics import stacked_task_loss
from evomal.training.unrolled_sgd import UnrolledSGD


def _stacked_learned_loss(
    losses: Sequence[ParametricLoss],
    kind: str,
    out: Tensor,
    y: Tensor,
    phis: Sequence[Tensor],
    program: PopulationProgram | None = None,
) -> Tensor:
    """Inner losses ``[K]``: elementwise losses share transforms (and, for trees, one
    :class:`PopulationProgram`); others run per slice."""
    if all(hasattr(loss, "pointwise") for loss in losses):
        fx, target = stacked_task_inputs(kind, out, y)
        activations = [getattr(loss, "output_activation", "identity") for loss in losses]
        if program is not None:
            values = program(fx, target, phis)
            if all(a == activations[0] for a in activations):
                return reduce_stacked(values, activations[0])
            stacked = [values[k] for k in range(len(losses))]
        else:
            stacked = [loss.pointwise(fx[k], target, phis[k]) for k, loss in enumerate(losses)]  # type: ignore[attr-defined]
        return torch.cat(
            [reduce_stacked(v.unsqueeze(0), a) for v, a in zip(stacked, activations, strict=True)]
        )
    return torch.stack([loss(out[k], y, phis[k]) for k, loss in enumerate(losses)])


def optimise_phi_population(
    losses: Sequence[ParametricLoss],
    phi0s: Sequence[Tensor],
    learners: Sequence[BaseLearner],
    *,
    steps: int,
    base_steps: int,
    optimizer: UnrolledSGD,
    meta_lr: float,
    batch_size: int,
    run_seed: int,
    normaliser: ScaleNormaliser | None = None,
    meta_split: MetaSplit | None = None,
) -> list[LocalSearchResult]:
    """:func:`optimise_phi` for K candidates in one pass per meta step.

    The K momentum buffers are stacked like the parameters, so the unrolled
    optimiser acts on every slice exactly as it would on one model.
    """
    k_count = len(losses)
    device = learners[0].task.device
    phis = [p.detach().clone().to(device).requires_grad_(True) for p in phi0s]
    if steps == 0 or k_count == 0:
        return [
            LocalSearchResult(p.detach(), [], False, scale=final_scale(normaliser, loss, p))
            for loss, p in zip(losses, phis, strict=True)
        ]
    trainable = [p for p in phis if p.numel() > 0]
    optimiser = torch.optim.Adam(trainable, lr=meta_lr) if trainable else None
    seeds = meta_step_seeds(run_seed, steps)
    streams = [
        meta_streams(learner.task, batch_size, run_seed + j, meta_split)
        for j, learner in enumerate(learners)
    ]
    forwards = []
    for learner in learners:
        base = copy.deepcopy(learner.template).to("meta")

        def forward(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, base=base) -> Tensor:  # type: ignore[no-untyped-def]
            return functional_call(base, (p, b), (x,))

        forwards.append(vmap(forward, in_dims=(0, 0, None)))

    program = population_program(losses)
    history = torch.empty(steps, k_count, device=device)
    failed: list[str | None] = [None] * k_count
    for step in range(steps):
        total = torch.zeros(k_count, device=device)
        factors = None
        if normaliser is not None:
            factors = torch.stack(
                [normaliser.factor(loss, phi) for loss, phi in zip(losses, phis, strict=True)]
            )
        for j, learner in enumerate(learners):
            params0, buffers0 = learner.initial_state(seeds[step] + j)
            params = {
                n: v.expand(k_count, *v.shape).clone().requires_grad_(True)
                for n, v in params0.items()
            }
            buffers = {n: v.expand(k_count, *v.shape).clone() for n, v in buffers0.items()}
            inner = [streams[j][0].next() for _ in range(base_steps)]
            outer = streams[j][1].next()
            momentum: dict[str, Tensor] | None = None
            for x, y in inner:
                values = _stacked_learned_loss(
                    losses, learner.task.kind, forwards[j](params, buffers, x), y, phis, program
                )
                if factors is not None:
                    values = values * factors
                grads = torch.autograd.grad(values.sum(), list(params.values()), create_graph=True)
                params, momentum = optimizer.step(params, list(grads), momentum)
            x, y = outer
            total = total + stacked_task_loss(learner.task.kind, forwards[j](params, buffers, x), y)
        if optimiser is not None:
            meta_grads = torch.autograd.grad(total.sum(), trainable, allow_unused=True)
            for p, g in zip(trainable, meta_grads, strict=True):
                p.grad = g if g is not None else torch.zeros_like(p)
            optimiser.step()
        history[step] = total.detach()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            _check(failed, history, step, phis)
            if all(f is not None for f in failed):
                break
    done = step + 1
    rows = history[:done].t().tolist()
    return [
        LocalSearchResult(
            phis[k].detach(),
            rows[k],
            failed[k] is not None,
            failed[k],
            final_scale(normaliser, losses[k], phis[k]) if failed[k] is None else 1.0,
        )
        for k in range(k_count)
    ]


def _check(failed: list[str | None], history: Tensor, step: int, phis: Sequence[Tensor]) -> None:
    """Record why each candidate not yet marked failed diverged by meta step ``step``."""
    found = meta_divergence(history[: step + 1], phis, step + 1)
    for k, reason in enumerate(found):
        if failed[k] is None:
            failed[k] = reason
