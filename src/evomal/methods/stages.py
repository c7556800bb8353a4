"""The per-candidate stages that workers run: screening, local search, fitness.

Each stage is a pure function of a context and a small plain-data job, so it
can run in any process or on any Ray worker and give the same answer. Every
fault stays inside the candidate: an exception, a non-finite loss or a
diverging run comes back as a ``failed`` reason, never as a crash.
"""

from __future__ import annotations

import hashlib
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch

from evomal.execution.base import batched_or_one_by_one
from evomal.execution.context import EvaluationContext
from evomal.gp.filters import gradient_norms, gradient_signature, rejection_traces
from evomal.losses.document import LossDocument
from evomal.losses.io import loss_from_dict
from evomal.meta.local_search import LocalSearchResult, MetaSplit, initial_phi, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.meta.scale import ScaleNormaliser
from evomal.symbolic.compile import CompiledLoss, compile_tree, nonfinite_reason
from evomal.training.loop import Prune, TrainResult, train
from evomal.training.population import train_population
from evomal.training.unrolled_sgd import UnrolledSGD


@dataclass(frozen=True)
class ScreenJob:
    """Screen a chunk of candidates together (one stacked rejection protocol).

    Without ``phis`` the job also prepares the candidates: it compiles each
    tree, draws its initial phi and checks that the loss is finite on the
    probes. ``reject`` runs the rejection protocol, ``signatures`` computes
    the gradient-equivalence signatures (of the loss times its ``scales``).
    """

    expressions: tuple[str, ...]
    phis: tuple[tuple[float, ...], ...] | None = None
    scales: tuple[float, ...] | None = None
    reject: bool = True
    signatures: bool = False


@dataclass
class ScreenOutcome:
    """What the screen found for one candidate."""

    phi: list[float]
    failed: str | None = None
    score: float | None = None
    late_rise: float | None = None
    signature: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class SearchJob:
    """Optimise one tree's edge weights from ``phi`` (the local search)."""

    expression: str
    phi: tuple[float, ...]


@dataclass
class SearchOutcome:
    """The optimised phi, the loss scale (scale normalisation), or why it failed."""

    phi: list[float]
    scale: float = 1.0
    failed: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class FitnessJob:
    """Score one loss, given as its JSON document (any kind: symbolic, Taylor, neural).

    With ``fitness.prune_at`` on, training stops at the prune step if the
    validation metric there is above ``prune_above`` (successive halving).
    ``steps`` overrides ``fitness.steps``: the evaluator's rung before the
    local search trains only to the prune step.
    """

    document: LossDocument
    prune_above: float = math.inf
    steps: int | None = None


@dataclass
class FitnessOutcome:
    """A fitness, or why there is none.

    ``rung`` is the validation metric at the prune step (mean over the
    learners), for a candidate that was trained to the end; ``pruned`` marks
    one that stopped there, whose ``fitness`` is that step's metric.
    """

    fitness: float | None
    failed: str | None = None
    seconds: float = 0.0
    rung: float | None = None
    pruned: bool = False


def _prune(ctx: EvaluationContext, job: FitnessJob) -> Prune | None:
    step = ctx.config.fitness.prune_step
    return None if step is None else Prune(step, job.prune_above)


def _fitness_outcome(
    results: list[TrainResult], prune: Prune | None, seconds: float
) -> FitnessOutcome:
    """Fold one candidate's runs (one per learner, in order) into its outcome.

    The one-by-one loop stops at the first pruned run, so only the runs up to
    it count, whichever loop produced them.
    """
    first = next((j for j, r in enumerate(results) if r.pruned), None)
    counted = results if first is None else results[: first + 1]
    for r in counted:
        if r.diverged or r.val_metric is None or not math.isfinite(r.val_metric):
            return FitnessOutcome(None, f"fitness training diverged: {r.reason}", seconds)
    rungs = [prune.metric_at(r.val_history) for r in counted] if prune is not None else []
    rung = _mean(rungs) if rungs and None not in rungs else None
    if first is not None:
        return FitnessOutcome(rung, None, seconds, pruned=True)
    return FitnessOutcome(_mean([r.val_metric for r in counted]), None, seconds, rung=rung)


def _mean(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None]  # the callers have checked there are none
    return sum(present) / len(present)


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from the given parts, identical in every process and Python version."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _compiled(ctx: EvaluationContext, expression: str) -> CompiledLoss:
    return compile_tree(expression, ctx.spec.kind, ctx.config.gp.output_activation)


def _initial_phi(ctx: EvaluationContext, expression: str, n_weights: int) -> torch.Tensor:
    """N(1, std^2) drawn from the run seed and the tree; ones when phi is not searched."""
    ls = ctx.config.local_search
    if not ls.enabled:
        return torch.ones(n_weights)
    return initial_phi(n_weights, ls.phi_init_std, stable_seed(ctx.spec.seed, expression))


