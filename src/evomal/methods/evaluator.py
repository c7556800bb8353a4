"""Scores a batch of candidate trees: filters -> local search -> fitness.

The evaluator is the only stateful part of candidate scoring, and its state
is plain data (checkpointed with the run):

* the equivalence cache: equivalence key -> outcome (including rejections);
* the gradient-equivalence cache: gradient signature -> fitness.

A batch is scored in three stages so that results never depend on which
worker finished first:

A. (parallel) finiteness check, screening and local search of every new,
   distinct candidate;
B. (in candidate order, here) rejection verdicts and gradient-equivalence
   look-ups against all earlier candidates, this batch's included;
C. (parallel) partial-training fitness of the candidates still unresolved.

Duplicates within a batch and reuses of earlier results are resolved after
C, in candidate order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from evomal.events import (
    CACHED,
    EVALUATED,
    FAILED,
    GRADIENT_EQUIVALENT,
    REJECTED,
    Outcome,
)
from evomal.execution.base import Executor, map_batched
from evomal.losses.learned import LearnedLoss
from evomal.methods.stages import (
    FitnessJob,
    FitnessOutcome,
    ScreenJob,
    ScreenOutcome,
    fitness,
    fitness_batch,
    screen_and_optimise,
    screen_and_optimise_batch,
)
from evomal.runs.config import FilterConfig
from evomal.symbolic.equivalence import equivalence_key
from evomal.symbolic.tree import Tree


class CandidateEvaluator:
    """Applies the filters, the local search and fitness to batches of trees."""

    def __init__(
        self,
        filters: FilterConfig,
        kind: str,
        executor: Executor,
        output_activation: str = "identity",
        batch_size: int = 1,
    ) -> None:
        self.filters = filters
        self.domain = kind
        self.batch_size = batch_size
        self.output_activation = output_activation
        self.executor = executor
        self.equivalence_cache: dict[str, Outcome] = {}
        self.gradient_cache: dict[str, float | None] = {}

    # -- state ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "equivalence_cache": {k: o.as_dict() for k, o in self.equivalence_cache.items()},
            "gradient_cache": dict(self.gradient_cache),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.equivalence_cache = {
            k: Outcome.from_dict(v) for k, v in state["equivalence_cache"].items()
        }
        self.gradient_cache = dict(state["gradient_cache"])

    # -- scoring -------------------------------------------------------------

    def evaluate(self, trees: Sequence[Tree]) -> list[Outcome]:
        """Outcomes for ``trees``, in order. Never raises because of a candidate."""
        expressions = [str(t) for t in trees]
        keys = [equivalence_key(t, self.domain) for t in trees]
        outcomes: list[Outcome | None] = [None] * len(trees)
        first_of_key: dict[str, int] = {}
        fresh: list[int] = []
        for i, key in enumerate(keys):
            if self.filters.equivalence_cache and key in self.equivalence_cache:
                outcomes[i] = self._reuse(self.equivalence_cache[key], expressions[i], key, CACHED)
            elif self.filters.equivalence_cache and key in first_of_key:
                continue  # resolved after the first occurrence is scored
            else:
                first_of_key.setdefault(key, i)
                fresh.append(i)

        # Stage A: screening and local search, in parallel.
        screened: list[ScreenOutcome] = map_batched(
            self.executor,
            screen_and_optimise,
            screen_and_optimise_batch,
            [ScreenJob(expressions[i]) for i in fresh],
            self.batch_size,
        )
        # Stage B: verdicts and gradient equivalence, in candidate order.
        needs_fitness: list[int] = []
        pending_signature: dict[str, int] = {}
        waiting_on: dict[int, int] = {}
        for i, result in zip(fresh, screened, strict=True):
            base = Outcome(
                expressions[i],
                keys[i],
                result.phi,
                None,
                EVALUATED,
                score=result.score,
                signature=result.signature,
                seconds=dict(result.seconds),
            )
            if result.failed is not None:
                base.verdict, base.reason = FAILED, result.failed
            elif result.rejected:
                base.verdict = REJECTED
                base.reason = (
                    f"rejection score {result.score:.3g} below threshold "
                    f"{self.filters.rejection_threshold}"
                )
            elif (
                self.filters.gradient_equivalence
                and result.signature is not None
                and (
                    result.signature in self.gradient_cache or result.signature in pending_signature
                )
            ):
                base.verdict = GRADIENT_EQUIVALENT
                if result.signature in self.gradient_cache:
                    base.fitness = self.gradient_cache[result.signature]
                else:
                    waiting_on[i] = pending_signature[result.signature]
            else:
                needs_fitness.append(i)
                if self.filters.gradient_equivalence and result.signature is not None:
                    pending_signature[result.signature] = i
            outcomes[i] = base

        # Stage C: partial training, in parallel.
        scored: list[FitnessOutcome] = map_batched(
            self.executor,
            fitness,
            fitness_batch,
            [FitnessJob(self._document(outcomes[i])) for i in needs_fitness],
            self.batch_size,
        )
        for i, scored_one in zip(needs_fitness, scored, strict=True):
            out = outcomes[i]
            assert out is not None
            out.seconds["fitness"] = scored_one.seconds
            if scored_one.failed is not None:
                out.verdict, out.reason = FAILED, scored_one.failed
            else:
                out.fitness = scored_one.fitness
        # Resolve gradient-equivalent candidates of this batch, then caches, then duplicates.
        for i, source_index in waiting_on.items():
            out, src = outcomes[i], outcomes[source_index]
            assert out is not None and src is not None
            out.fitness, out.reused_from = src.fitness, src.expression
        for i in fresh:
            out = outcomes[i]
            assert out is not None
            if out.verdict == EVALUATED and out.signature is not None:
                self.gradient_cache.setdefault(out.signature, out.fitness)
            if self.filters.equivalence_cache:
                self.equivalence_cache.setdefault(out.key, copy.deepcopy(out))
        for i, key in enumerate(keys):
            if outcomes[i] is None:
                source = outcomes[first_of_key[key]]
                assert source is not None
                outcomes[i] = self._reuse(source, expressions[i], key, CACHED)
        return [o for o in outcomes if o is not None]

    def _document(self, outcome: Outcome | None) -> dict[str, Any]:
        assert outcome is not None
        loss = LearnedLoss(outcome.expression, outcome.phi, self.domain, self.output_activation)
        return loss.to_dict()

    @staticmethod
    def _reuse(source: Outcome, expression: str, key: str, verdict: str) -> Outcome:
        out = copy.deepcopy(source)
        out.expression, out.key, out.verdict = expression, key, verdict
        out.reason = f"same function as {source.expression} ({source.verdict})"
        out.reused_from = source.expression
        out.seconds = {}
        return out


def is_finite_fitness(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
