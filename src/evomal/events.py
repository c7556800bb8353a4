"""What a search announces: one event per scored candidate, one per generation, and one
per finalist of the selection stage.

Every method (GP, CMA-ES, ML3) emits the same events, so the run store,
progress bars and loggers listen to any of them the same way. Events carry
plain data only.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypedDict, cast

from evomal.records import FinalistRecord, GridCell, LossDocument

#: Verdicts recorded for each candidate.
EVALUATED = "evaluated"
CACHED = "cached"  # equivalence cache hit (same function seen before)
REJECTED = "rejected"  # rejection protocol
GRADIENT_EQUIVALENT = "gradient_equivalent"
FAILED = "failed"  # exception, non-finite loss, diverging training
INVARIANT = "invariant"  # violates the invariant filter (filters.invariant), never trained


def _known(cls: type, data: Mapping[str, object]) -> dict[str, object]:
    """The entries of ``data`` that are fields of dataclass ``cls``: a record read back may
    carry others (an event line's generation and index, a version-1 best's generation)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


class _OutcomeFields(TypedDict):
    expression: str
    key: str
    phi: list[float]
    fitness: float | None
    verdict: str


class OutcomeRecord(_OutcomeFields, total=False):
    """:class:`Outcome` as plain data (a line of ``events.jsonl`` without its generation and
    index, an entry of the evaluator's cache); :meth:`Outcome.as_dict` writes every key,
    records from before a field existed lack it."""

    reason: str | None
    score: float | None
    signature: str | None
    reused_from: str | None
    seconds: dict[str, float]
    late_rise: float | None
    scale: float
    pruned: bool
    invariant: dict[str, bool] | None


@dataclass(kw_only=True)
class Outcome:
    """Everything decided about one candidate loss.

    ``expression`` is the tree (or a readable form of a parametric loss),
    ``phi`` its weights or parameters, ``scale`` the factor the loss is
    multiplied by (scale normalisation), ``fitness`` the validation metric of
    partial training (``None`` is the worst). ``score`` and ``late_rise``
    are what the rejection protocol saw.
    """

    expression: str
    key: str
    phi: list[float]
    fitness: float | None
    verdict: str
    reason: str | None = None
    score: float | None = None
    signature: str | None = None
    reused_from: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    late_rise: float | None = None
    scale: float = 1.0
    #: fitness training stopped at the prune step (``fitness.prune_at``)
    pruned: bool = False
    #: classification: TaylorGLO's invariant as the authors wrote it, and the softmax-correct
    #: condition, for the weights the candidate started from (:mod:`evomal.losses.invariant`)
    invariant: dict[str, bool] | None = None

    def as_dict(self) -> OutcomeRecord:
        """Every field, in order, as plain data (containers copied)."""
        return {
            "expression": self.expression,
            "key": self.key,
            "phi": list(self.phi),
            "fitness": self.fitness,
            "verdict": self.verdict,
            "reason": self.reason,
            "score": self.score,
            "signature": self.signature,
            "reused_from": self.reused_from,
            "seconds": dict(self.seconds),
            "late_rise": self.late_rise,
            "scale": self.scale,
            "pruned": self.pruned,
            "invariant": None if self.invariant is None else dict(self.invariant),
        }

    @classmethod
    def from_dict(cls, data: OutcomeRecord) -> Outcome:
        """Read :meth:`as_dict`'s record (other keys ignored, missing ones at their default)."""
        return cls(**cast(OutcomeRecord, _known(cls, data)))

    def loss_expression(self) -> str:
        """The tree that ``phi`` belongs to: the source's, for an equivalence-cache hit."""
        return self.reused_from if self.verdict == CACHED and self.reused_from else self.expression


@dataclass
class CandidateEvent:
    """One scored candidate."""

    generation: int
    index: int
    outcome: Outcome


class GenerationExtra(TypedDict, total=False):
    """What a method adds to its generation summaries: CMA-ES its step size, ML3 its final
    meta-loss."""

    sigma: float
    final_meta_loss: float | None


class _GenerationFields(TypedDict):
    generation: int
    scored: int
    verdicts: dict[str, int]
    population_best: float | None
    best_so_far: float | None


class _SummaryFields(_GenerationFields, total=False):
    population_mean: float | None
    best_expression: str | None


class GenerationRecord(_SummaryFields, GenerationExtra):
    """:class:`GenerationSummary` as plain data (a line of ``generations.jsonl``): its fields
    and, at the top level, its method's extras. Early records lack ``population_mean``."""