def _nonfinite(ctx: EvaluationContext, loss: CompiledLoss, phi: torch.Tensor) -> str | None:
    for probe in ctx.probes:
        device = probe.predictions.device
        reason = nonfinite_reason(loss, probe.predictions, probe.targets, phi.to(device))
        if reason is not None:
            return f"non-finite on the probe: {reason}"
    return None


def _rejection(
    ctx: EvaluationContext, losses: list[CompiledLoss], phis: list[torch.Tensor]
) -> list[tuple[float, float]]:
    """(score, late rise) per candidate: the mean score and the largest rise over the probes."""
    filters = ctx.config.filters
    per_probe = [
        rejection_traces(
            losses,
            [phi.to(probe.predictions.device) for phi in phis],
            probe,
            filters.rejection_steps,
            filters.rejection_lr,
        )
        for probe in ctx.probes
    ]
    results = []
    for k in range(len(losses)):
        traces = [row[k] for row in per_probe]
        score = sum(t.score for t in traces) / len(traces)
        results.append((score, max(t.late_rise for t in traces)))
    return results


def _signature(ctx: EvaluationContext, loss: CompiledLoss, phi: torch.Tensor, scale: float) -> str:
    digits = ctx.config.filters.gradient_digits
    parts = []
    for probe in ctx.probes:
        norms = gradient_norms(loss, phi.to(probe.predictions.device), probe) * scale
        parts.append(gradient_signature(norms, digits))
    return "|".join(parts)


def screen(ctx: EvaluationContext, job: ScreenJob) -> list[ScreenOutcome]:
    """Prepare and/or screen a chunk of candidates; one outcome per expression, in order.

    The rejection protocol runs once for the whole chunk (stacked). If the
    stacked run raises, every candidate is screened alone, so the fault stays
    with the candidate that caused it.
    """
    start = time.perf_counter()
    outcomes: list[ScreenOutcome] = []
    alive: list[tuple[int, CompiledLoss, torch.Tensor]] = []
    for i, expression in enumerate(job.expressions):
        phi = torch.empty(0)
        try:
            loss = _compiled(ctx, expression)
            if job.phis is None:
                phi = _initial_phi(ctx, expression, loss.n_weights)
                failed = _nonfinite(ctx, loss, phi)
            else:
                phi = torch.tensor(job.phis[i], dtype=torch.get_default_dtype())
                failed = None
        except Exception as exc:  # a fault stays inside its candidate
            outcomes.append(ScreenOutcome(phi.tolist(), failed=describe_error(exc)))
            continue
        outcomes.append(ScreenOutcome(phi.tolist(), failed=failed))
        if failed is None:
            alive.append((i, loss, phi))
    filters = ctx.config.filters
    if job.reject and filters.rejection and alive:

        def alone(candidate: tuple[int, CompiledLoss, torch.Tensor]) -> tuple[float, float]:
            i, loss, phi = candidate
            try:
                return _rejection(ctx, [loss], [phi])[0]
            except Exception as exc:  # a fault stays inside its candidate
                outcomes[i].failed = describe_error(exc)
                return (math.nan, math.nan)

        traces = batched_or_one_by_one(
            lambda: _rejection(ctx, [a[1] for a in alive], [a[2] for a in alive]), alone, alive
        )
        for (i, _, _), (score, rise) in zip(alive, traces, strict=True):
            if outcomes[i].failed is None:
                outcomes[i].score, outcomes[i].late_rise = score, rise
    if job.signatures and filters.gradient_equivalence:
        for i, loss, phi in alive:
            if outcomes[i].failed is not None:
                continue
            scale = job.scales[i] if job.scales is not None else 1.0
            try:
                outcomes[i].signature = _signature(ctx, loss, phi, scale)
            except Exception as exc:  # a fault stays inside its candidate
                outcomes[i].failed = describe_error(exc)
    share = (time.perf_counter() - start) / max(1, len(job.expressions))
    for outcome in outcomes:
        outcome.seconds = share
    return outcomes


class SearchSettings(TypedDict):
    """The keyword arguments of :func:`~evomal.meta.local_search.optimise_phi` and
    :func:`~evomal.meta.population_search.optimise_phi_population` besides the losses, their
    starting weights and the learners."""

    steps: int
    base_steps: int
    optimizer: UnrolledSGD
    meta_lr: float
    batch_size: int
    run_seed: int
    normaliser: ScaleNormaliser | None
    meta_split: MetaSplit


