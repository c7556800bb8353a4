"""ML3 (Bechtle et al., ICPR 2021): a loss network trained by unrolled differentiation.

The loss is the network of :mod:`evomal.losses.neural` (two hidden layers of
50 ReLU units, softplus output). Its weights are trained with exactly
EvoMAL's local-search procedure (Algorithm 1: reset the base model, one
differentiable SGD step, task loss on a fresh batch, Adam on the loss
weights), for ``ml3.steps`` meta steps. The learned network is then scored
with the same partial-training fitness as every other method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

from evomal.events import (
    EVALUATED,
    FAILED,
    CandidateEvent,
    GenerationEvent,
    GenerationRecord,
    GenerationSummary,
    Outcome,
    Scored,
)
from evomal.execution.context import EvaluationContext
from evomal.losses.neural import NeuralLoss, NeuralLossFunction
from evomal.meta.local_search import optimise_phi
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.selection import Candidate
from evomal.methods.stages import FitnessJob, FitnessOutcome, describe_error, fitness, stable_seed


@dataclass(frozen=True)
class ML3Job:
    """Train the loss network (runs on a worker, like any other stage)."""

    hidden: tuple[int, ...]


class _ML3Fields(TypedDict):
    params: list[float]
    fitness: float | None
    summary: GenerationRecord


class ML3State(_ML3Fields, total=False):
    """ML3's checkpoint (key ``ml3``): the trained network's weights and scale, its fitness
    (``None``: failed, and why) and its generation summary."""

    scale: float
    reason: str | None


@dataclass
class ML3Outcome:
    params: list[float]
    meta_losses: list[float]
    failed: str | None
    seconds: float
    scale: float = 1.0


def train_loss_network(ctx: EvaluationContext, job: ML3Job) -> ML3Outcome:
    start = time.perf_counter()
    cfg, ls = ctx.config.ml3, ctx.config.local_search
    fn = NeuralLossFunction(ctx.spec.kind, job.hidden)
    params0 = fn.initial_params(stable_seed(ctx.spec.seed, "ml3"))
    try:
        result = optimise_phi(
            fn,
            params0,
            ctx.learners,
            steps=cfg.steps,
            base_steps=ls.base_steps,
            optimizer=ctx.unrolled_optimizer,
            meta_lr=cfg.meta_lr,
            batch_size=ctx.config.fitness.batch_size,
            run_seed=ctx.spec.seed,
            normaliser=ctx.normaliser,
        )
    except Exception as exc:  # a fault stays inside the run's single candidate
        return ML3Outcome(params0.tolist(), [], describe_error(exc), time.perf_counter() - start)
    failed = f"meta-training diverged: {result.reason}" if result.diverged else None
    return ML3Outcome(
        result.phi.cpu().tolist(),
        result.meta_losses,
        failed,
        time.perf_counter() - start,
        result.scale,
    )


def run_ml3(run: MethodRun) -> SearchResult:
    """Train the loss network, score it, then (in ``finish``) select against the task loss.

    The checkpoint holds the trained network and its fitness, so a resumed
    run goes straight to the selection stage.
    """
    run.start_executor()
    hidden = tuple(run.config.ml3.hidden)
    saved: ML3State | None = run.saved("ml3")
    if saved is not None and "params" in saved:
        loss = NeuralLoss(saved["params"], run.kind, hidden)
        loss.set_scale(saved.get("scale", 1.0))
        value, reason = saved["fitness"], saved.get("reason")
        summary = GenerationSummary.from_dict(saved["summary"])
    else:
        loss, value, reason, summary = _train_and_score(run, hidden)
    record = _record(loss, value)
    candidates = []
    if value is not None:
        candidates = [Candidate(loss.expression, loss.to_dict(), value, "ml3")]
    message = (
        f"ML3 loss network trained for {run.config.ml3.steps} meta steps; fitness {value:.4g}"
        if value is not None
        else f"ML3 failed: {reason}"
    )
    return run.finish(
        run.result(
            best=loss if value is not None else None,
            record=record,
            history=[summary],
            message=message,
            candidates=candidates,
        )
    )


def _record(loss: NeuralLoss, value: float | None) -> Scored | None:
    if value is None:
        return None
    return Scored(document=loss.to_dict(), fitness=value, generation=0, label=loss.expression,
                  key="ml3")  # fmt: skip


def _train_and_score(
    run: MethodRun, hidden: tuple[int, ...]
) -> tuple[NeuralLoss, float | None, str | None, GenerationSummary]:
    (trained,) = run.executor.map(train_loss_network, [ML3Job(hidden)])
    loss = NeuralLoss(trained.params, run.kind, hidden)
    loss.set_scale(trained.scale)
    fit: FitnessOutcome | None = None
    if trained.failed is None:
        (fit,) = run.executor.map(fitness, [FitnessJob(loss.to_dict())])
    value = fit.fitness if fit is not None else None
    reason = trained.failed or (fit.failed if fit is not None else None)
    outcome = Outcome(
        expression=loss.expression,
        key="",
        phi=[],
        fitness=value,
        verdict=EVALUATED if value is not None else FAILED,
        reason=reason,
        seconds={"local_search": trained.seconds, "fitness": fit.seconds if fit else 0.0},
        scale=trained.scale,
    )
    run.emit(CandidateEvent(0, 0, outcome))
    summary = GenerationSummary.of(
        0,
        [outcome.verdict],
        [value],
        value,
        loss.expression,
        final_meta_loss=trained.meta_losses[-1] if trained.meta_losses else None,
    )
    state: ML3State = {
        "params": loss.weights.detach().tolist(),
        "scale": trained.scale,
        "fitness": value,
        "reason": reason,
        "summary": summary.as_dict(),
    }
    run.emit(GenerationEvent(0, summary, _record(loss, value)))
    run.checkpoint("ml3", state)
    return loss, value, reason, summary
