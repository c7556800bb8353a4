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
)
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.stages import FitnessJob, FitnessOutcome, fitness


def run_baseline(run: MethodRun) -> SearchResult:
    loss = LearnedLoss.cross_entropy() if run.kind == "classification" else LearnedLoss.mse()
    run.start_executor()
    (fit,) = run.executor.map(fitness, [FitnessJob(loss.to_dict())])
    assert isinstance(fit, FitnessOutcome)
    verdict = EVALUATED if fit.fitness is not None else FAILED
    outcome = Outcome(
        loss.expression,
        "",
        loss.phi.tolist(),
        fit.fitness,
        verdict,
        fit.failed,
        seconds={"fitness": fit.seconds},
    )
    run.emit(CandidateEvent(0, 0, outcome))
    summary = GenerationSummary.of(0, [verdict], [fit.fitness], fit.fitness, loss.expression)
    best = {**outcome.as_dict(), "generation": 0}
    run.emit(GenerationEvent(0, summary, best, {"baseline": {"done": True}}), lambda _: loss)
    message = f"baseline {loss.expression}: fitness {fit.fitness}"
    return run.finish(
        SearchResult(
            method=run.method,
            best=loss,
            best_fitness=fit.fitness,
            best_outcome=best,
            history=[summary.as_dict()],
            run_dir=run.run_dir,
            message=message,
            verdicts={verdict: 1},
            task_loss=True,
        )
    )
