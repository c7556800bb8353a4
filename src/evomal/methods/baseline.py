"""The baseline: the task loss itself (cross-entropy or MSE), with no meta-learning.

Its "search" returns the task loss as a tree (which equals ``F.cross_entropy``
/ MSE, see the oracle tests) and scores it with the same partial-training
fitness as the other methods, so fitness columns are comparable.
"""

from __future__ import annotations

from evomal.events import (
    EVALUATED,
    FAILED,
    CandidateEvent,
    GenerationEvent,
    GenerationSummary,
    Outcome,
    Scored,
)
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.stages import FitnessJob, FitnessOutcome, fitness


def run_baseline(run: MethodRun) -> SearchResult:
    loss, record, summary = score_task_loss(run)
    run.checkpoint("baseline", {"done": True})
    message = f"baseline {loss.expression}: fitness {record.fitness}"
    return run.finish(
        run.result(best=loss, record=record, history=[summary], message=message, task_loss=True)
    )


def score_task_loss(run: MethodRun) -> tuple[LearnedLoss, Scored, GenerationSummary]:
    """The task loss as a tree, scored by the search fitness (one candidate, generation 0)."""
    loss = LearnedLoss.cross_entropy() if run.kind == "classification" else LearnedLoss.mse()
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
    record = Scored(document=loss.to_dict(), fitness=fit.fitness, generation=0,
                    label=loss.expression, key=loss.expression)  # fmt: skip
    run.emit(GenerationEvent(0, summary, record))
    return loss, record, summary
