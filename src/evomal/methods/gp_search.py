"""GP-based methods: EvoMAL (GP + local search) and GP-LFL (GP, phi fixed at 1).

Both run the same GP loop over the same evaluator; GP-LFL only switches the
local search off (paper Section 4.1). GLO reuses :func:`run_gp` for its
structure stage.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from evomal.events import CACHED, EVALUATED, GenerationEvent, Outcome
from evomal.gp.loop import GeneticProgramming, GPState
from evomal.gp.seeds import seed_expressions
from evomal.losses.learned import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.evaluator import CandidateEvaluator
from evomal.methods.selection import Candidate
from evomal.symbolic.transforms import OutputActivation, TaskKind


def loss_from_outcome(
    outcome: dict[str, Any], kind: TaskKind, output_activation: OutputActivation
) -> LearnedLoss:
    """The :class:`LearnedLoss` an outcome describes (the source tree for a cache hit)."""
    out = Outcome.from_dict(outcome)
    return LearnedLoss(out.loss_expression(), out.phi, kind, output_activation, scale=out.scale)


def run_gp(run: MethodRun, payload_key: str = "gp") -> tuple[GPState, dict[str, int]]:
    """Run (or resume) the GP loop; returns the final state and the verdict counts."""
    config = run.config
    activation = config.gp.output_activation
    run.start_executor()
    evaluator = CandidateEvaluator.from_config(
        config, run.kind, run.executor, run.batch_size, n_classes=run.task.n_classes
    )

    def best_loss(best: dict[str, Any]) -> nn.Module:
        return loss_from_outcome(best, run.kind, activation)

    def on_event(event: Any) -> None:
        if isinstance(event, GenerationEvent):
            event.checkpoint = {**(run.resume_from or {}), payload_key: event.checkpoint["gp"]}
        run.emit(event, best_loss)

    gp = GeneticProgramming(config.gp, evaluator.evaluate, on_event)
    saved = (run.resume_from or {}).get(payload_key)
    if saved is None:
        seeded = seed_expressions(
            config.gp.seed_losses, run.kind, config.selection.baselines, config.gp.functions
        )
        state = gp.initial_state(config.seed, seeded)
    else:
        state = GPState.from_dict(saved)
        evaluator.load_state_dict(state.evaluator_state)
        run._last_best = state.best
    state = gp.run(state, evaluator.state_dict, max_generations=run.max_generations)
    verdicts: dict[str, int] = {}
    for summary in state.history:
        for verdict, count in summary["verdicts"].items():
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    return state, verdicts


def gp_candidates(state: GPState, kind: TaskKind, activation: OutputActivation) -> list[Candidate]:
    """Every distinct loss the GP scored itself, best first.

    Drawn from the equivalence cache (every distinct function evaluated in
    the run), the final population and the best individual. Only losses with
    a fitness of their own count: rejected, failed and gradient-equivalent
    candidates (which borrow another's fitness) are left out.
    """
    outcomes = list(state.evaluator_state.get("equivalence_cache", {}).values())
    outcomes += [ind["outcome"] for ind in state.population if ind["outcome"]]
    if state.best is not None:
        outcomes.append(state.best)
    found: dict[str, Candidate] = {}
    for data in outcomes:
        out = Outcome.from_dict(data)
        if out.verdict not in (EVALUATED, CACHED) or out.fitness is None:
            continue
        key = out.key or out.loss_expression()
        if key in found:
            continue
        loss = loss_from_outcome(data, kind, activation)
        found[key] = Candidate(loss.expression, loss.to_dict(), out.fitness, key)
    return sorted(found.values(), key=lambda c: c.fitness)


def gp_result(run: MethodRun, state: GPState, verdicts: dict[str, int]) -> SearchResult:
    """The search result of a GP state: the best loss, or a clear statement that none passed."""
    kind, activation = run.kind, run.config.gp.output_activation
    candidates = gp_candidates(state, kind, activation)
    if state.best is not None:
        best = loss_from_outcome(state.best, kind, activation)
        message = (
            f"best fitness {state.best['fitness']:.4g} in generation "
            f"{state.best['generation']}: {best.expression}"
        )
        return SearchResult(
            method=run.method,
            best=best,
            best_fitness=state.best["fitness"],
            best_outcome=state.best,
            history=state.history,
            run_dir=run.run_dir,
            message=message,
            verdicts=verdicts,
            finished=state.done,
            candidates=candidates,
        )
    total = sum(verdicts.values())
    message = f"no candidate passed the filters ({total} scored: {verdicts})"
    return SearchResult(
        method=run.method,
        best=None,
        best_fitness=None,
        best_outcome=None,
        history=state.history,
        run_dir=run.run_dir,
        message=message,
        verdicts=verdicts,
        finished=state.done,
        candidates=candidates,
    )


def run_evomal(run: MethodRun) -> SearchResult:
    """EvoMAL: GP over trees, local search of the edge weights, fitness by partial training."""
    state, verdicts = run_gp(run)
    return run.finish(gp_result(run, state, verdicts))


def run_gplfl(run: MethodRun) -> SearchResult:
    """GP-LFL: EvoMAL's GP with no local search (phi fixed at 1; the registry turns it off)."""
    state, verdicts = run_gp(run)
    return run.finish(gp_result(run, state, verdicts))
