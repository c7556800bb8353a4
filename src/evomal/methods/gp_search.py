"""GP-based methods: EvoMAL (GP + local search) and GP-LFL (GP, phi fixed at 1).

Both run the same GP loop over the same evaluator; GP-LFL only switches the
local search off (paper Section 4.1). GLO reuses :func:`run_gp` for its
structure stage.
"""

from __future__ import annotations

from evomal.events import CACHED, EVALUATED, Outcome, Scored
from evomal.gp.loop import GeneticProgramming, GPState, Record
from evomal.gp.seeds import seed_expressions
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.evaluator import CandidateEvaluator
from evomal.methods.selection import Candidate
from evomal.symbolic.transforms import OutputActivation, TaskKind


def loss_from_outcome(
    outcome: Outcome, kind: TaskKind, output_activation: OutputActivation
) -> LearnedLoss:
    """The :class:`LearnedLoss` an outcome describes (the source tree for a cache hit)."""
    return LearnedLoss(
        outcome.loss_expression(), outcome.phi, kind, output_activation, scale=outcome.scale
    )


def tree_record(kind: TaskKind, output_activation: OutputActivation) -> Record:
    """How a scored tree becomes its record: its loss file, labelled by its expression."""

    def record(outcome: Outcome, generation: int) -> Scored:
        loss = loss_from_outcome(outcome, kind, output_activation)
        return Scored(
            document=loss.to_dict(),
            fitness=outcome.fitness,
            generation=generation,
            label=outcome.expression,
            key=outcome.key or loss.expression,
        )

    return record


def run_gp(run: MethodRun, payload_key: str = "gp") -> GPState:
    """Run (or resume) the GP loop, checkpointing under ``payload_key``; the final state."""
    config = run.config
    run.start_executor()
    evaluator = CandidateEvaluator.from_config(
        config, run.kind, run.executor, run.batch_size, n_classes=run.task.n_classes
    )
    record = tree_record(run.kind, config.gp.output_activation)

    def checkpoint(state: GPState) -> None:
        run.checkpoint(payload_key, state.as_dict())

    gp = GeneticProgramming(config.gp, evaluator.evaluate, record, run.emit, checkpoint)
    saved = run.saved(payload_key)
    if saved is None:
        seeded = seed_expressions(
            config.gp.seed_losses, run.kind, config.selection.baselines, config.gp.functions
        )
        state = gp.initial_state(config.seed, seeded)
    else:
        state = GPState.from_dict(saved, record)
        evaluator.load_state_dict(state.evaluator_state)
    return gp.run(state, evaluator.state_dict, max_generations=run.max_generations)


def gp_candidates(state: GPState, kind: TaskKind, activation: OutputActivation) -> list[Candidate]:
    """Every distinct loss the GP scored itself, best first.

    Drawn from the equivalence cache (every distinct function evaluated in
    the run), the final population and the best individual. Only losses with
    a fitness of their own count: rejected, failed and gradient-equivalent
    candidates (which borrow another's fitness) are left out.
    """
    cache = {
        key: Outcome.from_dict(data)
        for key, data in state.evaluator_state.get("equivalence_cache", {}).items()
    }
    outcomes = list(cache.values())
    outcomes += [ind.outcome for ind in state.population if ind.outcome is not None]
    found: dict[str, Candidate] = {}
    for out in outcomes:
        if out.verdict not in (EVALUATED, CACHED) or out.fitness is None:
            continue
        key = out.key or out.loss_expression()
        if key in found:
            continue
        loss = loss_from_outcome(out, kind, activation)
        found[key] = Candidate(loss.expression, loss.to_dict(), out.fitness, key)
    best = state.best  # no longer in the population, and (with the cache off) in no cache
    if best is not None and best.fitness is not None and best.key not in found:
        source = cache.get(best.key)
        if source is None or source.verdict in (EVALUATED, CACHED):
            loss = LearnedLoss.from_dict(best.document)
            found[best.key] = Candidate(loss.expression, best.document, best.fitness, best.key)
    return sorted(found.values(), key=lambda c: c.fitness)


def gp_result(run: MethodRun, state: GPState) -> SearchResult:
    """The search result of a GP state: the best loss, or a clear statement that none passed."""
    kind, activation = run.kind, run.config.gp.output_activation
    candidates = gp_candidates(state, kind, activation)
    best = state.best
    if best is not None:
        loss = LearnedLoss.from_dict(best.document)
        message = (
            f"best fitness {best.fitness:.4g} in generation {best.generation}: {loss.expression}"
        )
        return run.result(
            best=loss,
            record=best,
            history=state.history,
            message=message,
            finished=state.done,
            candidates=candidates,
        )
    verdicts = run.verdicts
    message = f"no candidate passed the filters ({sum(verdicts.values())} scored: {verdicts})"
    return run.result(
        best=None,
        record=None,
        history=state.history,
        message=message,
        finished=state.done,
        candidates=candidates,
    )


def run_evomal(run: MethodRun) -> SearchResult:
    """EvoMAL: GP over trees, local search of the edge weights, fitness by partial training."""
    return run.finish(gp_result(run, run_gp(run)))


def run_gplfl(run: MethodRun) -> SearchResult:
    """GP-LFL: EvoMAL's GP with no local search (phi fixed at 1; the registry turns it off)."""
    return run.finish(gp_result(run, run_gp(run)))
