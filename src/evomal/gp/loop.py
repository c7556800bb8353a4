"""The GP outer loop (paper Section 3.1.2, Fig. 1). No I/O, no printing.

The loop owns the population and the random generator; it hands the
individuals that need scoring to an evaluator (a callable over a list of
trees) and announces what happens through a listener, which is where the run
store, the progress bar and any logger attach. Its whole state is plain data
(:class:`GPState`), so a run checkpoints after every generation and resumes to
exactly the same result.

One generation: score the individuals without a fitness; record the best;
then build the next population from the elites (the best 5%, at least one,
copied unchanged) and tournament-selected parents varied by one-point
crossover (probability 0.7 per pair) and uniform subtree mutation
(probability 0.25 per individual). Offspring taller than the height limit are
replaced by their parent; changed offspring are repaired so that they use
both ``y`` and ``fx``. Unchanged individuals keep their fitness.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, final

import numpy as np

from evomal.config import GPConfig
from evomal.events import (
    CACHED,
    EVALUATED,
    GRADIENT_EQUIVALENT,
    CandidateEvent,
    GenerationEvent,
    GenerationRecord,
    GenerationSummary,
    Listener,
    Outcome,
    OutcomeRecord,
    Scored,
    ScoredRecord,
)
from evomal.gp.operators import (
    combine_keeping_minimum,
    cx_one_point,
    fitness_key,
    mut_uniform,
    repair,
    sel_best,
    sel_tournament,
)
from evomal.symbolic.generate import gen_half_and_half
from evomal.symbolic.primitives import PrimitiveSet
from evomal.symbolic.tree import Tree, parse

Evaluate = Callable[[Sequence[Tree]], list[Outcome]]
#: How the method turns a scored tree into its record (the loss file needs the task's kind).
Record = Callable[[Outcome, int], Scored]


def _passed(outcome: Outcome | None) -> bool:
    """A candidate that passed the screen and has a fitness of its own or borrowed."""
    return (
        outcome is not None
        and outcome.fitness is not None
        and outcome.verdict in (EVALUATED, CACHED, GRADIENT_EQUIVALENT)
    )


class EvaluatorState(TypedDict, total=False):
    """What the candidate evaluator (:class:`evomal.methods.evaluator.CandidateEvaluator`)
    keeps in a GP state: its equivalence cache (key -> outcome), its gradient-equivalence
    cache (signature -> fitness) and its pruning reference. Empty before the first
    generation; runs from before pruning lack ``best_rung``."""

    equivalence_cache: dict[str, OutcomeRecord]
    gradient_cache: dict[str, float | None]
    best_rung: float | None


class IndividualRecord(TypedDict):
    """An :class:`Individual` as plain data."""

    expression: str
    outcome: OutcomeRecord | None


@final
class BestV1(OutcomeRecord):
    """A version-1 checkpoint's best candidate: its outcome and the generation that scored it
    (version 2 stores its :class:`ScoredRecord`)."""

    generation: int


class GPStateRecord(TypedDict):
    """A :class:`GPState` as plain data (a GP run's checkpoint)."""

    generation: int
    population: list[IndividualRecord]
    rng_state: dict[str, Any]  # numpy's bit-generator state, as numpy types it
    best: ScoredRecord | BestV1 | None
    history: list[GenerationRecord]
    evaluator_state: EvaluatorState
    done: bool


@dataclass(frozen=True)
class Individual:
    """A tree of the population and its outcome (``None`` until it is scored)."""

    expression: str
    outcome: Outcome | None = None

    def as_dict(self) -> IndividualRecord:
        return {
            "expression": self.expression,
            "outcome": None if self.outcome is None else self.outcome.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: IndividualRecord) -> Individual:
        outcome = data.get("outcome")
        return cls(data["expression"], None if outcome is None else Outcome.from_dict(outcome))

    @property
    def fitness(self) -> float | None:
        return None if self.outcome is None else self.outcome.fitness


@dataclass
class GPState:
    """Everything needed to continue a GP run; :meth:`as_dict` is plain data."""

    generation: int  # the next generation to score
    population: list[Individual]
    rng_state: dict[str, Any]
    best: Scored | None = None
    history: list[GenerationSummary] = field(default_factory=list)
    evaluator_state: EvaluatorState = field(default_factory=EvaluatorState)
    done: bool = False

    def as_dict(self) -> GPStateRecord:
        record: GPStateRecord = {
            "generation": self.generation,
            "population": [ind.as_dict() for ind in self.population],
            "rng_state": self.rng_state,
            "best": None if self.best is None else self.best.as_dict(),
            "history": [summary.as_dict() for summary in self.history],
            "evaluator_state": self.evaluator_state,
            "done": self.done,
        }
        return copy.deepcopy(record)

    @classmethod
    def from_dict(cls, data: GPStateRecord, record: Record | None = None) -> GPState:
        """Read :meth:`as_dict`'s form. A checkpoint of version 1 stored the best candidate's
        outcome (with its generation) instead of its record: ``record`` rebuilds that."""
        data = copy.deepcopy(data)
        best = data.get("best")
        scored: Scored | None = None
        if best is not None and "document" not in best:
            if record is None:
                raise ValueError("a version-1 GP state needs record= to read its best candidate")
            scored = record(Outcome.from_dict(best), best["generation"])
        elif best is not None:
            scored = Scored.from_dict(best)
        return cls(
            generation=data["generation"],
            population=[Individual.from_dict(ind) for ind in data["population"]],
            rng_state=data["rng_state"],
            best=scored,
            history=[GenerationSummary.from_dict(h) for h in data.get("history", [])],
            evaluator_state=data.get("evaluator_state", {}),
            done=data.get("done", False),
        )


class GeneticProgramming:
    """The outer loop over a population of loss trees."""

    def __init__(
        self,
        config: GPConfig,
        evaluate: Evaluate,
        record: Record,
        listener: Listener | None = None,
        checkpoint: Callable[[GPState], None] | None = None,
    ) -> None:
        """``record`` turns a scored tree into its record; ``listener`` receives the events;
        ``checkpoint`` receives the state after each generation's events."""
        self.config = config
        self.evaluate = evaluate
        self.record = record
        self.listener = listener or (lambda event: None)
        self.checkpoint = checkpoint or (lambda state: None)
        self.pset = PrimitiveSet(tuple(config.functions), tuple(config.terminals))

    def initial_state(self, seed: int, seeded: Sequence[str] = ()) -> GPState:
        """A ramped half-and-half population (repaired), and the generator that made it.

        ``seeded`` expressions (for example the task loss) replace the first
        random individuals; the random ones are drawn exactly as without them.
        """
        rng = np.random.default_rng(seed)
        c = self.config
        if len(seeded) > c.population_size:
            raise ValueError(
                f"{len(seeded)} seeded individuals do not fit a population of {c.population_size}"
            )
        population = [
            Individual(
                str(
                    repair(
                        rng,
                        gen_half_and_half(rng, c.init_min_height, c.init_max_height, self.pset),
                        self.pset,
                    )
                )
            )
            for _ in range(c.population_size)
        ]
        for i, expression in enumerate(seeded):
            population[i] = Individual(str(parse(expression)))
        return GPState(0, population, dict(rng.bit_generator.state))

    def run(
        self,
        state: GPState,
        evaluator_state: Callable[[], EvaluatorState] | None = None,
        max_generations: int | None = None,
    ) -> GPState:
        """Run generations from ``state`` until the budget (or ``max_generations`` more) is spent.

        ``evaluator_state`` returns the evaluator's caches, stored in each
        checkpointed state.
        """
        state = GPState.from_dict(state.as_dict())  # a copy: the caller's state stays as it was
        ran = 0
        while state.generation < self.config.generations and not state.done:
            if max_generations is not None and ran >= max_generations:
                break
            self._generation(state, evaluator_state)
            ran += 1
        return state

    # -- one generation --------------------------------------------------------

    def _generation(
        self, state: GPState, evaluator_state: Callable[[], EvaluatorState] | None
    ) -> None:
        g = state.generation
        todo = [i for i, ind in enumerate(state.population) if ind.outcome is None]
        outcomes = self.evaluate([parse(state.population[i].expression) for i in todo])
        for i, outcome in zip(todo, outcomes, strict=True):
            state.population[i] = Individual(state.population[i].expression, outcome)
            self.listener(CandidateEvent(g, i, copy.deepcopy(outcome)))
        self._update_best(state, g)
        summary = self._summary(state, g, [o.verdict for o in outcomes])
        state.history.append(summary)
        if g + 1 >= self.config.generations:
            state.done = True
        else:
            rng = np.random.default_rng()
            rng.bit_generator.state = state.rng_state
            state.population = self._breed(rng, state.population)
            state.rng_state = dict(rng.bit_generator.state)
        state.generation = g + 1
        if evaluator_state is not None:
            state.evaluator_state = evaluator_state()
        self.listener(GenerationEvent(g, summary, state.best))
        self.checkpoint(state)

    def _update_best(self, state: GPState, generation: int) -> None:
        for ind in state.population:
            out = ind.outcome
            if out is None or out.fitness is None:
                continue
            best = state.best
            if best is None or fitness_key(out.fitness) < fitness_key(best.fitness):
                state.best = self.record(out, generation)

    @staticmethod
    def _summary(state: GPState, generation: int, verdicts: list[str]) -> GenerationSummary:
        best = state.best
        return GenerationSummary.of(
            generation,
            verdicts,
            [ind.fitness for ind in state.population if ind.outcome],
            best.fitness if best else None,
            best.label if best else None,
        )

    def _breed(self, rng: np.random.Generator, population: list[Individual]) -> list[Individual]:
        c = self.config
        fitnesses = [ind.fitness for ind in population]
        elites = [copy.deepcopy(population[i]) for i in sel_best(fitnesses, c.n_elites)]
        chosen = sel_tournament(rng, fitnesses, c.population_size - len(elites), c.tournament_size)
        parents = [parse(population[i].expression) for i in chosen]
        children = list(parents)
        changed = [False] * len(children)
        for i in range(1, len(children), 2):
            if float(rng.random()) < c.crossover_prob:
                a, b = cx_one_point(rng, children[i - 1], children[i])
                for j, new in ((i - 1, a), (i, b)):
                    if new != children[j] and new.height <= c.max_height:
                        children[j], changed[j] = new, True
        for i in range(len(children)):
            if float(rng.random()) < c.mutation_prob:
                new = mut_uniform(
                    rng, children[i], c.mutation_min_height, c.mutation_max_height, self.pset
                )
                if new != children[i] and new.height <= c.max_height:
                    children[i], changed[i] = new, True
        if c.keep_minimum > 0:
            self._keep_minimum(rng, population, chosen, parents, children, changed)
        offspring = []
        for i, child in enumerate(children):
            if changed[i]:
                fixed = repair(rng, child, self.pset)
                child = fixed if fixed.height <= c.max_height else parents[i]
                changed[i] = child != parents[i]
            if changed[i]:
                offspring.append(Individual(str(child)))
            else:
                offspring.append(copy.deepcopy(population[chosen[i]]))
        return elites + offspring

    def _keep_minimum(
        self,
        rng: np.random.Generator,
        population: list[Individual],
        chosen: list[int],
        parents: list[Tree],
        children: list[Tree],
        changed: list[bool],
    ) -> None:
        """With probability ``gp.keep_minimum`` per slot whose parent passed the screen,
        replace the child by a minimum-keeping combination of that parent and a second
        tournament winner among those that passed (see ``combine_keeping_minimum``)."""
        c = self.config
        passed = [i for i, ind in enumerate(population) if _passed(ind.outcome)]
        if not passed:
            return
        fitnesses = [population[i].fitness for i in passed]
        for slot, parent in enumerate(chosen):
            if float(rng.random()) >= c.keep_minimum or not _passed(population[parent].outcome):
                continue
            (other,) = sel_tournament(rng, fitnesses, 1, c.tournament_size)
            second = parse(population[passed[other]].expression)
            new = combine_keeping_minimum(rng, parents[slot], second, self.pset)
            if new is not None and new.height <= c.max_height:
                children[slot], changed[slot] = new, True
