"""One protocol for every search method: a function of a :class:`MethodRun`.

A method receives the task's search view (test split hidden), the model
name, the configuration, an executor, the run store (or none), a listener,
and, when resuming, its last checkpoint payload. It emits the shared
events (:mod:`evomal.events`), checkpoints plain data through the store, and
returns a :class:`SearchResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from evomal.events import Event, GenerationEvent, Listener
from evomal.execution.base import Executor
from evomal.methods.context import ContextSpec
from evomal.runs.config import SearchConfig
from evomal.runs.store import RunStore
from evomal.tasks.task import Task


@dataclass
class SearchResult:
    """The outcome of a search.

    ``best`` is the loss with the best fitness (``None`` when no candidate
    passed the filters; then ``fallback`` holds the rejected candidate with
    the best rejection score, if any was finite, and ``message`` says so).
    """

    method: str
    best: nn.Module | None
    best_fitness: float | None
    best_outcome: dict[str, Any] | None
    history: list[dict[str, Any]]
    run_dir: Path | None
    message: str
    fallback: nn.Module | None = None
    verdicts: dict[str, int] = field(default_factory=dict)
    finished: bool = True

    def summary(self) -> dict[str, Any]:
        best_doc = self.best.to_dict() if self.best is not None else None  # type: ignore[operator]
        return {
            "method": self.method,
            "best_expression": getattr(self.best, "expression", None),
            "best_loss": best_doc,
            "best_fitness": self.best_fitness,
            "message": self.message,
            "verdicts": self.verdicts,
            "generations": len(self.history),
        }


@dataclass
class MethodRun:
    """Everything a method needs for one run."""

    method: str
    task: Task
    model: str
    config: SearchConfig
    executor: Executor
    store: RunStore | None = None
    listener: Listener | None = None
    resume_from: dict[str, Any] | None = None
    max_generations: int | None = None
    _last_best: Any = None
    _started: bool = False

    @property
    def kind(self) -> str:
        return self.task.kind

    def emit(
        self, event: Event, best_loss: Callable[[dict[str, Any]], nn.Module] | None = None
    ) -> None:
        """Pass an event to the store and the listener; keep ``best_loss.json`` current."""
        if self.store is not None:
            self.store(event)
        if self.listener is not None:
            self.listener(event)
        if (
            isinstance(event, GenerationEvent)
            and self.store is not None
            and best_loss is not None
            and event.best is not None
            and event.best != self._last_best
        ):
            self._last_best = event.best
            metadata = {
                "method": self.method,
                "fitness": event.best.get("fitness"),
                "generation": event.best.get("generation"),
                "task": self.task.name,
                "model": self.model,
            }
            self.store.save_best(best_loss(event.best), metadata)

    def start_executor(self) -> None:
        """Ship this run's context to the executor's workers (once per run)."""
        if not self._started:
            spec = ContextSpec(
                (self.task,), self.model, self.config, dict(self.config.model_options)
            )
            self.executor.start(spec)
            self._started = True

    @property
    def batch_size(self) -> int:
        """Candidates per population batch: the configured value, or the automatic choice."""
        configured = self.config.execution.batch_candidates
        if configured > 0:
            return configured
        return auto_batch_size(self.model, self.config)

    def finish(self, result: SearchResult) -> SearchResult:
        if self.store is not None and result.finished:
            self.store.save_result(result.summary())
        return result

    @property
    def run_dir(self) -> Path | None:
        return self.store.root if self.store is not None else None


Method = Callable[[MethodRun], SearchResult]

#: Candidates per population batch when batching is on.
AUTO_BATCH_SIZE = 8


def auto_batch_size(model: str, config: SearchConfig) -> int:
    """Batch where it is faster: on a GPU, and on a CPU for dense (non-image) models only.

    Measured on 2 CPU cores (``benchmarks/population.py``, docs/performance.md):
    8 MLPs at once are about 2x faster than one by one, while 8 LeNet-5s are
    about 10% slower (vmapped convolutions cost more on a CPU than they save).
    """
    if config.execution.device.startswith("cuda"):
        return AUTO_BATCH_SIZE
    from evomal.tasks.models import get_model_spec

    return 1 if get_model_spec(model).image else AUTO_BATCH_SIZE
