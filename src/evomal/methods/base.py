"""One protocol for every search method: a function of a :class:`MethodRun`.

A method receives the task's search view (test split hidden), the model
name, the configuration, an executor, the run store (or none), a listener,
and, when resuming, its last checkpoint payload. It emits the shared
events (:mod:`evomal.events`), checkpoints plain data through the store, and
returns a :class:`SearchResult`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from torch import nn

from evomal.config import SearchConfig, to_dict
from evomal.events import (
    CandidateEvent,
    Event,
    GenerationEvent,
    GenerationSummary,
    Listener,
    Scored,
)
from evomal.execution.base import Executor
from evomal.execution.context import ContextSpec
from evomal.losses.document import LossDocument, OnlineSettings, TrainingRecord, advice_of
from evomal.losses.io import loss_from_dict
from evomal.losses.learned import task_loss_name, task_loss_tree
from evomal.methods.selection import Candidate
from evomal.records import FinalistRecord
from evomal.runs.hall_of_fame import FameEntry, hall_of_fame
from evomal.runs.store import RunStore
from evomal.runs.train_cache import TrainingCache
from evomal.symbolic.transforms import TaskKind
from evomal.tasks.models.source import ModelRef
from evomal.tasks.task import Task


class ResultSummary(TypedDict):
    """A search result as plain data (``result.json``)."""

    method: str
    best_expression: str | None
    best_loss: LossDocument | None
    task_loss: bool
    baseline: str | None
    equals: str | None
    learned: bool
    training: TrainingRecord | None
    best_fitness: float | None
    message: str
    verdicts: dict[str, int]
    generations: int
    selection: list[FinalistRecord] | None


class CacheContext(TypedDict):
    """What, besides a job, decides a selection-schedule training run: with the job, the key
    of a run's cache. The task, its scenario and the configuration sections are plain data
    the cache only hashes."""

    task: Mapping[str, object]
    model: str
    model_options: Mapping[str, object]
    meta_test: Mapping[str, object]
    device: str
    threads: int | None


@dataclass(kw_only=True)
class SearchResult:
    """The outcome of a search.

    ``best`` is the loss the search hands back: after the selection stage,
    the finalist with the best validation metric under full training
    (``selection`` lists every finalist); without it, the candidate with the
    best search fitness. It is the task loss itself (``task_loss`` true, and
    ``message`` says why) when no learned loss beat it on validation or when
    no candidate passed the filters: a rejected loss is never returned.
    ``best_fitness`` is the search's best short-horizon fitness, a search
    signal rather than a result. ``candidates`` are the method's scored
    losses, best first, from which the finalists are drawn.
    """

    method: str
    best: nn.Module | None
    best_fitness: float | None
    #: the search's own best candidate (before selection), as every method records it
    best_record: Scored | None = None
    history: list[GenerationSummary] = field(default_factory=list)
    run_dir: Path | None = None
    message: str = ""
    verdicts: dict[str, int] = field(default_factory=dict)
    finished: bool = True
    task_loss: bool = False
    selection: list[FinalistRecord] | None = None
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    #: the baseline returned, named ("cross-entropy", "gce(q=0.7) at 3x lr"), when no learned
    #: loss beat the baselines; None when a learned loss was returned
    baseline: str | None = None
    #: a learned loss returned that equals a zoo member up to a positive scale: its name
    equals: str | None = None

    @property
    def learned(self) -> bool:
        """A loss the search learned: no baseline, and no known loss up to a positive scale."""
        return (
            self.best is not None
            and self.baseline is None
            and self.equals is None
            and (not self.task_loss)
        )

    def top(self, k: int = 10) -> list[FameEntry]:
        """The run's ``k`` best distinct losses (its hall of fame), read from its run directory.

        Each entry has the search fitness, the tree size as complexity, the
        simplified formula and, for finalists, the validation metric of the
        selection stage. Needs a run directory (``search(..., out=...)``).
        """
        if self.run_dir is None:
            raise ValueError("top() reads the run directory; search with out=DIR to keep one")
        return hall_of_fame(self.run_dir, k)

    def summary(self) -> ResultSummary:
        best_doc = self.best.to_dict() if self.best is not None else None  # type: ignore[operator]
        return {
            "method": self.method,
            "best_expression": getattr(self.best, "expression", None),
            "best_loss": best_doc,
            "task_loss": self.task_loss,
            "baseline": self.baseline,
            "equals": self.equals,
            "learned": self.learned,
            "training": _advice_record(self.best),
            "best_fitness": self.best_fitness,
            "message": self.message,
            "verdicts": self.verdicts,
            "generations": len(self.history),
            "selection": self.selection,
        }


def _advice_record(loss: Any) -> TrainingRecord | None:
    advice = advice_of(loss)
    return None if advice is None else advice.as_dict()


@dataclass(kw_only=True)
class MethodRun:
    """Everything a method needs for one run, and what it hands back through.

    A method reads its saved state with :meth:`saved`, announces what happens
    with :meth:`emit` (which counts the verdicts and keeps ``best_loss.json``
    current), stores its state with :meth:`checkpoint` after the events that
    state covers, and builds its result with :meth:`result`.
    ``resume_from`` is the checkpoint payload read from the run directory:
    each method's state under its own key (``gp``, ``cma``, ``selection``...),
    which only that method reads back (:meth:`saved`), stating its type.
    """

    method: str
    task: Task
    model: ModelRef
    config: SearchConfig
    executor: Executor
    store: RunStore | None = None
    listener: Listener | None = None
    resume_from: Mapping[str, object] | None = None
    max_generations: int | None = None
    vmappable: bool = True  # False: the model cannot run under vmap, candidates go one by one
    cache: TrainingCache | None = None  # training runs shared within an experiment
    _payload: dict[str, object] = field(default_factory=dict, init=False, repr=False)
    _verdicts: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _saved_best: Scored | None = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._payload = dict(self.resume_from or {})
        if self.store is not None and self.resume_from is not None:
            # events up to the checkpoint were emitted before the run stopped
            self._verdicts.update(e["verdict"] for e in self.store.read_events() if "verdict" in e)

    @property
    def kind(self) -> TaskKind:
        return self.task.kind

    @property
    def verdicts(self) -> dict[str, int]:
        """How many candidates got each verdict, over every candidate event of the run."""
        return dict(self._verdicts)

    def saved(self, key: str) -> Any:
        """The state last checkpointed under ``key`` (this run's or the resumed one's), or None.

        It is plain JSON in the form the method wrote it: the method, which alone knows that
        form, states its type where it reads it (``saved: CMAState | None = run.saved(key)``).
        """
        return self._payload.get(key)

    def checkpoint(self, key: str, state: Any) -> None:
        """Store ``state`` under ``key`` with the other keys' latest states, atomically, as
        covering every event emitted so far (a resumed run drops any later ones)."""
        self._payload = {**self._payload, key: state}
        if self.store is not None:
            self.store.checkpoint(self._payload)

    def emit(self, event: Event) -> None:
        """Pass an event to the store and the listener; count verdicts; keep
        ``best_loss.json`` current with each generation's best."""
        if isinstance(event, CandidateEvent):
            self._verdicts[event.outcome.verdict] += 1
        if self.store is not None:
            self.store(event)
        if self.listener is not None:
            self.listener(event)
        if (
            isinstance(event, GenerationEvent)
            and self.store is not None
            and event.best is not None
            and event.best != self._saved_best
        ):
            self._saved_best = event.best
            metadata = {
                "method": self.method,
                "fitness": event.best.fitness,
                "generation": event.best.generation,
                "task": self.task.name,
                "model": self.model.name,
            }
            self.store.save_best(loss_from_dict(event.best.document), metadata)

    def result(
        self,
        *,
        best: nn.Module | None,
        record: Scored | None,
        history: list[GenerationSummary],
        message: str,
        candidates: list[Candidate] | None = None,
        finished: bool = True,
        task_loss: bool = False,
        verdicts: dict[str, int] | None = None,
    ) -> SearchResult:
        """The method's result: ``best`` (the loss module) and ``record`` (its record), with
        this run's method, directory and verdict counts."""
        return SearchResult(
            method=self.method,
            best=best,
            best_fitness=None if record is None else record.fitness,
            best_record=record,
            history=history,
            run_dir=self.run_dir,
            message=message,
            verdicts=self.verdicts if verdicts is None else verdicts,
            finished=finished,
            task_loss=task_loss,
            candidates=candidates or [],
        )

    def start_executor(self) -> None:
        """Ship this run's context to the executor's workers (once per run)."""
        if not self._started:
            spec = ContextSpec(
                (self.task,), self.model, self.config, dict(self.config.model_options)
            )
            self.executor.start(spec)
            self._started = True

    @property
    def cache_context(self) -> CacheContext:
        """What, besides a job, decides a selection-schedule training run (the cache's key)."""
        from evomal.methods.meta_test import selection_threads

        config = self.config
        return {
            "task": {**self.task.summary(), "scenario": to_dict(self.task.scenario),
                     "val_seed": self.task.info.get("val_seed")},
            "model": self.model.record,
            "model_options": dict(config.model_options),
            "meta_test": to_dict(config.meta_test),
            "device": config.execution.device,
            "threads": selection_threads(config),
        }  # fmt: skip

    @property
    def batch_size(self) -> int:
        """Candidates per population batch: the configured value, or the automatic choice."""
        if not self.vmappable:
            return 1
        configured = self.config.execution.batch_candidates
        if configured > 0:
            return configured
        return auto_batch_size(self.model, self.config, self.task.input_shape)

    def finish(self, result: SearchResult) -> SearchResult:
        """Select the final loss (unless turned off), save it and the result; return it.

        A finished search goes through the selection stage
        (:mod:`evomal.methods.selection`) when ``selection.k > 0`` and the
        method learned something (every method but the baseline). Without
        it, a search that found no loss returns the task loss.
        """
        if not result.finished:
            return result
        from evomal.methods.registry import method_spec

        spec = method_spec(self.method)
        if spec.selects and self.config.selection.k > 0:
            self._select(result)
        elif result.best is None:
            result.best, result.task_loss = task_loss_tree(self.kind), True
            result.message += f"; returning the task loss {result.best.expression}"
        elif spec.online is not None:  # no selection to choose the meta lr: the grid's middle
            online = self.config.online
            meta_lr = sorted(online.meta_lrs)[len(online.meta_lrs) // 2]
            result.best = result.best.adapting(  # type: ignore[operator]
                OnlineSettings(spec.online, meta_lr, online.snapshot_every, online.batch)
            )
            result.message += f"; it adapts online at meta lr {meta_lr:g} (no selection)"
        if self.store is not None:
            metadata = {
                "method": self.method,
                "task": self.task.name,
                "model": self.model.name,
                "task_loss": result.task_loss,
                "baseline": result.baseline,
                "search_fitness": result.best_fitness,
            }
            if result.best is not None:
                self.store.save_best(result.best, metadata)
            if result.selection:
                self.store.save_selection(result.selection)
            self.store.save_result(result.summary())
        return result

    def _select(self, result: SearchResult) -> None:
        from evomal.methods.selection import run_selection

        outcome = run_selection(self, result.candidates)
        found_none = result.best is None
        apply_outcome(result, outcome, self.kind)
        message = outcome.message(task_loss_name(self.kind))
        result.message = f"{result.message}; {message}" if found_none else message

    @property
    def run_dir(self) -> Path | None:
        return self.store.root if self.store is not None else None


Method = Callable[[MethodRun], SearchResult]


def apply_outcome(result: SearchResult, outcome: Any, kind: str) -> None:
    """Put a selection's winner into ``result``: the loss, its flags and the finalists.

    The plain task loss is returned as its tree (the loss file users read); at
    another lr or with early stopping, as the zoo loss carrying that advice.
    """
    result.best = outcome.best_loss()
    if result.best == "task":
        result.best = task_loss_tree(kind)
    result.task_loss = outcome.task_loss_won
    chosen = outcome.chosen
    result.baseline = None
    result.equals = chosen.equals
    if outcome.baseline_won:
        name = task_loss_name(kind) if chosen.is_task_loss else chosen.label
        result.baseline = (
            name if chosen.lr_factor == 1.0 else f"{name} at {chosen.lr_factor:.3g}x lr"
        )
    result.selection = outcome.records


#: Candidates per population batch when batching is on.
AUTO_BATCH_SIZE = 8


def auto_batch_size(
    model: ModelRef, config: SearchConfig, input_shape: tuple[int, ...] = ()
) -> int:
    """Batch where it is faster: dense models on a CPU; small models on a GPU.

    A user's model counts as an image model when its inputs have 2 or more
    dimensions (it most likely convolves them), and as small when it is not one.

    * CPU: vmapped dense layers save dispatches, while vmapped convolutions
      cost more than they save, so dense models are batched and image models
      are not.
    * GPU: a step of a small model (the dense ones and LeNet-5) is bound by
      kernel launches, which one batched kernel serves for all K models, while
      a deep convolutional net's step is bound by arithmetic from K = 1, so
      batching it would bring little and multiply its activation memory by K.

    The measurements (and the GPU prediction) are in docs/decisions.md.
    """
    spec = model.registered
    image = spec.image if spec is not None else len(input_shape) >= 2
    if config.execution.device.startswith("cuda"):
        small = spec.small if spec is not None else not image
        return AUTO_BATCH_SIZE if small else 1
    return 1 if image else AUTO_BATCH_SIZE
