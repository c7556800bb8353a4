"""The per-candidate stages that workers run: screen + local search, and fitness.

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
from dataclasses import dataclass, field
from typing import Any

import torch

from evomal.gp.filters import gradient_norms, gradient_signature, rejection_score
from evomal.losses.io import loss_from_dict
from evomal.meta.local_search import LocalSearchResult, initial_phi, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.methods.context import EvaluationContext
from evomal.symbolic.compile import CompiledLoss, compile_tree, nonfinite_reason
from evomal.training.loop import train
from evomal.training.population import train_population


@dataclass(frozen=True)
class ScreenJob:
    """Screen and optimise one tree."""

    expression: str


@dataclass
class ScreenOutcome:
    """What stage A found: optimised phi, the rejection verdict, the gradient signature."""

    phi: list[float]
    rejected: bool = False
    score: float | None = None
    signature: str | None = None
    failed: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FitnessJob:
    """Score one loss, given as its JSON document (any kind: symbolic, Taylor, neural)."""

    document: dict[str, Any]


@dataclass
class FitnessOutcome:
    fitness: float | None
    failed: str | None = None
    seconds: float = 0.0


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from the given parts, identical in every process and Python version."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _compiled(ctx: EvaluationContext, expression: str) -> CompiledLoss:
    return compile_tree(expression, ctx.spec.kind, ctx.config.gp.output_activation)


def _screen(ctx: EvaluationContext, loss: CompiledLoss, phi: torch.Tensor) -> tuple[float, str]:
    """Mean rejection score over the tasks' probes, and the joint gradient signature."""
    filters = ctx.config.filters
    scores, signatures = [], []
    for probe in ctx.probes:
        p = phi.to(probe.predictions.device)
        if filters.rejection:
            scores.append(
                rejection_score(loss, p, probe, filters.rejection_steps, filters.rejection_lr)
            )
        if filters.gradient_equivalence:
            signatures.append(
                gradient_signature(gradient_norms(loss, p, probe), filters.gradient_digits)
            )
    score = sum(scores) / len(scores) if scores else math.inf
    return score, "|".join(signatures)


@dataclass
class _Prepared:
    """A candidate that passed the checks before the local search."""

    loss: CompiledLoss
    phi: torch.Tensor
    seconds: dict[str, float]


def _prepare(ctx: EvaluationContext, job: ScreenJob) -> _Prepared | ScreenOutcome:
    """Compile, draw phi, check finiteness and (optionally) screen before the local search."""
    seconds: dict[str, float] = {"screen": 0.0, "local_search": 0.0}
    try:
        loss = _compiled(ctx, job.expression)
        ls, filters = ctx.config.local_search, ctx.config.filters
        if ls.enabled:
            seed = stable_seed(ctx.spec.seed, job.expression)
            phi = initial_phi(loss.n_weights, ls.phi_init_std, seed)
        else:
            phi = torch.ones(loss.n_weights)
        for probe in ctx.probes:
            device = probe.predictions.device
            reason = nonfinite_reason(loss, probe.predictions, probe.targets, phi.to(device))
            if reason is not None:
                failed = f"non-finite on the probe: {reason}"
                return ScreenOutcome(phi.tolist(), failed=failed, seconds=seconds)
        if filters.rejection and filters.screening in ("before", "both"):
            start = time.perf_counter()
            score, _ = _screen(ctx, loss, phi)
            seconds["screen"] += time.perf_counter() - start
            if score < filters.rejection_threshold:
                return ScreenOutcome(phi.tolist(), rejected=True, score=score, seconds=seconds)
        return _Prepared(loss, phi, seconds)
    except Exception as exc:  # a fault stays inside its candidate
        return ScreenOutcome([], failed=describe_error(exc), seconds=seconds)


def _finish(
    ctx: EvaluationContext, prepared: _Prepared, result: LocalSearchResult | None
) -> ScreenOutcome:
    """Record the local search and screen after it (the paper's order)."""
    seconds, phi = prepared.seconds, prepared.phi
    try:
        if result is not None:
            if result.diverged:
                failed = f"local search: {result.reason}"
                return ScreenOutcome(result.phi.tolist(), failed=failed, seconds=seconds)
            phi = result.phi.cpu()
        filters = ctx.config.filters
        start = time.perf_counter()
        score, signature = _screen(ctx, prepared.loss, phi)
        seconds["screen"] += time.perf_counter() - start
        after = filters.screening in ("after", "both")
        rejected = filters.rejection and after and score < filters.rejection_threshold
        return ScreenOutcome(
            phi.tolist(),
            rejected=rejected,
            score=score if filters.rejection else None,
            signature=signature or None,
            seconds=seconds,
        )
    except Exception as exc:  # a fault stays inside its candidate
        return ScreenOutcome(phi.tolist(), failed=describe_error(exc), seconds=seconds)