def search_kwargs(ctx: EvaluationContext) -> SearchSettings:
    """The local search's settings for this context, as keyword arguments."""
    ls = ctx.config.local_search
    return {
        "steps": ls.steps,
        "base_steps": ls.base_steps,
        "optimizer": ctx.unrolled_optimizer,
        "meta_lr": ls.meta_lr,
        "batch_size": ctx.config.fitness.batch_size,
        "run_seed": ctx.spec.seed,
        "normaliser": ctx.normaliser,
        "meta_split": MetaSplit(ls.meta_split, ls.holdout_fraction),
    }


def _search_outcome(result: LocalSearchResult, seconds: float) -> SearchOutcome:
    phi = result.phi.cpu().tolist()
    if result.diverged:
        return SearchOutcome(phi, failed=f"local search: {result.reason}", seconds=seconds)
    return SearchOutcome(phi, result.scale, seconds=seconds)


def _searching(ctx: EvaluationContext) -> bool:
    ls = ctx.config.local_search
    return ls.enabled and ls.steps > 0


def optimise(ctx: EvaluationContext, job: SearchJob) -> SearchOutcome:
    """The local search of one tree's phi (Algorithm 1); phi unchanged when it is off."""
    if not _searching(ctx):
        return SearchOutcome(list(job.phi))
    start = time.perf_counter()
    try:
        loss = _compiled(ctx, job.expression)
        phi0 = torch.tensor(job.phi, dtype=torch.get_default_dtype())
        result = optimise_phi(loss, phi0, ctx.learners, **search_kwargs(ctx))
    except Exception as exc:  # a fault stays inside its candidate
        return SearchOutcome(list(job.phi), failed=describe_error(exc))
    return _search_outcome(result, time.perf_counter() - start)


def optimise_batch(ctx: EvaluationContext, jobs: list[SearchJob]) -> list[SearchOutcome]:
    """The local search of several trees in one population-batched pass.

    If the batched search raises, the trees are searched one by one so that
    the fault stays with the candidate that caused it.
    """
    if not _searching(ctx):
        return [SearchOutcome(list(job.phi)) for job in jobs]

    def together() -> list[SearchOutcome]:
        start = time.perf_counter()
        losses = [_compiled(ctx, job.expression) for job in jobs]
        phis = [torch.tensor(job.phi, dtype=torch.get_default_dtype()) for job in jobs]
        batch = optimise_phi_population(losses, phis, ctx.learners, **search_kwargs(ctx))
        share = (time.perf_counter() - start) / max(1, len(jobs))
        return [_search_outcome(result, share) for result in batch]

    return batched_or_one_by_one(together, lambda job: optimise(ctx, job), jobs)


def fitness(ctx: EvaluationContext, job: FitnessJob) -> FitnessOutcome:
    """Stage C: partial training from the run's seeded initial weights; validation metric."""
    start = time.perf_counter()
    prune = _prune(ctx, job)
    try:
        results = []
        for j, learner in enumerate(ctx.learners):
            result = train(
                learner.build(ctx.spec.seed + j),
                loss_from_dict(job.document),
                learner.task,
                job.steps or ctx.config.fitness.steps,
                ctx.sgd,
                batch_size=ctx.config.fitness.batch_size,
                seed=ctx.spec.seed + j,
                prune=prune,
            )
            results.append(result)
            if result.diverged or result.pruned:
                break
        return _fitness_outcome(results, prune, time.perf_counter() - start)
    except Exception as exc:  # a fault stays inside its candidate
        return FitnessOutcome(None, describe_error(exc), time.perf_counter() - start)


def fitness_batch(ctx: EvaluationContext, jobs: list[FitnessJob]) -> list[FitnessOutcome]:
    """Stage C for several candidates: one population-batched partial training per task.

    Falls back to one-by-one training if the batched run raises. The members
    of a batch share one prune threshold and step count (the evaluator gives
    them one); where they differ, they are trained one by one.
    """
    if len({(_prune(ctx, job), job.steps) for job in jobs}) > 1:
        return [fitness(ctx, job) for job in jobs]
    prune, steps = _prune(ctx, jobs[0]), jobs[0].steps or ctx.config.fitness.steps

    def together() -> list[FitnessOutcome]:
        start = time.perf_counter()
        losses = [loss_from_dict(job.document) for job in jobs]
        per_task = []
        for j, learner in enumerate(ctx.learners):
            models = [learner.build(ctx.spec.seed + j) for _ in jobs]
            per_task.append(
                train_population(
                    models,
                    losses,
                    learner.task,
                    steps,
                    ctx.sgd,
                    batch_size=ctx.config.fitness.batch_size,
                    seed=ctx.spec.seed + j,
                    prune=prune,
                )
            )
        share = (time.perf_counter() - start) / len(jobs)
        return [
            _fitness_outcome([task_results[k] for task_results in per_task], prune, share)
            for k in range(len(jobs))
        ]

    return batched_or_one_by_one(together, lambda job: fitness(ctx, job), jobs)


def describe_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
