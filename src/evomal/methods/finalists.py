"""Finalists: the losses the final selection trains for the full schedule, and their runs.

A finalist is a loss document and a role: the task loss, a tuned baseline
(a zoo family's winner) or a learned candidate. Each trains from every
selection seed at every learning-rate factor (``selection.lr_factors``), one
:class:`FinalistJob` per (seed, factor), with meta-testing's own loop, so the
selection's run of seed ``s`` at factor ``f`` *is* the meta-test's training
run of that seed at that lr. A finalist is scored at its best factor.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from evomal.execution.base import batched_or_one_by_one
from evomal.execution.context import EvaluationContext
from evomal.losses.document import LossDocument
from evomal.losses.io import loss_from_dict
from evomal.methods.stages import describe_error
from evomal.records import FinalistRecord, FinalistRunRecord, SparseVector
from evomal.training.curves import downsample
from evomal.training.loop import TrainResult, evaluate_per_sample, train
from evomal.training.population import train_population

#: Validation-curve points per finalist run.
VAL_POINTS = 10

#: The roles a finalist can have. Baselines (the task loss and the tuned zoo) are what a
#: learned loss must beat.
TASK, BASELINE, LEARNED = "task", "baseline", "learned"


@dataclass(frozen=True)
class Candidate:
    """A method's candidate loss: its JSON document, search fitness and distinctness key."""

    label: str
    document: LossDocument
    fitness: float
    key: str


def top_distinct(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The ``k`` candidates with the best (lowest) fitness, one per key, best first."""
    if k <= 0:
        return []
    seen: set[str] = set()
    chosen: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: c.fitness):
        if candidate.key in seen or not math.isfinite(candidate.fitness):
            continue
        seen.add(candidate.key)
        chosen.append(candidate)
        if len(chosen) == k:
            break
    return chosen


@dataclass(frozen=True)
class FinalistJob:
    """Train one finalist from one seed: ``document`` is ``None`` for the task loss.

    ``lr_factor`` multiplies ``meta_test.optimizer.lr``; ``early_stopping``
    (steps between validation scores) overrides ``meta_test.early_stopping``.
    """

    document: LossDocument | None
    seed: int
    steps: int
    lr_factor: float = 1.0
    early_stopping: int | None = None


@dataclass
class FinalistRun:
    """What one finalist's training from one seed at one lr factor gave.

    ``val_samples`` is each validation sample's contribution to the metric (error
    indicator, weighted under the balanced error, or squared error; its mean is
    ``val_metric``) when the context trains one task; it is ``None`` for multi-task
    contexts and for records written before it existed.
    """

    seed: int
    val_metric: float | None
    failed: str | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    val_samples: list[float] | None = None
    lr_factor: float = 1.0
    best_step: int | None = None

    def as_dict(self) -> FinalistRunRecord:
        return {
            "seed": self.seed,
            "lr_factor": self.lr_factor,
            "val_metric": self.val_metric,
            "failed": self.failed,
            "loss_curve": [list(p) for p in self.loss_curve],
            "val_curve": [list(p) for p in self.val_curve],
            "seconds": round(self.seconds, 3),
            "val_samples": _sparse(self.val_samples),
            "best_step": self.best_step,
        }

    @classmethod
    def from_dict(cls, record: FinalistRunRecord) -> FinalistRun:
        return cls(
            record["seed"],
            record["val_metric"],
            record.get("failed"),
            _points(record.get("loss_curve", [])),
            _points(record.get("val_curve", [])),
            record.get("seconds", 0.0),
            _dense(record.get("val_samples")),
            float(record.get("lr_factor", 1.0)),
            record.get("best_step"),
        )


def _points(curve: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """A curve's ``[step, value]`` points as tuples (as :class:`FinalistRun` holds them)."""
    return [(int(step), value) for step, value in curve]


def _sparse(values: Sequence[float] | None) -> SparseVector | None:
    """A per-sample vector as its length and nonzero entries (an error-rate vector is mostly 0)."""
    if values is None:
        return None
    nonzero = [(i, v) for i, v in enumerate(values) if v != 0.0]
    return {"n": len(values), "index": [i for i, _ in nonzero], "value": [v for _, v in nonzero]}


def _dense(record: SparseVector | None) -> list[float] | None:
    """The inverse of :func:`_sparse`."""
    if record is None:
        return None
    values = [0.0] * int(record["n"])
    for i, v in zip(record["index"], record["value"], strict=True):
        values[int(i)] = float(v)
    return values