def _search_kwargs(ctx: EvaluationContext) -> dict[str, Any]:
    ls = ctx.config.local_search
    return {
        "steps": ls.steps,
        "base_steps": ls.base_steps,
        "base_lr": ctx.base_lr,
        "meta_lr": ls.meta_lr,
        "batch_size": ctx.config.training.batch_size,
        "run_seed": ctx.spec.seed,
    }


def _searching(ctx: EvaluationContext) -> bool:
    ls = ctx.config.local_search
    return ls.enabled and ls.steps > 0


def screen_and_optimise(ctx: EvaluationContext, job: ScreenJob) -> ScreenOutcome:
    """Stage A: finiteness check, screening (before and/or after), local search of phi."""
    prepared = _prepare(ctx, job)
    if isinstance(prepared, ScreenOutcome):
        return prepared
    result = None
    if _searching(ctx):
        start = time.perf_counter()
        try:
            result = optimise_phi(prepared.loss, prepared.phi, ctx.learners, **_search_kwargs(ctx))
        except Exception as exc:  # a fault stays inside its candidate
            return ScreenOutcome(
                prepared.phi.tolist(), failed=describe_error(exc), seconds=prepared.seconds
            )
        prepared.seconds["local_search"] = time.perf_counter() - start
    return _finish(ctx, prepared, result)


def screen_and_optimise_batch(ctx: EvaluationContext, jobs: list[ScreenJob]) -> list[ScreenOutcome]:
    """Stage A for several candidates, with one batched local search for the survivors.

    If the batched local search raises, the survivors are searched one by
    one so that the fault stays with the candidate that caused it.
    """
    prepared = [_prepare(ctx, job) for job in jobs]
    alive = {i: p for i, p in enumerate(prepared) if isinstance(p, _Prepared)}
    results: dict[int, LocalSearchResult] = {}
    if _searching(ctx) and alive:
        start = time.perf_counter()
        try:
            batch = optimise_phi_population(
                [p.loss for p in alive.values()],
                [p.phi for p in alive.values()],
                ctx.learners,
                **_search_kwargs(ctx),
            )
        except Exception:
            return [screen_and_optimise(ctx, job) for job in jobs]
        share = (time.perf_counter() - start) / len(alive)
        for (i, ready), result in zip(alive.items(), batch, strict=True):
            results[i] = result
            ready.seconds["local_search"] = share
    outcomes: list[ScreenOutcome] = []
    for i, item in enumerate(prepared):
        if isinstance(item, ScreenOutcome):
            outcomes.append(item)
        else:
            outcomes.append(_finish(ctx, item, results.get(i)))
    return outcomes


def fitness(ctx: EvaluationContext, job: FitnessJob) -> FitnessOutcome:
    """Stage C: partial training from the run's seeded initial weights; validation metric."""
    start = time.perf_counter()
    try:
        values = []
        for j, learner in enumerate(ctx.learners):
            criterion = loss_from_dict(job.document)
            result = train(
                learner.build(ctx.spec.seed + j),
                criterion,
                learner.task,
                ctx.config.fitness.steps,
                ctx.sgd,
                batch_size=ctx.config.training.batch_size,
                seed=ctx.spec.seed + j,
            )
            if result.diverged or result.val_metric is None or not math.isfinite(result.val_metric):
                return FitnessOutcome(
                    None, f"fitness training diverged: {result.reason}", time.perf_counter() - start
                )
            values.append(result.val_metric)
        return FitnessOutcome(sum(values) / len(values), None, time.perf_counter() - start)
    except Exception as exc:  # a fault stays inside its candidate
        return FitnessOutcome(None, describe_error(exc), time.perf_counter() - start)


def fitness_batch(ctx: EvaluationContext, jobs: list[FitnessJob]) -> list[FitnessOutcome]:
    """Stage C for several candidates: one population-batched partial training per task.

    Falls back to one-by-one training if the batched run raises.
    """
    start = time.perf_counter()
    try:
        losses = [loss_from_dict(job.document) for job in jobs]
        per_task = []
        for j, learner in enumerate(ctx.learners):
            models = [learner.build(ctx.spec.seed + j) for _ in jobs]
            per_task.append(
                train_population(
                    models,
                    losses,
                    learner.task,
                    ctx.config.fitness.steps,
                    ctx.sgd,
                    batch_size=ctx.config.training.batch_size,
                    seed=ctx.spec.seed + j,
                )
            )
    except Exception:
        return [fitness(ctx, job) for job in jobs]
    share = (time.perf_counter() - start) / len(jobs)
    outcomes = []
    for k in range(len(jobs)):
        results = [task_results[k] for task_results in per_task]
        bad = next(
            (
                r
                for r in results
                if r.diverged or r.val_metric is None or not math.isfinite(r.val_metric)
            ),
            None,
        )
        if bad is not None:
            outcomes.append(FitnessOutcome(None, f"fitness training diverged: {bad.reason}", share))
        else:
            value = sum(r.val_metric for r in results if r.val_metric is not None) / len(results)
            outcomes.append(FitnessOutcome(value, None, share))
    return outcomes


def describe_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
