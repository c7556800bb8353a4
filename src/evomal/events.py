"""What a search announces: one event per scored candidate, one per generation, and one
per finalist of the selection stage.

Every method (GP, CMA-ES, ML3) emits the same events, so the run store,
progress bars and loggers listen to any of them the same way. Events carry
plain data only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: Verdicts recorded for each candidate.
EVALUATED = "evaluated"
CACHED = "cached"  # equivalence cache hit (same function seen before)
REJECTED = "rejected"  # rejection protocol
GRADIENT_EQUIVALENT = "gradient_equivalent"
FAILED = "failed"  # exception, non-finite loss, diverging training
INVARIANT = "invariant"  # violates the invariant filter (filters.invariant), never trained


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def loss_expression(self) -> str:
        """The tree that ``phi`` belongs to: the source's, for an equivalence-cache hit."""
        return self.reused_from if self.verdict == CACHED and self.reused_from else self.expression


@dataclass
class CandidateEvent:
    """One scored candidate."""

    generation: int
    index: int
    outcome: Outcome


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
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        generation: int,
        verdicts: Iterable[str],
        fitnesses: Iterable[float | None],
        best_so_far: float | None,
        best_expression: str | None = None,
        **extra: Any,
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
            extra=extra,
        )

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSummary:
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        known = {k: v for k, v in data.items() if k in names}
        known.setdefault("population_mean", None)
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


@dataclass(frozen=True, kw_only=True)
class Scored:
    """A candidate a method scored, as every method reports it: the loss file it is
    (``document``, read by :func:`evomal.losses.io.loss_from_dict`), its search
    fitness, the generation that scored it, a readable ``label`` and its ``key``.

    It is the best-so-far of a generation, the best of a GP state and of a
    search result, whatever the method (a tree, a Taylor polynomial, a network).
    """

    document: dict[str, Any]
    fitness: float | None
    generation: int
    label: str
    #: what makes two candidates the same loss (a tree's equivalence key), when known
    key: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scored:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


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
    records: list[dict[str, Any]]

    @property
    def record(self) -> dict[str, Any]:
        return self.records[self.index]


@dataclass
class GridEvent:
    """A chunk of the zoo's parameter grid was trained (``done`` of ``total`` runs);
    ``cells`` holds every grid cell scored so far."""

    done: int
    total: int
    cells: list[dict[str, Any]]


Event = CandidateEvent | GenerationEvent | FinalistEvent | GridEvent
Listener = Callable[[Event], None]
