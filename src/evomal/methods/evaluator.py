"""Scores a batch of candidate trees: filters -> local search -> fitness.

The evaluator is the only stateful part of candidate scoring, and its state
is plain data (checkpointed with the run):

* the equivalence cache: equivalence key -> outcome (including rejections);
* the gradient-equivalence cache: gradient signature -> fitness;
* with ``fitness.prune_at`` on, the best validation metric seen at the prune
  step by a fully trained candidate (the successive-halving reference).

A batch is scored in stages so that results never depend on which worker
finished first:

A. (parallel, one chunk per worker) every new, distinct candidate is
   compiled, given its initial phi and checked for finiteness; with
   ``filters.screening`` ``before`` or ``both`` the rejection protocol runs
   here, stacked over the chunk;
L. (parallel, population-batched) the local search of the survivors;
S. (parallel, one chunk per worker) the rejection protocol with the tuned
   phi (``after``, the paper's order, or ``both``) and the gradient
   signatures;
B. (in candidate order, here) gradient-equivalence look-ups against all
   earlier candidates, this batch's included;
C. (parallel) partial-training fitness of the candidates still unresolved.
   With ``prune_step`` set, a candidate above ``prune_factor`` times the
   reference at the prune step stops there. The threshold is fixed for the
   whole batch from earlier batches, so it never depends on worker order.
   With ``prune_before_search``, stage R (between A and L) first trains every
   survivor to the prune step with its untuned weights, and one already above
   the threshold there skips its local search and the rest.

Duplicates within a batch and reuses of earlier results are resolved after
C, in candidate order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from evomal.config import FilterConfig, SearchConfig
from evomal.events import (
    CACHED,
    EVALUATED,
    FAILED,
    GRADIENT_EQUIVALENT,
    INVARIANT,
    REJECTED,
    Outcome,
)
from evomal.execution.base import Executor, map_batched, split_evenly
from evomal.gp.filters import rejection_reason
from evomal.gp.loop import EvaluatorState
from evomal.losses.document import LossDocument
from evomal.losses.learned import LearnedLoss
from evomal.methods.stages import (
    FitnessJob,
    FitnessOutcome,
    ScreenJob,
    ScreenOutcome,
    SearchJob,
    SearchOutcome,
    fitness,
    fitness_batch,
    optimise,
    optimise_batch,
    screen,
)
from evomal.symbolic.equivalence import equivalence_key
from evomal.symbolic.transforms import OutputActivation, TaskKind
from evomal.symbolic.tree import Tree


class CandidateEvaluator:
    """Applies the filters, the local search and fitness to batches of trees."""

    def __init__(
        self,
        filters: FilterConfig,
        kind: TaskKind,
        executor: Executor,
        output_activation: OutputActivation = "identity",
        batch_size: int = 1,
        search_weights: bool = True,
        prune_factor: float = 2.0,
        prune_step: int | None = None,
        prune_before_search: bool = False,
        n_classes: int = 0,
    ) -> None:
        self.filters = filters
        self.n_classes = n_classes
        self.search_weights = search_weights
        self.domain = kind
        self.batch_size = batch_size
        self.output_activation = output_activation
        self.executor = executor
        self.equivalence_cache: dict[str, Outcome] = {}
        self.gradient_cache: dict[str, float | None] = {}
        self.prune_factor = prune_factor
        self.prune_step = prune_step
        self.prune_before_search = prune_before_search
        self.best_rung: float | None = None

    @classmethod
    def from_config(
        cls,
        config: SearchConfig,
        kind: TaskKind,
        executor: Executor,
        batch_size: int = 1,
        n_classes: int = 0,
    ) -> CandidateEvaluator:
        """The evaluator a search with ``config`` uses (filters, local search, pruning)."""
        fit = config.fitness
        return cls(
            config.filters,
            kind,
            executor,
            config.gp.output_activation,
            batch_size=batch_size,
            search_weights=config.local_search.enabled and config.local_search.steps > 0,
            prune_factor=fit.prune_factor,
            prune_step=fit.prune_step,
            prune_before_search=fit.prune_before_search,
            n_classes=n_classes,
        )

    def _keeps_invariant(self, out: Outcome) -> bool:
        """Record both invariant conditions; with ``filters.invariant``, drop a tree that
        fails the softmax-correct one (with the weights it starts from)."""
        if self.domain != "classification" or self.n_classes < 2:
            return True
        from evomal.losses.invariant import authors_invariant, softmax_condition

        loss = LearnedLoss(out.expression, out.phi, "classification", self.output_activation)
        out.invariant = {"authors": authors_invariant(loss, self.n_classes),
                         "softmax": softmax_condition(loss, self.n_classes)}  # fmt: skip
        if self.filters.invariant and not out.invariant["softmax"]:
            out.verdict = INVARIANT
            out.reason = "fails the softmax-correct invariant: g1 >= g0 at p = 1/n"
            return False
        return True

    # -- state ---------------------------------------------------------------

    def state_dict(self) -> EvaluatorState:
        return {
            "equivalence_cache": {k: o.as_dict() for k, o in self.equivalence_cache.items()},
            "gradient_cache": dict(self.gradient_cache),
            "best_rung": self.best_rung,
        }

    def load_state_dict(self, state: EvaluatorState) -> None:
        self.equivalence_cache = {
            k: Outcome.from_dict(v) for k, v in state["equivalence_cache"].items()
        }
        self.gradient_cache = dict(state["gradient_cache"])
        self.best_rung = state.get("best_rung")  # absent in runs from before pruning

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

        filters = self.filters
        before = filters.rejection and filters.screening in ("before", "both")
        after = filters.rejection and filters.screening in ("after", "both")
        # Stage A: prepare every fresh candidate (and screen it first, if asked).
        prepared = self._screen([expressions[i] for i in fresh], None, None, before, False)
        alive: list[int] = []
        for i, result in zip(fresh, prepared, strict=True):
            out = Outcome(
                expression=expressions[i],
                key=keys[i],
                phi=result.phi,
                fitness=None,
                verdict=EVALUATED,
                score=result.score,
                late_rise=result.late_rise,
                seconds={"screen": result.seconds, "local_search": 0.0},
            )
            outcomes[i] = out
            if result.failed is not None:
                out.verdict, out.reason = FAILED, result.failed
            elif not self._passes(out) or not self._keeps_invariant(out):
                continue
            else:
                alive.append(i)
        # Stage R: the prune rung with the untuned weights, before the local search.
        if self.search_weights and alive and self.prune_before_search:
            alive = self._prune_untuned(outcomes, alive)
        # Stage L: the local search of the survivors.
        if self.search_weights and alive:
            searched: list[SearchOutcome] = map_batched(
                self.executor,
                optimise,
                optimise_batch,
                [SearchJob(expressions[i], tuple(self._out(outcomes, i).phi)) for i in alive],
                self.batch_size,
            )
            still = []
            for i, found in zip(alive, searched, strict=True):
                out = self._out(outcomes, i)
                out.phi, out.scale = found.phi, found.scale
                out.seconds["local_search"] = found.seconds
                if found.failed is not None:
                    out.verdict, out.reason = FAILED, found.failed
                else:
                    still.append(i)
            alive = still
        # Stage S: the screen with the tuned weights, and the gradient signatures.
        if alive and (after or filters.gradient_equivalence):
            final = self._screen(
                [expressions[i] for i in alive],
                [tuple(self._out(outcomes, i).phi) for i in alive],
                [self._out(outcomes, i).scale for i in alive],
                after,
                filters.gradient_equivalence,
            )
            still = []
            for i, result in zip(alive, final, strict=True):
                out = self._out(outcomes, i)
                out.seconds["screen"] += result.seconds
                out.signature = result.signature
                if after:
                    out.score, out.late_rise = result.score, result.late_rise
                if result.failed is not None:
                    out.verdict, out.reason = FAILED, result.failed
                elif not after or self._passes(out):
                    still.append(i)
            alive = still

        # Stage B: gradient equivalence, in candidate order.
        needs_fitness: list[int] = []
        pending_signature: dict[str, int] = {}
        waiting_on: dict[int, int] = {}
        for i in alive:
            out = self._out(outcomes, i)
            signature = out.signature
            if (
                filters.gradient_equivalence
                and signature is not None
                and (signature in self.gradient_cache or signature in pending_signature)
            ):
                out.verdict = GRADIENT_EQUIVALENT
                if signature in self.gradient_cache:
                    out.fitness = self.gradient_cache[signature]
                else:
                    waiting_on[i] = pending_signature[signature]
            else:
                needs_fitness.append(i)
                if filters.gradient_equivalence and signature is not None:
                    pending_signature[signature] = i

        # Stage C: partial training, in parallel.
        scored = self._fitness(outcomes, needs_fitness)
        for i, scored_one in zip(needs_fitness, scored, strict=True):
            out = self._out(outcomes, i)
            out.seconds["fitness"] = out.seconds.get("fitness", 0.0) + scored_one.seconds
            if scored_one.failed is not None:
                out.verdict, out.reason = FAILED, scored_one.failed
            else:
                out.fitness = scored_one.fitness
                out.pruned = scored_one.pruned
            if scored_one.rung is not None:
                best = self.best_rung
                self.best_rung = scored_one.rung if best is None else min(best, scored_one.rung)
        # Resolve gradient-equivalent candidates of this batch, then caches, then duplicates.
        for i, source_index in waiting_on.items():
            out, src = self._out(outcomes, i), self._out(outcomes, source_index)
            out.fitness, out.reused_from = src.fitness, src.expression
        for i in fresh:
            out = self._out(outcomes, i)
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

    def _prune_untuned(self, outcomes: list[Outcome | None], alive: list[int]) -> list[int]:
        """Train ``alive`` to the prune step with their initial weights; drop those behind.

        A dropped candidate keeps its initial phi, skips the local search and
        takes the rung's metric as its fitness (``pruned``).
        """
        if self.prune_step is None or math.isinf(self.prune_threshold()):
            return alive
        still = []
        for i, rung in zip(alive, self._fitness(outcomes, alive, self.prune_step), strict=True):
            out = self._out(outcomes, i)
            out.seconds["fitness"] = rung.seconds
            if rung.failed is not None:
                out.verdict, out.reason = FAILED, rung.failed
            elif rung.pruned:
                out.fitness, out.pruned = rung.fitness, True
            else:
                still.append(i)
        return still

    def _fitness(
        self, outcomes: list[Outcome | None], indices: list[int], steps: int | None = None
    ) -> list[FitnessOutcome]:
        """Partial training of ``indices`` to ``steps`` (default ``fitness.steps``), in parallel."""
        above = self.prune_threshold()
        jobs = [FitnessJob(self._document(outcomes[i]), above, steps) for i in indices]
        return map_batched(self.executor, fitness, fitness_batch, jobs, self.batch_size)

    def prune_threshold(self) -> float:
        """The validation metric at the prune step above which a candidate stops."""
        if self.prune_step is None or self.best_rung is None:
            return math.inf
        return self.prune_factor * self.best_rung

    def _screen(
        self,
        expressions: list[str],
        phis: list[tuple[float, ...]] | None,
        scales: list[float] | None,
        reject: bool,
        signatures: bool,
    ) -> list[ScreenOutcome]:
        """Screen candidates in one chunk per worker; outcomes in candidate order."""
        if not expressions:
            return []
        chunks = split_evenly(len(expressions), self.executor.workers)
        jobs = [
            ScreenJob(
                tuple(expressions[a:b]),
                None if phis is None else tuple(phis[a:b]),
                None if scales is None else tuple(scales[a:b]),
                reject,
                signatures,
            )
            for a, b in chunks
        ]
        return [outcome for chunk in self.executor.map(screen, jobs) for outcome in chunk]

    def _passes(self, out: Outcome) -> bool:
        """Apply the rejection verdict to ``out`` (which holds its score); True if it passes."""
        if out.score is None:
            return True
        f = self.filters
        reason = rejection_reason(
            out.score,
            out.late_rise or 0.0,
            f.rejection_threshold,
            f.reject_late_rise,
            f.late_rise_tolerance,
        )
        if reason is None:
            return True
        out.verdict, out.reason = REJECTED, reason
        return False

    @staticmethod
    def _out(outcomes: list[Outcome | None], i: int) -> Outcome:
        out = outcomes[i]
        assert out is not None
        return out

    def _document(self, outcome: Outcome | None) -> LossDocument:
        assert outcome is not None
        loss = LearnedLoss(
            outcome.expression,
            outcome.phi,
            self.domain,
            self.output_activation,
            scale=outcome.scale,
        )
        return loss.to_dict()

    @staticmethod
    def _reuse(source: Outcome, expression: str, key: str, verdict: str) -> Outcome:
        out = copy.deepcopy(source)
        out.expression, out.key, out.verdict = expression, key, verdict
        out.reason = f"same function as {source.expression} ({source.verdict})"
        out.reused_from = source.expression
        out.seconds = {}
        return out
