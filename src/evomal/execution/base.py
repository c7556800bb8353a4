"""The one seam for parallelism: an executor maps a stage function over jobs.

The GP loop and the evaluator never know where candidates run. An executor
receives the run's :class:`~evomal.execution.context.ContextSpec` once
(``start``), builds or ships the context to its workers, and then maps
``fn(context, job)`` over lists of jobs, returning results in job order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from evomal.execution.context import ContextSpec, EvaluationContext

J = TypeVar("J")
R = TypeVar("R")

StageFn = Callable[[EvaluationContext, Any], Any]


class Executor(Protocol):
    """Maps stage functions over jobs in the context of one run."""

    def start(self, spec: ContextSpec) -> None:
        """Ship the run's context to the workers (once)."""

    def map(self, fn: StageFn, jobs: Sequence[Any]) -> list[Any]:
        """``[fn(context, job) for job in jobs]``, in job order, wherever it runs."""

    def close(self) -> None:
        """Release workers."""

    @property
    def workers(self) -> int:
        """How many jobs can run at the same time."""


def map_batched(
    executor: Executor,
    single: StageFn,
    batched: StageFn,
    jobs: Sequence[Any],
    batch_size: int,
) -> list[Any]:
    """Map ``single`` over jobs, or ``batched`` over chunks of up to ``batch_size`` jobs.

    Chunks are made no larger than needed to keep every worker busy, so
    batching never costs parallelism. Results come back in job order.
    """
    if batch_size <= 1 or len(jobs) <= 1:
        return executor.map(single, jobs)
    per_worker = -(-len(jobs) // max(1, executor.workers))
    size = max(1, min(batch_size, per_worker))
    if size == 1:
        return executor.map(single, jobs)
    chunks = [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]
    return [result for chunk in executor.map(batched, chunks) for result in chunk]


def batched_or_one_by_one(
    batched: Callable[[], list[R]], single: Callable[[J], R], jobs: Sequence[J]
) -> list[R]:
    """``batched()`` (the jobs computed together), or, if it raises, ``single`` on each job.

    Every population-batched stage falls back this way, so that a fault in
    one candidate stays with that candidate instead of failing the batch.
    """
    try:
        return batched()
    except Exception:
        return [single(job) for job in jobs]


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges that cover ``range(n)`` in at most ``parts`` near-equal chunks."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    ranges, start = [], 0
    for p in range(parts):
        stop = start + size + (1 if p < extra else 0)
        if stop > start:
            ranges.append((start, stop))
        start = stop
    return ranges


class SerialExecutor:
    """Runs every job in this process, one after another."""

    def __init__(self) -> None:
        self._context: EvaluationContext | None = None

    def start(self, spec: ContextSpec) -> None:
        self._context = EvaluationContext(spec)

    @property
    def context(self) -> EvaluationContext:
        if self._context is None:
            raise RuntimeError("executor not started: call start(spec) first")
        return self._context

    def map(self, fn: StageFn, jobs: Sequence[Any]) -> list[Any]:
        return [fn(self.context, job) for job in jobs]

    def close(self) -> None:
        self._context = None

    @property
    def workers(self) -> int:
        return 1
