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
from evomal.meta.local_search import initial_phi, optimise_phi
from evomal.methods.context import EvaluationContext
from evomal.symbolic.compile import CompiledLoss, compile_tree, nonfinite_reason
from evomal.training.loop import train


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


def screen_and_optimise(ctx: EvaluationContext, job: ScreenJob) -> ScreenOutcome:
    """Stage A: finiteness check, screening (before and/or after), local search of phi."""
    seconds: dict[str, float] = {"screen": 0.0, "local_search": 0.0}
    try:
        loss = _compiled(ctx, job.expression)
        ls = ctx.config.local_search
        filters = ctx.config.filters
        if ls.enabled:
            phi = initial_phi(
                loss.n_weights, ls.phi_init_std, stable_seed(ctx.spec.seed, job.expression)
            )
        else:
            phi = torch.ones(loss.n_weights)
        for probe in ctx.probes:
            reason = nonfinite_reason(
                loss, probe.predictions, probe.targets, phi.to(probe.predictions.device)
            )
            if reason is not None:
                return ScreenOutcome(
                    phi.tolist(), failed=f"non-finite on the probe: {reason}", seconds=seconds
                )
        threshold = filters.rejection_threshold
        if filters.rejection and filters.screening in ("before", "both"):
            start = time.perf_counter()
            score, _ = _screen(ctx, loss, phi)
            seconds["screen"] += time.perf_counter() - start
            if score < threshold:
                return ScreenOutcome(phi.tolist(), rejected=True, score=score, seconds=seconds)
        if ls.enabled and ls.steps > 0:
            start = time.perf_counter()
            result = optimise_phi(
                loss,
                phi,
                ctx.learners,
                steps=ls.steps,
                base_steps=ls.base_steps,
                base_lr=ctx.base_lr,
                meta_lr=ls.meta_lr,
                batch_size=ctx.config.training.batch_size,
                run_seed=ctx.spec.seed,
            )
            seconds["local_search"] = time.perf_counter() - start
            if result.diverged:
                return ScreenOutcome(
                    result.phi.tolist(), failed=f"local search: {result.reason}", seconds=seconds
                )
            phi = result.phi.cpu()
        start = time.perf_counter()
        score, signature = _screen(ctx, loss, phi)
        seconds["screen"] += time.perf_counter() - start
        rejected = (
            filters.rejection and filters.screening in ("after", "both") and score < threshold
        )
        return ScreenOutcome(
            phi.tolist(),
            rejected=rejected,
            score=score if filters.rejection else None,
            signature=signature or None,
            seconds=seconds,
        )
    except Exception as exc:  # a fault stays inside its candidate
        return ScreenOutcome([], failed=describe_error(exc), seconds=seconds)


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


def describe_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
