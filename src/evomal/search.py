"""The search API: ``evomal.search(task, model, config) -> SearchResult``.

Picks the method named by ``config.method`` (``evomal``, ``gplfl``, ``glo``,
``taylorglo``, ``ml3`` or ``baseline``), wires it to an executor, the run
store and any listener, and nothing more. A run directory makes the search
resumable with :func:`resume`, which continues from the last checkpoint to
exactly the result an uninterrupted run with the same seed reaches.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evomal.config import Scenario, SearchConfig, build_config, replace_config, to_dict
from evomal.errors import ConfigError, ModelError
from evomal.events import GenerationSummary, Listener
from evomal.execution.base import Executor, SerialExecutor
from evomal.losses.io import load_loss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.registry import METHODS, method_spec
from evomal.runs.lock import ensure_free, run_lock
from evomal.runs.store import RunStore
from evomal.runs.train_cache import TrainingCache
from evomal.tasks.models.source import ModelLike, ModelRef, resolve_model
from evomal.tasks.task import Task
from evomal.training.device import resolve_device
from evomal.training.model_check import check_model

__all__ = ["METHODS", "SearchResult", "command_line_executor", "make_executor", "resume", "search"]


def command_line_config(
    preset: str, overrides: Sequence[str], *, seed: int, method: str, **execution: Any
) -> SearchConfig:
    """The config ``evomal search`` runs: the preset, the command's options (``execution``
    keys given as None are left to the preset) and ``--set``, with ``auto`` settled
    (:func:`command_line_executor`)."""
    extra: dict[str, Any] = {"seed": seed, "method": method}
    given = {key: value for key, value in execution.items() if value is not None}
    if given:
        extra["execution"] = given
    return command_line_executor(build_config(preset, overrides, extra))


def command_line_executor(config: SearchConfig, cores: int | None = None) -> SearchConfig:
    """``config`` with ``execution.executor: auto`` settled the way the command line runs it.

    ``auto`` (the ``quick`` preset's) means the process executor on a machine
    with more than one CPU core (on GPUs: one worker per GPU), else serial: the command
    line's entry point is safe for the workers to re-import, and its models
    are named, so the workers can rebuild them. Settling it here, before the
    run directory is written, makes ``config.json`` record what ran, so that
    a resume repeats it. From Python :func:`make_executor` runs ``auto`` serially.
    """
    execution = config.execution
    if execution.executor != "auto":
        return config
    cores = cores if cores is not None else os.cpu_count() or 1
    return replace_config(config, execution={"executor": "process" if cores > 1 else "serial"})


def make_executor(config: SearchConfig) -> Executor:
    """The executor named by ``config.execution.executor`` (``auto`` runs serially from Python)."""
    name = config.execution.executor
    if name in ("serial", "auto"):
        return SerialExecutor()
    if name == "process":
        from evomal.execution.process import ProcessExecutor

        return ProcessExecutor(config.execution.workers)
    from evomal.execution.ray_executor import RayExecutor

    return RayExecutor(config.execution.ray_address, config.execution.workers)


def search(
    task: Task,
    model: ModelLike = "mlp",
    config: SearchConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    listener: Listener | None = None,
    executor: Executor | None = None,
    spec: dict[str, Any] | None = None,
    max_generations: int | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> SearchResult:
    """Search for a loss for ``model`` on ``task`` with the method ``config.method``.

    ``model`` is a registered name, a builder ``builder(input_shape,
    n_outputs, seed) -> nn.Module`` (or its import path
    ``"package.module:function"``), or an ``nn.Module`` to re-initialise per
    seed. It is checked on the task before anything is written: it must work
    with ``torch.func.functional_call``; one that cannot run under ``vmap`` is
    evaluated one candidate at a time (with a warning).

    The search sees only the task's training and validation splits. ``out``
    makes a resumable run directory; ``listener`` receives every
    :class:`~evomal.events.CandidateEvent` and
    :class:`~evomal.events.GenerationEvent` (progress bars, loggers). ``spec``
    records how to rebuild the task for ``evomal resume`` (the CLI fills it
    in). ``max_generations`` stops early (as a kill would; used by tests).
    ``cache`` is a directory of training runs shared with other searches on
    the same task (an experiment's methods share the tuned baselines'
    runs); a run directory records it for ``resume``.

    A task's scenario (label noise, imbalance, metric: ``task.with_label_noise``,
    ...) is recorded in the config's ``data`` section, so that ``config.json``
    says what ran and ``resume`` rebuilds the same task.
    """
    config = config or build_config("quick")
    config = method_spec(config.method).configure(config)  # before config.json is written
    config = check_data_settings(task, config)
    _check_zoo(task, config)
    _check_device(config)
    ref = resolve_model(model)
    vmappable = _check_model(ref, task, config, executor)
    caches = _cache(cache)
    if out is None:
        return _run(task, ref, config, None, None, listener, executor, max_generations, vmappable,
                    caches)  # fmt: skip
    store = RunStore(out)
    with run_lock(store.root):  # one process per run directory
        run_spec = _run_spec(task, ref, spec)
        if cache is not None:
            run_spec["cache_dir"] = os.fspath(Path(cache).expanduser().resolve())
        store.create(config, run_spec, task.summary(), task.scenario_record)
        return _run(task, ref, config, store, None, listener, executor, max_generations, vmappable,
                    caches)  # fmt: skip


def _check_zoo(task: Task, config: SearchConfig) -> None:
    """Refuse unknown zoo families and bad grids before anything is written."""
    if config.method == "zoo" or config.selection.baselines == "zoo":
        from evomal.methods.zoo import family_grid, zoo_families

        for name in zoo_families(config, task):
            family_grid(config, name)
        unknown = sorted(set(config.zoo.grids) - set(zoo_families(config, task)))
        if unknown:
            raise ConfigError(
                f"zoo.grids names {unknown}, which zoo.families does not train; "
                f"it trains {zoo_families(config, task)}"
            )


def _cache(path: str | os.PathLike[str] | None) -> TrainingCache | None:
    return None if path is None else TrainingCache(Path(path).expanduser())


def resume(
    run_dir: str | os.PathLike[str],
    task: Task | None = None,
    *,
    model: ModelLike | None = None,
    listener: Listener | None = None,
    executor: Executor | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_generations: int | None = None,
) -> SearchResult:
    """Continue a stopped run from its last checkpoint (a finished run is just read back).

    Without ``task``, the task is rebuilt from the name recorded in the run
    directory (built-in tasks and data files). Without ``model``, the model
    is rebuilt from the name or import path recorded there; a model that has
    neither (an ``nn.Module`` instance, a lambda) must be passed again.
    """
    store = RunStore(run_dir)
    config = store.load_config()
    spec = store.load_spec()
    ensure_free(store.root)  # before rebuilding the task: a busy directory is refused at once
    finished = _finished_result(store, config)
    if finished is not None:
        return finished
    _check_device(config)
    if task is None:
        from evomal.runs.tasks import task_from_record

        task = task_from_record(spec, config, data_dir=data_dir)
    ref = resolve_model(model) if model is not None else _recorded_model(spec["model"])
    vmappable = _check_model(ref, task, config, executor)
    with run_lock(store.root):  # one process per run directory
        payload = store.load_checkpoint()
        return _run(
            task, ref, config, store, payload, listener, executor, max_generations, vmappable,
            _cache(spec.get("cache_dir")),
        )  # fmt: skip


def _run_spec(task: Task, model: ModelRef, spec: dict[str, Any] | None) -> dict[str, Any]:
    """What ``run.json`` records to rebuild the task and model (data file paths absolute)."""
    from evomal.runs.tasks import task_record

    given = {"task": task.name, **(spec or {})}
    record = task_record(
        given["task"], data_dir=given.get("data_dir"), target=given.get("target"),
        kind=given.get("kind"),
    )  # fmt: skip
    return {**given, **record, "model": model.record, "task_kind": task.kind}


def _recorded_model(recorded: str) -> ModelRef:
    try:
        return resolve_model(recorded)
    except ValueError as exc:
        raise ModelError(
            f"this run's model ({recorded}) cannot be rebuilt from the run directory ({exc}); "
            "pass it again: evomal.resume(run_dir, model=...)"
        ) from None


def check_data_settings(task: Task, config: SearchConfig) -> SearchConfig:
    """Refuse a config whose ``data`` settings the given task was not built with.

    ``data.val_fraction`` and ``data.augmentation`` act when evomal builds a
    task by name (:func:`evomal.runs.tasks.task_for`); a task built otherwise
    keeps its own split and augmentation, so a config asking for others
    would be silently ignored. The scenario is the same, except that a
    config with no scenario of its own takes the task's (returned), so that
    ``config.json`` records it.
    """
    config = _adopt_scenario(task, config)
    wanted = config.data
    fraction = task.info.get("val_fraction")
    if fraction is not None and abs(float(fraction) - wanted.val_fraction) > 1e-12:
        raise ConfigError(
            f"the config asks for data.val_fraction={wanted.val_fraction} but task "
            f"{task.name!r} was built with {fraction}; build the task with "
            f"evomal.runs.tasks.task_for(name, config) or set data.val_fraction={fraction}"
        )
    built = task.info.get("augmentation")
    if wanted.augmentation is not None and built != wanted.augmentation:
        raise ConfigError(
            f"the config asks for data.augmentation={wanted.augmentation!r} but task "
            f"{task.name!r} was built with {built!r}; build the task with "
            "evomal.runs.tasks.task_for(name, config)"
        )
    return config


def _adopt_scenario(task: Task, config: SearchConfig) -> SearchConfig:
    wanted, built = config.data.scenario, task.scenario
    if wanted == built:
        return config
    if wanted == Scenario():
        return replace_config(config, data=to_dict(built))

    def meaning(s: Scenario) -> tuple[Any, ...]:
        noise = (s.label_noise, s.noise_kind, s.noise_seed) if s.label_noise > 0 else (0.0,)
        return (*noise, s.imbalance, s.resolved_metric)

    if meaning(wanted) != meaning(built):
        raise ConfigError(
            f"the config's data scenario ({_scenario_text(wanted)}) is not the one task "
            f"{task.name!r} was built with ({_scenario_text(built)}); build the task with "
            "evomal.runs.tasks.task_for(name, config), or leave the config's data.* scenario "
            "keys unset"
        )
    return config


def _scenario_text(s: Scenario) -> str:
    return (
        f"label_noise={s.label_noise:g} {s.noise_kind} seed {s.noise_seed}, "
        f"imbalance={s.imbalance:g}, metric={s.resolved_metric}"
    )


def _check_device(config: SearchConfig) -> None:
    """Fail before anything is written when the device cannot be used on this machine.

    Ray workers may sit on other machines with other devices, so a Ray run is
    checked where its workers build their contexts instead.
    """
    if config.execution.executor != "ray":
        resolve_device(config.execution.device)


def _finished_result(store: RunStore, config: SearchConfig) -> SearchResult | None:
    summary = store.load_result()
    if summary is None:
        return None
    best = load_loss(store.best_loss_path) if store.best_loss_path.exists() else None
    history = [
        GenerationSummary.from_dict(json.loads(line))
        for line in store.generations_path.read_text().splitlines()
        if line
    ]
    return SearchResult(
        method=config.method,
        best=best,
        best_fitness=summary.get("best_fitness"),
        history=history,
        run_dir=store.root,
        message=summary.get("message", ""),
        verdicts=summary.get("verdicts", {}),
        task_loss=bool(summary.get("task_loss", False)),
        selection=summary.get("selection"),
        baseline=summary.get("baseline"),
        equals=summary.get("equals"),
    )


def _check_model(
    model: ModelRef, task: Task, config: SearchConfig, executor: Executor | None
) -> bool:
    """Refuse a model evomal cannot train or ship; ``False`` when it cannot be vmapped."""
    if executor is None:
        model.require_portable(config.execution.executor)
    elif not isinstance(executor, SerialExecutor):
        model.require_portable(type(executor).__name__)
    found = check_model(model, task, dict(config.model_options))
    if not found.vmappable:
        warnings.warn(
            f"model {model} cannot run under torch.func.vmap ({found.reason}); "
            "its candidates are evaluated one by one",
            stacklevel=3,
        )
    return found.vmappable


def _run(
    task: Task,
    model: ModelRef,
    config: SearchConfig,
    store: RunStore | None,
    payload: dict[str, Any] | None,
    listener: Listener | None,
    executor: Executor | None,
    max_generations: int | None,
    vmappable: bool = True,
    cache: TrainingCache | None = None,
) -> SearchResult:
    method = method_spec(config.method)
    config = method.configure(config)  # run directories written before the registry
    owns_executor = executor is None
    executor = executor or make_executor(config)
    run = MethodRun(
        method=config.method,
        task=task.without_test(),
        model=model,
        config=config,
        executor=executor,
        store=store,
        listener=listener,
        resume_from=payload,
        max_generations=max_generations,
        vmappable=vmappable,
        cache=cache,
    )
    try:
        return method.load()(run)
    finally:
        if owns_executor:
            executor.close()