def val_every(steps: int) -> int:
    """Steps between the points of a finalist's validation curve."""
    return max(1, steps // VAL_POINTS)


def _run_of(
    job: FinalistJob,
    results: Sequence[TrainResult],
    seconds: float,
    val_samples: list[float] | None = None,
) -> FinalistRun:
    """Average one job's results over the context's training tasks."""
    bad = next((r for r in results if r.diverged or r.val_metric is None), None)
    if bad is not None:
        return FinalistRun(job.seed, None, f"diverged: {bad.reason}", seconds=seconds,
                           lr_factor=job.lr_factor)  # fmt: skip
    values = [r.val_metric for r in results if r.val_metric is not None]
    if not all(math.isfinite(v) for v in values):
        return FinalistRun(job.seed, None, "non-finite validation metric", seconds=seconds,
                           lr_factor=job.lr_factor)  # fmt: skip
    first = results[0]
    return FinalistRun(
        job.seed,
        sum(values) / len(values),
        None,
        downsample(first.loss_history),
        list(first.val_history),
        seconds,
        val_samples,
        job.lr_factor,
        first.best_step,
    )


def _schedule(ctx: EvaluationContext, job: FinalistJob) -> tuple[Any, int | None]:
    """The optimiser (lr times the job's factor) and early-stopping interval of a job."""
    config = ctx.config
    optimizer = config.meta_test.optimizer
    if job.lr_factor != 1.0:
        optimizer = replace(optimizer, lr=optimizer.lr * job.lr_factor)
    every = job.early_stopping if job.early_stopping is not None else config.meta_test.stop_every
    return optimizer, every


def train_finalist(ctx: EvaluationContext, job: FinalistJob) -> FinalistRun:
    """Stage: one finalist, one seed, one lr factor, the full schedule; validation metric."""
    start = time.perf_counter()
    config = ctx.config
    optimizer, every = _schedule(ctx, job)
    try:
        results = []
        for j, learner in enumerate(ctx.learners):
            loss: Any = "task" if job.document is None else loss_from_dict(job.document)
            model = learner.build(job.seed + j)
            results.append(
                train(
                    model,
                    loss,
                    learner.task,
                    job.steps,
                    optimizer,
                    batch_size=config.meta_test.batch_size,
                    seed=job.seed + j,
                    val_every=val_every(job.steps),
                    early_stopping=every,
                )
            )
        samples = None
        if len(ctx.learners) == 1 and not results[0].diverged:  # paired by sample (one task)
            samples = evaluate_per_sample(model, learner.task.val, learner.task).tolist()
    except Exception as exc:  # a fault stays inside its finalist
        return FinalistRun(
            job.seed,
            None,
            describe_error(exc),
            seconds=time.perf_counter() - start,
            lr_factor=job.lr_factor,
        )
    return _run_of(job, results, time.perf_counter() - start, samples)


def train_finalists(ctx: EvaluationContext, jobs: list[FinalistJob]) -> list[FinalistRun]:
    """Stage: several finalists trained together, one population per (seed, steps, stopping).

    Same data order, initial weights and optimiser as :func:`train_finalist`
    (population batching shares the seed's batches; each member keeps its own
    lr factor), so each result equals that finalist trained alone up to float
    rounding. Falls back to one by one if the batched run raises. A loss that adapts
    online always trains alone.
    """
    groups: dict[tuple[int, int, int | None] | int, list[int]] = {}
    for i, job in enumerate(jobs):
        online = job.document is not None and "online" in job.document
        key = i if online else (job.seed, job.steps, _schedule(ctx, job)[1])
        groups.setdefault(key, []).append(i)
    config = ctx.config

    def together() -> list[FinalistRun]:
        start = time.perf_counter()
        runs: list[FinalistRun | None] = [None] * len(jobs)
        for members in groups.values():
            if len(members) == 1:
                runs[members[0]] = train_finalist(ctx, jobs[members[0]])
                continue
            first = jobs[members[0]]
            seed, steps, every = first.seed, first.steps, _schedule(ctx, first)[1]
            losses: list[Any] = [
                "task" if jobs[i].document is None else loss_from_dict(jobs[i].document)
                for i in members
            ]
            per_task = []
            for j, learner in enumerate(ctx.learners):
                per_task.append(
                    train_population(
                        [learner.build(seed + j) for _ in members],
                        losses,
                        learner.task,
                        steps,
                        config.meta_test.optimizer,
                        batch_size=config.meta_test.batch_size,
                        seed=seed + j,
                        val_every=val_every(steps),
                        val_samples=len(ctx.learners) == 1,
                        lr_factors=[jobs[i].lr_factor for i in members],
                        early_stopping=every,
                    )
                )
            share = (time.perf_counter() - start) / len(jobs)
            for n, i in enumerate(members):
                results = [task_results[n] for task_results in per_task]
                runs[i] = _run_of(jobs[i], results, share, results[0].val_samples)
        return [run for run in runs if run is not None]

    return batched_or_one_by_one(together, lambda job: train_finalist(ctx, job), jobs)


@dataclass
class Finalist:
    """A loss entering selection, and what its training runs gave, at every lr factor.

    The task loss carries its tree's document, but trains as plain
    ``F.cross_entropy`` / ``F.mse_loss`` (its job's document is ``None``).
    ``role`` is :data:`TASK`, :data:`BASELINE` (a tuned zoo family's winner:
    ``family`` names it) or :data:`LEARNED`; ``early_stopping`` is the
    finalist's own early-stopping interval (tuned cross-entropy with early
    stopping), else the config's applies.
    """

    label: str
    document: LossDocument
    fitness: float | None
    is_task_loss: bool = False
    runs: list[FinalistRun] = field(default_factory=list)
    role: str = LEARNED
    family: str | None = None
    early_stopping: int | None = None
    #: the known loss (a zoo member) a learned finalist equals up to a positive scale, if any
    equals: str | None = None

    def __post_init__(self) -> None:
        if self.is_task_loss:
            self.role = TASK

    @property
    def is_baseline(self) -> bool:
        return self.role != LEARNED

    @property
    def is_new(self) -> bool:
        """A learned finalist that is not a known loss up to a positive scale."""
        return self.role == LEARNED and self.equals is None

    @property
    def job_document(self) -> LossDocument | None:
        return None if self.is_task_loss else self.document

    def job(self, seed: int, steps: int, lr_factor: float) -> FinalistJob:
        return FinalistJob(self.job_document, seed, steps, lr_factor, self.early_stopping)

    @property
    def factors(self) -> list[float]:
        """The lr factors this finalist trained at, in increasing order."""
        return sorted({r.lr_factor for r in self.runs})

    def runs_at(self, factor: float) -> list[FinalistRun]:
        return [r for r in self.runs if r.lr_factor == factor]

    def mean_at(self, factor: float) -> float | None:
        """Mean validation metric over the seeds at ``factor``; ``None`` if any run failed."""
        runs = self.runs_at(factor)
        if not runs or any(r.val_metric is None for r in runs):
            return None
        return statistics.fmean(r.val_metric for r in runs if r.val_metric is not None)

    @property
    def lr_factor(self) -> float:
        """The factor the finalist scores best at; ties go to the factor nearest 1."""
        scored = [
            (m, abs(math.log(f)), f) for f in self.factors if (m := self.mean_at(f)) is not None
        ]
        if not scored:
            return 1.0 if 1.0 in self.factors or not self.factors else self.factors[0]
        return min(scored)[2]

    @property
    def chosen_runs(self) -> list[FinalistRun]:
        """The runs at the chosen factor (what selection compares)."""
        return self.runs_at(self.lr_factor)

    @property
    def val_metric(self) -> float | None:
        """Mean validation metric over the seeds at the chosen factor; ``None`` if none finished."""
        return self.mean_at(self.lr_factor)

    def describe(self) -> str:
        """The label with its chosen lr factor when that is not 1, and the known loss it equals."""
        factor = self.lr_factor
        text = self.label if factor == 1.0 else f"{self.label} at {factor:.3g}x lr"
        return text if self.equals is None else f"{text} (= {self.equals} up to scale)"

    def record(self, rank: int) -> FinalistRecord:
        """The finalist as plain data (``selection.json``, ``result.json``, checkpoints)."""
        return {
            "rank": rank,
            "label": self.label,
            "task_loss": self.is_task_loss,
            "role": self.role,
            "family": self.family,
            "early_stopping": self.early_stopping,
            "equals": self.equals,
            "search_fitness": self.fitness,
            "lr_factor": self.lr_factor,
            "val_metric": self.val_metric,
            "val_by_factor": {f"{f:.6g}": self.mean_at(f) for f in self.factors},
            "seeds": [r.as_dict() for r in self.runs],
            "document": self.document,
        }

    @classmethod
    def from_record(cls, record: FinalistRecord) -> Finalist:
        return cls(
            record["label"],
            record["document"],
            record["search_fitness"],
            record["task_loss"],
            [FinalistRun.from_dict(r) for r in record["seeds"]],
            record.get("role", TASK if record["task_loss"] else LEARNED),
            record.get("family"),
            record.get("early_stopping"),
            record.get("equals"),
        )
