"""The baseline: the task loss itself (cross-entropy or MSE), with no meta-learning.

Its "search" returns the task loss as a tree (which equals ``F.cross_entropy``
/ MSE, see the oracle tests) and scores it with the same partial-training
fitness as the other methods, so fitness columns are comparable.
"""

from __future__ import annotations

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
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.stages import FitnessJob, FitnessOutcome, fitness


def run_baseline(run: MethodRun) -> SearchResult:
    loss, record, summary = score_task_loss(run)
    message = f"baseline {loss.expression}: fitness {record.fitness}"
    return run.finish(
        run.result(best=loss, record=record, history=[summary], message=message, task_loss=True)
    )


class TaskLossState(TypedDict):
    """The task loss's score (checkpoint key ``task_loss``): its fitness and generation
    summary, so a resumed run (in selection, say) neither trains nor records it again."""

    fitness: float | None
    summary: GenerationRecord


def score_task_loss(run: MethodRun) -> tuple[LearnedLoss, Scored, GenerationSummary]:
    """The task loss as a tree, scored by the search fitness (one candidate, generation 0).

    The score is checkpointed after its events; a resumed run reads it back.
    """
    loss = LearnedLoss.cross_entropy() if run.kind == "classification" else LearnedLoss.mse()
    saved: TaskLossState | None = run.saved("task_loss")
    if saved is not None:
        return loss, _scored(loss, saved["fitness"]), GenerationSummary.from_dict(saved["summary"])
    run.start_executor()
    (fit,) = run.executor.map(fitness, [FitnessJob(loss.to_dict())])
    assert isinstance(fit, FitnessOutcome)
    verdict = EVALUATED if fit.fitness is not None else FAILED
    outcome = Outcome(
        expression=loss.expression,
        key="",
        phi=loss.phi.tolist(),
        fitness=fit.fitness,
        verdict=verdict,
        reason=fit.failed,
        seconds={"fitness": fit.seconds},
    )
    run.emit(CandidateEvent(0, 0, outcome))
    summary = GenerationSummary.of(0, [verdict], [fit.fitness], fit.fitness, loss.expression)
    record = _scored(loss, fit.fitness)
    run.emit(GenerationEvent(0, summary, record))
    run.checkpoint("task_loss", TaskLossState(fitness=fit.fitness, summary=summary.as_dict()))
    return loss, record, summary


def _scored(loss: LearnedLoss, value: float | None) -> Scored:
    return Scored(document=loss.to_dict(), fitness=value, generation=0, label=loss.expression,
                  key=loss.expression)  # fmt: skip
