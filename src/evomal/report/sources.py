"""What a report reads: run directories and experiment directories, as plain records.

A report never re-runs anything. It finds run directories (``config.json`` +
``events.jsonl``) among the paths it is given, including those inside an
experiment directory (``DIR/<method>/seed-<k>/search``), and reads each one
through :class:`~evomal.runs.store.RunStore`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evomal.errors import ConfigError, LossFileError, RunDirectoryError
from evomal.events import GenerationSummary
from evomal.files import read_json
from evomal.runs.store import RunStore


@dataclass(frozen=True)
class RunData:
    """One run directory's records."""

    path: Path
    method: str
    kind: str  # classification | regression
    config: dict[str, Any]
    spec: dict[str, Any]
    events: list[dict[str, Any]]
    generations: list[GenerationSummary]
    selection: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    best_loss: dict[str, Any] | None = None  # the loss document the run handed back

    @property
    def label(self) -> str:
        """A short name for tables and legends: method, seed and folder."""
        return f"{self.method} seed {self.config.get('seed', '?')} ({self.path.name})"


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "events.jsonl").is_file()


def is_experiment_dir(path: Path) -> bool:
    return (path / "experiment.json").is_file()


def load_run(path: str | os.PathLike[str]) -> RunData:
    """Read one run directory; ``ValueError`` naming the path when it is not one."""
    root = Path(path)
    if not is_run_dir(root):
        raise RunDirectoryError(
            f"{root} is not an evomal run directory (no config.json/events.jsonl)"
        )
    store = RunStore(root)
    config = read_json(store.root / "config.json", "run config", RunDirectoryError)
    result_path = store.root / "result.json"
    best = (
        read_json(store.best_loss_path, "loss file", LossFileError)
        if store.best_loss_path.exists()
        else None
    )
    spec = store.load_spec()
    kind = spec.get("task_kind") or (best or {}).get("task") or "classification"
    generations = [
        GenerationSummary.from_dict(line) for line in _json_lines(store.generations_path)
    ]
    return RunData(
        path=root,
        method=str(config.get("method", "evomal")),
        kind=str(kind),
        config=config,
        spec=spec,
        events=store.read_events(),
        generations=generations,
        selection=store.load_selection(),
        result=read_json(result_path, "run result", RunDirectoryError)
        if result_path.exists()
        else None,
        best_loss=best,
    )


def collect(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[RunData], list[Path]]:
    """The runs under ``paths`` (run or experiment directories), and the experiment dirs."""
    if not paths:
        raise ConfigError("give at least one run or experiment directory")
    runs: list[RunData] = []
    experiments: list[Path] = []
    for given in paths:
        path = Path(given)
        if is_run_dir(path):
            runs.append(load_run(path))
        elif is_experiment_dir(path):
            experiments.append(path)
            found = sorted(path.glob("*/seed-*/search"))
            runs.extend(load_run(p) for p in found if is_run_dir(p))
        else:
            raise RunDirectoryError(
                f"{path} is neither a run directory (config.json, events.jsonl) nor an "
                "experiment directory (experiment.json)"
            )
    if not runs:
        raise RunDirectoryError(f"no run directories found under {[str(p) for p in paths]}")
    return runs, experiments


def _json_lines(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_cells(
    root: str | os.PathLike[str], methods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every finished (method, seed) record under an experiment directory.

    Each record gains ``work_seconds``: the search's candidate work plus its
    selection training, summed from its run directory (a resumed search's wall
    time covers only the part after the resume).
    """
    base = Path(root)
    records = []
    for path in sorted(base.glob("*/seed-*/meta_test.json")):
        record = read_json(path, "meta-test record", RunDirectoryError)
        if methods is None or record.get("method") in methods:
            run_dir = path.parent / "search"
            if run_dir.is_dir():
                record["work_seconds"] = round(RunStore(run_dir).work_seconds(), 1)
            records.append(record)
    return records
