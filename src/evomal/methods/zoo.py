"""Tuned baselines: ``--method zoo``, and the zoo's finalists for ``selection.baselines=zoo``.

A gain counts only against the strongest tuned rival, so the zoo tunes every
known loss the way a careful reader would: each family of
:mod:`evomal.losses.zoo` over its parameter grid and over ``zoo.lr_factors``
multiples of the preset's learning rate, plus cross-entropy (MSE) with early
stopping (``ce_es`` / ``mse_es``). Every cell trains for the meta-testing
schedule on the training split from the selection's seeds and is scored on
validation; the test split is never read.

Two stages, so that float rounding never decides what is returned:

1. **The grid** (families with more than one parameter setting): every
   (parameter, factor, seed) cell, trained as populations where the model
   batches (:func:`~evomal.methods.finalists.train_finalists`, one lr per
   member). It is a search signal: it picks each family's parameter.
2. **The winners**: each family at its winning parameter (and each family
   without a parameter) is a baseline finalist, trained one by one at every
   factor like every finalist of the selection stage
   (:func:`~evomal.methods.selection.train_all`), and scored at its best factor.

``--method zoo`` returns the best of those finalists (the zoo's *pick*: the
lowest mean validation metric; ties go to the family's default parameter,
then to factor 1). With ``selection.baselines=zoo`` every other method's
selection takes the same finalists as its baselines. Within an experiment the
runs are shared through the run's cache, so the grid of a seed is trained once.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict

import torch

from evomal.config import SearchConfig
from evomal.errors import ConfigError
from evomal.events import GridEvent
from evomal.losses.document import LossDocument
from evomal.losses.learned import task_loss_name
from evomal.losses.zoo import FAMILIES, ZooLoss, check_params, default_families
from evomal.methods.base import MethodRun, SearchResult, apply_outcome
from evomal.methods.finalists import BASELINE, Finalist, FinalistJob, FinalistRun
from evomal.methods.selection import (
    SelectionOutcome,
    baseline_finalists,
    choose,
    run_jobs,
    train_all,
)
from evomal.records import GridCell
from evomal.tasks.task import Task

#: Zoo members that are the task loss trained with early stopping.
EARLY_STOPPED = {"ce_es": "ce", "mse_es": "mse"}

#: Population size of the grid's batched chunks (``benchmarks/zoo_batching.py``).
GRID_BATCH = 32


def zoo_families(config: SearchConfig, task: Task) -> list[str]:
    """The members ``zoo.families`` names for ``task`` (``auto``: every family of its kind)."""
    wanted = list(config.zoo.families)
    names: list[str] = []
    if "auto" in wanted:
        imbalanced = task.kind == "classification" and task.metric == "balanced_error"
        names = default_families(task.kind, imbalanced)
        names.append("ce_es" if task.kind == "classification" else "mse_es")
    for name in wanted:
        if name == "auto" or name in names:
            continue
        loss = EARLY_STOPPED.get(name, name)
        if loss not in FAMILIES:
            known = ", ".join([*FAMILIES, *EARLY_STOPPED])
            raise ConfigError(f"zoo.families: unknown family {name!r}; known: auto, {known}")
        if FAMILIES[loss].kind != task.kind:
            raise ConfigError(
                f"zoo.families: {name} is a {FAMILIES[loss].kind} loss but task "
                f"{task.name!r} is {task.kind}"
            )
        names.append(name)
    return names


def family_grid(config: SearchConfig, name: str) -> list[tuple[float, ...]]:
    """The parameter settings of family ``name``: ``zoo.grids[name]`` or the default grid."""
    family = FAMILIES[EARLY_STOPPED.get(name, name)]
    given = config.zoo.grids.get(name)
    if given is None:
        return list(family.grid) or [()]
    if not isinstance(given, (list, tuple)) or not given:
        raise ConfigError(f"zoo.grids.{name} must be a list of parameter settings, got {given!r}")
    settings = [tuple(v) if isinstance(v, (list, tuple)) else (v,) for v in given]
    return [check_params(family, [float(x) for x in s]) for s in settings]


def _document(task: Task, name: str, params: Sequence[float]) -> LossDocument:
    """A member's loss file, bound to the training split (class counts, square's k and M)."""
    loss = ZooLoss(EARLY_STOPPED.get(name, name), list(params) or None)
    if task.kind == "classification":
        counts = torch.bincount(task.train.y.cpu(), minlength=task.n_classes).tolist()
        loss = loss.bound(task.n_classes, counts)
    return loss.to_dict()


def _label(name: str, params: Sequence[float]) -> str:
    """A member's short name: ``gce(q=0.7)``, ``cross-entropy + early stopping``."""
    loss = ZooLoss(EARLY_STOPPED.get(name, name), list(params) or None)
    label = {"ce": "cross-entropy", "mse": "MSE"}.get(loss.name, loss.expression)
    return f"{label} + early stopping" if name in EARLY_STOPPED else label