@dataclass(frozen=True)
class GenerationSummary:
    """One generation in numbers: a line of ``generations.jsonl`` and of ``SearchResult.history``.

    Every method (GP, CMA-ES, ML3, the baseline) builds it with :meth:`of`,
    so the fields mean the same everywhere; ``extra`` holds what one method
    adds (CMA-ES's step size, ML3's final meta-loss).
    """

    generation: int
    scored: int
    verdicts: dict[str, int]
    population_best: float | None
    population_mean: float | None
    best_so_far: float | None
    best_expression: str | None = None
    extra: GenerationExtra = field(default_factory=GenerationExtra)

    @classmethod
    def of(
        cls,
        generation: int,
        verdicts: Iterable[str],
        fitnesses: Iterable[float | None],
        best_so_far: float | None,
        best_expression: str | None = None,
        **extra: float | None,
    ) -> GenerationSummary:
        """From the generation's verdicts and its population's fitnesses (``None``: failed)."""
        listed = list(verdicts)
        finite = [f for f in fitnesses if f is not None and math.isfinite(f)]
        return cls(
            generation=generation,
            scored=len(listed),
            verdicts=dict(Counter(listed)),
            population_best=min(finite) if finite else None,
            population_mean=sum(finite) / len(finite) if finite else None,
            best_so_far=best_so_far,
            best_expression=best_expression,
            extra=cast(GenerationExtra, extra),  # the method's keyword arguments
        )

    def as_dict(self) -> GenerationRecord:
        """The fields in order (containers copied), then the extras."""
        record: GenerationRecord = {
            "generation": self.generation,
            "scored": self.scored,
            "verdicts": dict(self.verdicts),
            "population_best": self.population_best,
            "population_mean": self.population_mean,
            "best_so_far": self.best_so_far,
            "best_expression": self.best_expression,
        }
        return {**record, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> GenerationSummary:
        """Read a :class:`GenerationRecord`: any key that is not a field is an extra (the
        method's, or one a record from another version has)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        known.setdefault("population_mean", None)
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**cast(_SummaryFields, known), extra=cast(GenerationExtra, extra))


class _ScoredFields(TypedDict):
    document: LossDocument
    fitness: float | None
    generation: int
    label: str


class ScoredRecord(_ScoredFields, total=False):
    """:class:`Scored` as plain data (a GP state's best); early records lack ``key``."""

    key: str


@dataclass(frozen=True, kw_only=True)
class Scored:
    """A candidate a method scored, as every method reports it: the loss file it is
    (``document``, read by :func:`evomal.losses.io.loss_from_dict`), its search
    fitness, the generation that scored it, a readable ``label`` and its ``key``.

    It is the best-so-far of a generation, the best of a GP state and of a
    search result, whatever the method (a tree, a Taylor polynomial, a network).
    """

    document: LossDocument
    fitness: float | None
    generation: int
    label: str
    #: what makes two candidates the same loss (a tree's equivalence key), when known
    key: str = ""

    def as_dict(self) -> ScoredRecord:
        """Every field, in order, as plain data (the document copied)."""
        return {
            "document": copy.deepcopy(self.document),
            "fitness": self.fitness,
            "generation": self.generation,
            "label": self.label,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, data: ScoredRecord) -> Scored:
        """Read :meth:`as_dict`'s record (other keys ignored)."""
        return cls(**cast(ScoredRecord, _known(cls, data)))


@dataclass
class GenerationEvent:
    """A finished generation: its summary and the best candidate so far."""

    generation: int
    summary: GenerationSummary
    best: Scored | None


@dataclass
class FinalistEvent:
    """Finalist ``index`` of the selection stage was trained and scored on validation.

    ``records`` holds every finalist scored so far in rank order, those trained
    in the same group as this one included, so that ``selection.json`` written
    from it agrees with the checkpoint taken after the group.
    """

    index: int
    total: int
    records: list[FinalistRecord]

    @property
    def record(self) -> FinalistRecord:
        return self.records[self.index]


@dataclass
class GridEvent:
    """A chunk of the zoo's parameter grid was trained (``done`` of ``total`` runs);
    ``cells`` holds every grid cell scored so far."""

    done: int
    total: int
    cells: list[GridCell]


Event = CandidateEvent | GenerationEvent | FinalistEvent | GridEvent
Listener = Callable[[Event], None]
