"""Local search: optimise a tree's edge weights phi through unrolled SGD (Algorithm 1).

Each of the ``S_meta`` meta steps, for every training task:

1. reset the base model to a fresh initialisation drawn from the run's seeded
   stream (the authors' code resets every step);
2. take ``S_base`` differentiable steps of the base optimiser on the learned
   loss ``M_phi(y, f_theta(x))``: the optimiser fitness trains with, momentum,
   Nesterov and weight decay included (:class:`~evomal.training.unrolled_sgd.UnrolledSGD`),
   or a plain ``p - lr * g`` when ``local_search.unroll_optimizer`` is off;
   optionally the loss is first multiplied by its scale-normalising factor
   (:mod:`evomal.meta.scale`);
3. compute the task loss (cross-entropy / MSE) of the updated model on a
   fresh batch: of the training split (``local_search.meta_split=train``, the
   paper), or of a slice of it that the unrolled steps never train on
   (``holdout``; see :func:`meta_streams`);

then update phi with Adam on the sum of the task losses. The base model runs
functionally (``torch.func.functional_call`` on detached initial
parameters), the inner step keeps its graph (``create_graph=True``), and the
meta-gradient is taken with respect to phi only, flowing through the inner
update as in Eq. (7). Plain autograd is used for the two gradients rather
than nesting ``torch.func.grad``: the result is identical (tested) and on CPU
it is about 30% faster, because the nested transform routes the double
backward of some ops through Python decompositions.

Everything is seeded from the run seed alone: every candidate sees the same
sequence of initialisations and batches (common random numbers), so a
candidate's result depends only on its tree and the run seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from evomal.errors import ConfigError
from evomal.gp.filters import ParametricLoss
from evomal.meta.base_learner import BaseLearner, State
from evomal.meta.scale import ScaleNormaliser, final_scale
from evomal.tasks.task import Split, Task
from evomal.training.divergence import divergence
from evomal.training.loop import TrainBatches
from evomal.training.metrics import task_loss
from evomal.training.unrolled_sgd import UnrolledSGD

#: Meta steps between finiteness checks (each check is one host sync).
CHECK_EVERY = 25

#: The values of ``local_search.meta_split``.
META_SPLITS = ("train", "holdout")


@dataclass(frozen=True)
class MetaSplit:
    """Where the local search measures the task loss after its unrolled steps.

    ``train`` (the paper): the next batch of the training stream the unrolled
    steps draw from. ``holdout``: a fixed slice of ``fraction`` of the training
    split, drawn from the run seed, that the unrolled steps never see. On noisy
    labels the training objective rewards a loss that fits the noise it has
    just stepped on; on unseen samples it cannot. Never the validation split,
    which fitness and selection score on. Fitness and meta-testing still
    train on the whole training split.
    """

    split: str = "train"
    fraction: float = 0.1


def meta_streams(
    task: Task, batch_size: int, seed: int, meta: MetaSplit | None = None
) -> tuple[TrainBatches, TrainBatches]:
    """The streams of the unrolled steps' batches and of the meta-objective's batches.

    With ``train`` they are one stream (inner batches, then the outer one, as
    in the paper). With ``holdout`` the training split is cut once, by a
    generator seeded from ``seed``, into a held-out slice (at least one
    sample) and the rest.
    """
    if meta is None or meta.split == "train":
        stream = TrainBatches(task, batch_size, seed)
        return stream, stream
    n = len(task.train)
    if n < 2:
        raise ConfigError("local_search.meta_split=holdout needs at least 2 training samples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(task.device)
    held = max(1, min(n - 1, round(meta.fraction * n)))
    inner = replace(task, train=_subset(task.train, order[held:]))
    outer = replace(task, train=_subset(task.train, order[:held]))
    return (
        TrainBatches(inner, batch_size, seed),
        TrainBatches(outer, min(batch_size, held), seed + 1),
    )


def _subset(split: Split, index: Tensor) -> Split:
    clean = None if split.y_clean is None else split.y_clean[index]
    return Split(split.x[index], split.y[index], clean)


@dataclass(frozen=True)
class LocalSearchResult:
    """The optimised weights, the summed task loss at each meta step, and the loss scale.

    ``scale`` is the factor the loss is multiplied by when scale
    normalisation is on (1 otherwise).
    """

    phi: Tensor
    meta_losses: list[float]
    diverged: bool
    reason: str | None = None
    scale: float = 1.0


def initial_phi(n_edges: int, std: float, seed: int) -> Tensor:
    """phi ~ N(1, std^2), drawn from a generator seeded by ``seed`` (paper: std 1e-3)."""
    generator = torch.Generator().manual_seed(seed)
    return 1.0 + std * torch.randn(n_edges, generator=generator)


def meta_step_seeds(run_seed: int, steps: int) -> list[int]:
    """The seeds of the base-model resets, one per meta step, from the run seed."""
    state = np.random.SeedSequence([run_seed, 0x10CA1]).generate_state(max(steps, 1))
    return [int(s) for s in state[:steps]]


def unrolled_task_loss(
    phi: Tensor,
    loss: ParametricLoss,
    learner: BaseLearner,
    params: State,
    buffers: State,
    inner_batches: Sequence[tuple[Tensor, Tensor]],
    outer_batch: tuple[Tensor, Tensor],
    optimizer: UnrolledSGD,
    factor: Tensor | None = None,
) -> Tensor:
    """Task loss after one optimiser step per inner batch on the learned loss, a function of phi.

    ``factor`` (a function of phi itself) multiplies the learned loss.
    """

    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    momentum: State | None = None
    for x, y in inner_batches:
        value = loss(learner.forward(params, buffers, x), y, phi)
        if factor is not None:
            value = value * factor
        grads = torch.autograd.grad(value, list(params.values()), create_graph=True)
        params, momentum = optimizer.step(params, list(grads), momentum)
    x, y = outer_batch
    return task_loss(learner.task.kind, learner.forward(params, buffers, x), y)


def meta_divergence(values: Tensor, phis: Sequence[Tensor], steps_done: int) -> list[str | None]:
    """Why each of K candidates' local search diverged (``values``: ``[T, K]`` meta losses
    from meta step 0), in the shared words of :func:`~evomal.training.divergence.divergence`."""
    finite = torch.stack([torch.isfinite(phi.detach()).all() for phi in phis]).cpu()
    return divergence(
        values, finite, first_step=0, steps_done=steps_done, loss="meta loss", what="phi",
        unit="meta step",
    )  # fmt: skip


def optimise_phi(
    loss: ParametricLoss,
    phi0: Tensor,
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
) -> LocalSearchResult:
    """Algorithm 1: ``steps`` Adam updates of phi through ``base_steps`` unrolled optimiser steps.

    With a ``normaliser`` the learned loss is scale-normalised inside every
    unrolled step, and the result carries the final factor as its scale.
    """
    phi = phi0.detach().clone().to(learners[0].task.device)
    if steps == 0 or phi.numel() == 0:
        return LocalSearchResult(phi, [], False, scale=final_scale(normaliser, loss, phi))
    phi.requires_grad_(True)
    optimiser = torch.optim.Adam([phi], lr=meta_lr)
    seeds = meta_step_seeds(run_seed, steps)
    streams = [
        meta_streams(learner.task, batch_size, run_seed + j, meta_split)
        for j, learner in enumerate(learners)
    ]

    def total_task_loss(phi_: Tensor, states: list[tuple[State, State]], data: list) -> Tensor:
        total = torch.zeros((), device=phi_.device)
        factor = normaliser.factor(loss, phi_) if normaliser is not None else None
        for j, learner in enumerate(learners):
            params, buffers = states[j]
            inner, outer = data[j]
            total = total + unrolled_task_loss(
                phi_, loss, learner, params, buffers, inner, outer, optimizer, factor
            )
        return total

    meta_losses = torch.empty(steps, device=phi.device)
    for step in range(steps):
        states = [learner.initial_state(seeds[step] + j) for j, learner in enumerate(learners)]
        data = [([a.next() for _ in range(base_steps)], b.next()) for a, b in streams]
        value = total_task_loss(phi, states, data)
        (phi.grad,) = torch.autograd.grad(value, phi)
        optimiser.step()
        meta_losses[step] = value.detach()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            # One host sync every CHECK_EVERY steps: stop early once phi or the loss blow up.
            window = meta_losses[: step + 1]
            (reason,) = meta_divergence(window.unsqueeze(1), [phi], step + 1)
            if reason is not None:
                return LocalSearchResult(phi.detach(), window.tolist(), True, reason)
    final = phi.detach()
    return LocalSearchResult(
        final, meta_losses.tolist(), False, scale=final_scale(normaliser, loss, final)
    )