def _seeds(config: SearchConfig) -> list[int]:
    return [config.seed + s for s in range(config.selection.seeds)]


def _mean(runs: Sequence[FinalistRun]) -> float | None:
    if not runs or any(r.val_metric is None for r in runs):
        return None
    return statistics.fmean(r.val_metric for r in runs if r.val_metric is not None)


class GridState(TypedDict):
    """The grid's checkpoint (key ``zoo_grid``): the cells scored so far, in grid order."""

    cells: list[GridCell]


def grid_cells(run: MethodRun, names: Sequence[str]) -> list[GridCell]:
    """Stage 1: every cell of the families with more than one setting, scored on validation.

    Returns one record per (family, params, factor): the mean validation metric
    over the seeds. The cells train in groups that keep every worker busy; the
    run checkpoints after each group (a resumed run trains only the rest) and
    reads its cache.
    """
    config, task = run.config, run.task
    saved: GridState | None = run.saved("zoo_grid")
    records = list(saved.get("cells", [])) if saved else []
    factors, seeds, steps = config.zoo.lr_factors, _seeds(config), config.selection_steps
    cells = [(name, params, factor) for name in names for params in family_grid(config, name)
             if len(family_grid(config, name)) > 1 for factor in factors]  # fmt: skip
    if len(records) >= len(cells):
        return records
    run.start_executor()
    batch = GRID_BATCH if config.zoo.batched and run.batch_size > 1 else 1
    per_group = max(1, run.executor.workers * batch // len(seeds))
    for start in range(len(records), len(cells), per_group):
        group = cells[start : start + per_group]
        jobs = [
            FinalistJob(_document(task, name, params), seed, steps, factor,
                        config.meta_test.early_stopping.every if name in EARLY_STOPPED else None)
            for name, params, factor in group for seed in seeds
        ]  # fmt: skip
        results = run_jobs(run, jobs, batch)
        for n, (name, params, factor) in enumerate(group):
            runs = results[n * len(seeds) : (n + 1) * len(seeds)]
            records.append({
                "family": name, "params": list(params), "lr_factor": factor,
                "val_metric": _mean(runs),
                "seeds": [{"seed": r.seed, "val_metric": r.val_metric, "failed": r.failed,
                           "seconds": round(r.seconds, 3)} for r in runs],
            })  # fmt: skip
        run.emit(GridEvent(len(records), len(cells), records))
        run.checkpoint("zoo_grid", GridState(cells=records))
    return records


def winning_params(name: str, cells: Sequence[GridCell], config: SearchConfig) -> tuple:
    """A family's parameter from its grid: the lowest mean validation over (params, factor).

    Ties go to the family's default parameter, then to factor 1. A family with
    one setting has nothing to choose.
    """
    grid = family_grid(config, name)
    if len(grid) == 1:
        return grid[0]
    default = FAMILIES[EARLY_STOPPED.get(name, name)].default
    mine = [c for c in cells if c["family"] == name]
    scored = [
        (c["val_metric"], tuple(c["params"]) != tuple(default), abs(math.log(c["lr_factor"])),
         tuple(c["params"]))
        for c in mine if c["val_metric"] is not None
    ]  # fmt: skip
    return min(scored)[3] if scored else tuple(default)


def zoo_baselines(run: MethodRun) -> list[Finalist]:
    """Stage 2's finalists: each family's winner (cross-entropy / MSE itself excluded: it is
    the task loss, already a finalist), labelled by family and parameter."""
    config, task = run.config, run.task
    names = zoo_families(config, task)
    cells = grid_cells(run, names)
    finalists = []
    for name in names:
        if name in ("ce", "mse"):
            continue
        params = winning_params(name, cells, config)
        every = config.meta_test.early_stopping.every if name in EARLY_STOPPED else None
        finalists.append(Finalist(_label(name, params), _document(task, name, params), None,
                                  role=BASELINE, family=name, early_stopping=every))  # fmt: skip
    return finalists


def run_zoo(run: MethodRun) -> SearchResult:
    """The zoo's pick: every family tuned over its grid and the lr, the best on validation."""
    config = run.config
    finalists = baseline_finalists(run, zoo=True)
    train_all(run, finalists, config.zoo.lr_factors)
    outcome = SelectionOutcome(finalists, choose(finalists), run.kind, 0.0,
                               config.meta_test.optimizer.lr)  # fmt: skip
    result = run.result(
        best=None,
        record=None,
        history=[],
        message=outcome.message(task_loss_name(run.kind)),
        verdicts={"trained": len(finalists)},
    )
    result.best_fitness = outcome.chosen.val_metric  # the pick's validation metric
    apply_outcome(result, outcome, run.kind)
    return run.finish(result)
