"""The search API: ``evomal.search(task, model, config) -> SearchResult``.

Wires the pieces together and nothing more: the GP loop (no I/O), the
candidate evaluator behind an executor, the run store and any progress
listener. A run directory makes the search resumable with :func:`resume`,
which continues from the last checkpoint to exactly the result an
uninterrupted run with the same seed reaches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evomal.execution.base import Executor, SerialExecutor
from evomal.gp.loop import CandidateEvent, GenerationEvent, GeneticProgramming, GPState
from evomal.losses.learned import LearnedLoss
from evomal.methods.context import ContextSpec
from evomal.methods.evaluator import REJECTED, CandidateEvaluator, Outcome
from evomal.runs.config import SearchConfig, build_config
from evomal.runs.store import RunStore
from evomal.tasks.task import Task

Listener = Callable[[CandidateEvent | GenerationEvent], None]
SEARCH_METHODS = ("evomal", "gplfl")


@dataclass
class SearchResult:
    """The outcome of a search.

    ``best`` is the loss with the best fitness (``None`` when no candidate
    passed the filters; then ``fallback`` holds the rejected candidate with
    the best rejection score, if any was finite, and ``message`` says so).
    """

    best: LearnedLoss | None
    best_fitness: float | None
    best_outcome: dict[str, Any] | None
    history: list[dict[str, Any]]
    run_dir: Path | None
    message: str
    fallback: LearnedLoss | None = None
    verdicts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "best_expression": self.best.expression if self.best else None,
            "best_phi": self.best.phi.detach().tolist() if self.best else None,
            "best_fitness": self.best_fitness,
            "message": self.message,
            "verdicts": self.verdicts,
            "generations": len(self.history),
        }


def make_executor(config: SearchConfig) -> Executor:
    """The executor named by ``config.execution.executor``."""
    name = config.execution.executor
    if name == "serial":
        return SerialExecutor()
    if name == "process":
        from evomal.execution.process import ProcessExecutor

        return ProcessExecutor(config.execution.workers)
    from evomal.execution.ray_executor import RayExecutor

    return RayExecutor(config.execution.ray_address, config.execution.workers)


def loss_from_outcome(outcome: dict[str, Any], kind: str, output_activation: str) -> LearnedLoss:
    """The :class:`LearnedLoss` an outcome describes (the source tree for a cache hit)."""
    out = Outcome.from_dict({k: v for k, v in outcome.items() if k != "generation"})
    return LearnedLoss(out.loss_expression(), out.phi, kind, output_activation)


def search(
    task: Task,
    model: str = "mlp",
    config: SearchConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    listener: Listener | None = None,
    executor: Executor | None = None,
    spec: dict[str, Any] | None = None,
    max_generations: int | None = None,
) -> SearchResult:
    """Search for a loss for ``model`` on ``task``.

    The search sees only the task's training and validation splits.
    ``out`` makes a resumable run directory; ``listener`` receives every
    :class:`CandidateEvent` and :class:`GenerationEvent` (progress bars,
    loggers). ``spec`` records how to rebuild the task for ``evomal resume``
    (the CLI fills it in). ``max_generations`` stops early (for tests of
    resuming).
    """
    config = config or build_config("quick")
    if config.method not in SEARCH_METHODS:
        raise ValueError(
            f"unknown search method {config.method!r}; expected one of {SEARCH_METHODS}"
        )
    store = RunStore(out) if out is not None else None
    if store is not None:
        store.create(config, spec or {"task": task.name, "model": model})
    return _run(task, model, config, store, None, listener, executor, max_generations)


def resume(
    run_dir: str | os.PathLike[str],
    task: Task | None = None,
    *,
    listener: Listener | None = None,
    executor: Executor | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_generations: int | None = None,
) -> SearchResult:
    """Continue a stopped run from its last checkpoint.

    Without ``task``, the task is rebuilt from the name recorded in the run
    directory (built-in tasks only).
    """
    store = RunStore(run_dir)
    config = store.load_config()
    spec = store.load_spec()
    if task is None:
        from evomal.tasks.registry import get_task

        task = get_task(spec["task"], data_dir=data_dir or spec.get("data_dir"), seed=config.seed)
    state, _ = store.load_checkpoint()
    return _run(task, spec["model"], config, store, state, listener, executor, max_generations)


def _run(
    task: Task,
    model: str,
    config: SearchConfig,
    store: RunStore | None,
    state: GPState | None,
    listener: Listener | None,
    executor: Executor | None,
    max_generations: int | None,
) -> SearchResult:
    if config.method == "gplfl" and config.local_search.enabled:
        from evomal.runs.config import replace_config

        config = replace_config(config, local_search={"enabled": False})
    search_task = task.without_test()
    owns_executor = executor is None
    executor = executor or make_executor(config)
    kind, activation = task.kind, config.gp.output_activation
    listeners = [fn for fn in (store, listener) if fn is not None]
    last_best: list[Any] = [None]

    def on_event(event: CandidateEvent | GenerationEvent) -> None:
        for fn in listeners:
            fn(event)
        if isinstance(event, GenerationEvent) and store is not None:
            best = event.state.best
            if best is not None and best != last_best[0]:
                last_best[0] = best
                store.save_best(
                    loss_from_outcome(best, kind, activation),
                    {
                        "fitness": best["fitness"],
                        "generation": best["generation"],
                        "method": config.method,
                    },
                )

    try:
        executor.start(ContextSpec((search_task,), model, config, dict(config.model_options)))
        evaluator = CandidateEvaluator(config.filters, kind, executor)
        gp = GeneticProgramming(config.gp, evaluator.evaluate, on_event)
        if state is None:
            state = gp.initial_state(config.seed)
        else:
            evaluator.load_state_dict(state.evaluator_state)
            last_best[0] = state.best
        state = gp.run(state, evaluator.state_dict, max_generations=max_generations)
    finally:
        if owns_executor:
            executor.close()
    result = _result(state, kind, activation, store)
    if store is not None and state.done:
        store.save_result(result.summary())
    return result


def _result(state: GPState, kind: str, activation: str, store: RunStore | None) -> SearchResult:
    outcomes = [ind["outcome"] for ind in state.population if ind["outcome"]]
    verdicts: dict[str, int] = {}
    for summary in state.history:
        for verdict, count in summary["verdicts"].items():
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    run_dir = store.root if store is not None else None
    if state.best is not None:
        best = loss_from_outcome(state.best, kind, activation)
        message = (
            f"best fitness {state.best['fitness']:.4g} in generation "
            f"{state.best['generation']}: {best.expression}"
        )
        return SearchResult(
            best, state.best["fitness"], state.best, state.history, run_dir, message, None, verdicts
        )
    rejected = [
        o
        for o in outcomes
        if o["verdict"] == REJECTED
        and o.get("score") is not None
        and all(v is not None for v in o["phi"])
    ]
    fallback = None
    if rejected:
        top = max(rejected, key=lambda o: o["score"])
        fallback = loss_from_outcome(top, kind, activation)
    total = sum(verdicts.values())
    message = f"no candidate passed the filters ({total} scored: {verdicts}); " + (
        f"the best rejected loss was {fallback.expression}"
        if fallback
        else "none had a finite loss"
    )
    return SearchResult(None, None, None, state.history, run_dir, message, fallback, verdicts)
