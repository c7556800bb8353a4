"""CMA-ES over loss parameters with pycma, resumable by replay.

Used by TaylorGLO (the polynomial's centre and coefficients) and by GLO's
second stage (a tree's edge weights). Each generation asks pycma for
``population_size`` parameter vectors, scores them with the same partial
training as EvoMAL's fitness (through the executor), and tells pycma the
results. pycma draws its samples from a ``numpy.random.Generator`` seeded by
the run seed (its ``randn`` option), so nothing touches numpy's global state.

The checkpoint is the list of (solutions, fitnesses) per generation. Resuming
rebuilds the strategy from the seed and replays ``ask``/``tell`` with the
recorded fitnesses, which reconstructs its internal state exactly without
pickling it; a replayed ``ask`` that does not reproduce the recorded
solutions is an error rather than a silent divergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import cma
import numpy as np

from evomal.events import (
    EVALUATED,
    FAILED,
    INVARIANT,
    CandidateEvent,
    GenerationEvent,
    GenerationSummary,
    Outcome,
    Scored,
)
from evomal.execution.base import map_batched
from evomal.losses.document import LossDocument
from evomal.losses.io import loss_from_dict
from evomal.methods.base import MethodRun
from evomal.methods.selection import Candidate
from evomal.methods.stages import FitnessJob, FitnessOutcome, fitness, fitness_batch, stable_seed


class CMAGeneration(TypedDict):
    """One generation of the checkpoint: the solutions pycma asked for, and their fitnesses
    (``None``: failed) as scored, before any penalty."""

    x: list[list[float]]
    f: list[float | None]


class CMAState(TypedDict):
    """A CMA-ES checkpoint: every generation so far, replayed on resume."""

    generations: list[CMAGeneration]


@dataclass(kw_only=True)
class CMAResult:
    """What a CMA-ES search found: its best vector (and that vector's record), its
    generations, whether it ran to the end, and every vector it scored finitely."""

    best_x: list[float] | None
    best: Scored | None
    history: list[GenerationSummary]
    finished: bool
    scored: list[tuple[list[float], float]] = field(default_factory=list)

    @property
    def best_fitness(self) -> float | None:
        return None if self.best is None else self.best.fitness

    def candidates(
        self, document: Callable[[np.ndarray], LossDocument], label: Callable[[np.ndarray], str]
    ) -> list[Candidate]:
        """Every parameter vector scored with a finite fitness, as candidates, best first.

        Vectors equal to 6 significant digits share a key (they are the same loss).
        """
        found: dict[str, Candidate] = {}
        for x, value in sorted(self.scored, key=lambda pair: pair[1]):
            key = _key(x)
            if key not in found:
                vector = np.asarray(x)
                found[key] = Candidate(label(vector), document(vector), value, key)
        return list(found.values())


def make_strategy(
    x0: np.ndarray, sigma0: float, population_size: int, seed: int
) -> cma.CMAEvolutionStrategy:
    """A pycma strategy whose samples come from a generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)

    def randn(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    options = {
        "popsize": population_size,
        "randn": randn,
        "seed": float("nan"),
        "verbose": -9,
        "verb_disp": 0,
        "verb_log": 0,
        "verb_filenameprefix": "",
        "tolfun": 0,
        "tolx": 0,
        "tolfunhist": 0,
        "tolstagnation": 10**9,
        "tolflatfitness": 10**9,
    }
    return cma.CMAEvolutionStrategy(np.asarray(x0, dtype=float), sigma0, options)


def penalised(values: list[float | None], worst_seen: float) -> list[float]:
    """Failed candidates get a fitness worse than anything seen (CMA-ES needs numbers)."""
    penalty = worst_seen * 2 + 1.0 if math.isfinite(worst_seen) else 1e6
    return [v if v is not None and math.isfinite(v) else penalty for v in values]


def cma_search(
    run: MethodRun,
    *,
    x0: np.ndarray,
    sigma0: float,
    document: Callable[[np.ndarray], LossDocument],
    describe: Callable[[np.ndarray], str],
    payload_key: str = "cma",
    generation_offset: int = 0,
) -> CMAResult:
    """Minimise the validation metric of partial training over loss parameters."""
    cfg = run.config.cmaes
    run.start_executor()
    seed = stable_seed(run.config.seed, "cmaes", payload_key)
    es = make_strategy(x0, sigma0, cfg.population_size, seed)
    saved: CMAState | None = run.saved(payload_key)
    replay = saved["generations"] if saved else []
    record: list[CMAGeneration] = []
    history: list[GenerationSummary] = []
    best_x: list[float] | None = None
    best_f: float | None = None
    best: Scored | None = None
    scored_pairs: list[tuple[list[float], float]] = []
    worst = -math.inf
    ran = 0

    for g in range(cfg.generations):
        solutions = es.ask()
        if g < len(replay):
            past = replay[g]
            if not np.allclose(np.asarray(past["x"]), np.asarray(solutions), rtol=1e-9, atol=1e-12):
                raise RuntimeError(
                    f"CMA-ES replay diverged at generation {g}; the checkpoint does "
                    "not belong to this configuration"
                )
            values = past["f"]
            replayed = True
        else:
            if run.max_generations is not None and ran >= run.max_generations:
                return CMAResult(
                    best_x=best_x, best=best, history=history, finished=False, scored=scored_pairs
                )
            checks = [invariant_checks(run, document(x)) for x in solutions]
            train = [
                i for i, c in enumerate(checks) if not violates(run, document(solutions[i]), c)
            ]
            trained: list[FitnessOutcome] = map_batched(
                run.executor,
                fitness,
                fitness_batch,
                [FitnessJob(document(solutions[i])) for i in train],
                run.batch_size,
            )
            scored = [SKIPPED] * len(solutions)
            for i, result in zip(train, trained, strict=True):
                scored[i] = result
            values = [s.fitness for s in scored]
            replayed = False
            ran += 1
        finite = [v for v in values if v is not None and math.isfinite(v)]
        worst = max([worst, *finite]) if finite else worst
        es.tell(solutions, penalised(values, worst))
        record.append({"x": [list(map(float, x)) for x in solutions], "f": values})
        for i, (x, value) in enumerate(zip(solutions, values, strict=True)):
            verdict = EVALUATED if value is not None else FAILED
            if not replayed and scored[i] is SKIPPED:
                verdict = INVARIANT
            if value is not None and math.isfinite(value):
                scored_pairs.append(([float(v) for v in x], value))
            if value is not None and (best_f is None or value < best_f):
                best_x, best_f = [float(v) for v in x], value
                best = Scored(document=document(np.asarray(best_x)), fitness=value,
                              generation=generation_offset + g, label=describe(np.asarray(best_x)),
                              key=_key(best_x))  # fmt: skip
            if not replayed:
                reason = None if value is not None else scored[i].failed
                seconds = {} if scored[i] is SKIPPED else {"fitness": scored[i].seconds}
                outcome = Outcome(
                    expression=describe(x), key="", phi=[float(v) for v in x], fitness=value,
                    verdict=verdict, reason=reason, seconds=seconds, invariant=checks[i],
                )  # fmt: skip
                run.emit(CandidateEvent(generation_offset + g, i, outcome))
        summary = GenerationSummary.of(
            generation_offset + g,
            [EVALUATED if v is not None and math.isfinite(v) else FAILED for v in values],
            values,
            best_f,
            describe(np.asarray(best_x)) if best_x is not None else None,
            sigma=float(es.sigma),
        )
        history.append(summary)
        if not replayed:
            run.emit(GenerationEvent(generation_offset + g, summary, best))
            run.checkpoint(payload_key, CMAState(generations=list(record)))
    return CMAResult(best_x=best_x, best=best, history=history, finished=True, scored=scored_pairs)


def _key(x: Sequence[float]) -> str:
    """Vectors equal to 6 significant digits are the same loss."""
    return "cma:" + ",".join(f"{v:.6g}" for v in x)


#: The outcome of a candidate the invariant filter skipped: never trained, the worst fitness.
SKIPPED = FitnessOutcome(None, "fails TaylorGLO's invariant (filters.invariant): not trained")


def invariant_checks(run: MethodRun, document: LossDocument) -> dict[str, bool] | None:
    """Both invariant conditions for a classification candidate (None for regression)."""
    if run.kind != "classification":
        return None
    from evomal.losses.invariant import authors_invariant, softmax_condition

    loss = loss_from_dict(document)
    n = run.task.n_classes
    return {"authors": authors_invariant(loss, n), "softmax": softmax_condition(loss, n)}


def violates(run: MethodRun, document: LossDocument, checks: dict[str, bool] | None) -> bool:
    """With ``filters.invariant``: a Taylor loss failing the authors' check (as TaylorGLO
    does), any other loss failing the softmax-correct one."""
    if not run.config.filters.invariant or checks is None:
        return False
    return not checks["authors" if document.get("kind") == "taylor" else "softmax"]
