"""Resumable grids of training runs: one small JSON file per (loss, setting, seed) cell.

The analysis commands (learning-rate sweep, data utilisation, ...) train
many models. Each finished cell is written atomically under the output
directory, and a re-run skips the cells already there, so a long sweep
survives a crash or the end of a session and finishes with the same command.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from evomal.config import SearchConfig
from evomal.errors import ConfigError, LossFileError, RunDirectoryError
from evomal.files import read_json, write_json_atomic
from evomal.losses.learned import task_loss_name
from evomal.tasks.task import Task

Progress = Callable[[str], None]
#: One cell of a grid: (loss, task of the seed, the setting's value, seed) -> a JSON record.
CellFunction = Callable[["LossSpec", Task, Any, int], dict[str, Any]]


@dataclass(frozen=True)
class LossSpec:
    """A loss to compare: its label in tables and plots, and what to train with."""

    label: str
    loss: Any  # "task" or an nn.Module


def losses_to_compare(files: Sequence[str | os.PathLike[str]], kind: str) -> list[LossSpec]:
    """The task loss first, then each loss file, run directory (labelled by its name) or
    known loss ``NAME[:P1,P2]`` (labelled as written)."""
    from evomal.losses.io import load_loss
    from evomal.losses.zoo import FAMILIES, parse_loss_spec

    specs = [LossSpec(task_loss_name(kind), "task")]
    for given in files:
        path, label = Path(given), None
        if not path.exists() and str(given).partition(":")[0] in FAMILIES:
            zoo = parse_loss_spec(str(given))
            if zoo.task != kind:
                raise LossFileError(f"{given} is a {zoo.task} loss, but the task is {kind}")
            specs.append(LossSpec(str(given), zoo))
            continue
        if path.is_dir():  # a run directory: the loss it handed back
            if not (path / "best_loss.json").exists():
                raise LossFileError(f"{path} is a directory without best_loss.json (not a run?)")
            label = _run_label(path)
            path = path / "best_loss.json"
        loss = load_loss(path)
        learned_for = getattr(loss, "task", kind)
        if learned_for != kind:
            raise LossFileError(f"{path} was learned for {learned_for}, but the task is {kind}")
        if label is None:  # a run's loss file is labelled as its run, any other by its name
            label = _run_label(path.parent) if path.stem == "best_loss" else path.stem
        specs.append(LossSpec(label, loss))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two losses share a label {labels}; rename one of the files")
    return specs


def _run_label(run_dir: Path) -> str:
    """``method seed k`` from a run directory's config, else its folder name."""
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return run_dir.name
    config = read_json(config_path, "run config", RunDirectoryError)
    return f"{config.get('method', run_dir.name)} seed {config.get('seed', '?')}"


@dataclass(frozen=True)
class AnalysisSetup:
    """What every seed-based analysis starts from: the config, a seed -> task function, the
    losses to compare (the task loss included), the seeds, the model, the output directory
    and where progress messages go."""

    config: SearchConfig
    task_for_seed: Callable[[int], Task]
    losses: list[LossSpec]
    seeds: list[int]
    model: str
    out: Path
    progress: Progress
    first: Task  # the first seed's task (its scenario is what a command reports up front)

    @classmethod
    def build(
        cls, *, loss: Sequence[str], task: str, target: str | None, kind: str | None,
        model: str, preset: str, seeds: str, set_: Sequence[str], out: Path,
        data_dir: Path | None, progress: Progress,
    ) -> AnalysisSetup:  # fmt: skip
        """From the analysis commands' shared options (``evomal lr-sweep --help``)."""
        from evomal.config import build_config
        from evomal.methods.meta_test import parse_seeds
        from evomal.runs.tasks import task_for

        config = build_config(preset, set_)
        seed_list = parse_seeds(seeds)

        def task_for_seed(seed: int) -> Task:
            return task_for(task, config, data_dir=data_dir, seed=seed, target=target, kind=kind)

        first = task_for_seed(seed_list[0])
        return cls(config, task_for_seed, losses_to_compare(loss, first.kind), seed_list, model,
                   out, progress, first)  # fmt: skip

    def run(self, analysis: Callable[..., object], setting: object, **options: Any) -> str:
        """Run a grid analysis (``lr_sweep``, ``robustness``, ...) on this setup over its
        ``setting`` values; return the Markdown table it wrote (``<analysis name>.md``)."""
        analysis(self.losses, self.task_for_seed, self.model, self.config, setting, self.seeds,
                 self.out, progress=self.progress, **options)  # fmt: skip
        return (self.out / f"{getattr(analysis, '__name__', '')}.md").read_text()


class CellStore:
    """``root/cells/<loss>/<setting>/seed-<k>.json``, written once each."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, loss: str, setting: str, seed: int) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in loss)
        return self.root / "cells" / safe / setting / f"seed-{seed}.json"

    def get_or_run(
        self, loss: str, setting: str, seed: int, run: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        path = self.path(loss, setting, seed)
        if path.exists():
            return dict(read_json(path, "analysis cell", RunDirectoryError))
        record = {"loss": loss, "setting": setting, "seed": seed, **run()}
        write_json_atomic(path, record)
        return record


def run_grid(
    out: str | os.PathLike[str],
    losses: Sequence[LossSpec],
    settings: Sequence[tuple[str, Any]],
    seeds: Sequence[int],
    task_for_seed: Callable[[int], Task],
    cell: CellFunction,
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every (loss, setting, seed) cell of an analysis, each trained once and kept on disk.

    ``settings`` are (key, value) pairs: the key names the cell's folder, the
    value is passed to ``cell``. Cells already under ``out`` are read back, not
    run again, so a re-run finishes a stopped analysis. Returns the records per
    (loss label, setting key), in seed order. A new analysis is one cell
    function plus what it writes from these records.
    """
    store = CellStore(out)
    tasks: dict[int, Task] = {}
    grid: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for spec in losses:
        for key, value in settings:
            records = []
            for seed in seeds:
                if seed not in tasks:
                    tasks[seed] = task_for_seed(seed)
                job = partial(cell, spec, tasks[seed], value, seed)
                records.append(store.get_or_run(spec.label, key, seed, job))
            grid[(spec.label, key)] = records
    return grid


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample std of the finite values, and how many were not (diverged).

    The std is None, not 0, when fewer than two values are finite: one run has no spread to
    report, and a printed "± 0.0000" would read as a measured absence of noise.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    missing = len(values) - len(finite)
    if not finite:
        return None, None, missing
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return statistics.fmean(finite), std, missing


def format_spread(mean: float | None, std: float | None) -> str:
    """A table cell: "mean ± std", the mean and "(1 run)" without a std, or "diverged"."""
    if mean is None:
        return "diverged"
    return f"{mean:.4f} (1 run)" if std is None else f"{mean:.4f} ± {std:.4f}"
