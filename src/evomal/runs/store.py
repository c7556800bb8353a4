"""The run directory: config, environment, events, checkpoints and the best loss.

Layout of ``RUN_DIR``::

    config.json       the resolved SearchConfig
    run.json          what was searched (task, model, the task's summary with its
                      scenario's realised flip rates and class counts) and the environment
    scenario.json     label noise and imbalance as applied: settings, realised flip rates
                      and class counts per split, the flipped samples (pool indices and
                      positions within each split); only when a scenario is set
    zoo_grid.json     the zoo's parameter grid, every cell scored on validation
                      (``--method zoo`` and ``selection.baselines=zoo``)
    events.jsonl      one line per scored candidate
    generations.jsonl one summary line per generation
    checkpoint.json   the method's state after the last generation (GP population,
                      caches and RNG state; CMA-ES history) or selection finalist,
                      as plain data
    best_loss.json    the best loss so far (after selection: the loss returned),
                      loadable by evomal.losses.load_loss
    selection.json    the selection stage's finalists: per-seed validation
                      metrics, learning curves, loss documents
    finalists/NN.json each finalist's loss file (00 is the task loss)
    result.json       the final result (written when the search ends)

Every JSON file is written atomically. The checkpoint records how many event
lines it covers, so resuming drops lines written after it (a generation that
was interrupted is scored again, with the same results).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evomal.config import SearchConfig, from_dict, to_dict
from evomal.errors import RunDirectoryError
from evomal.events import CandidateEvent, Event, FinalistEvent, GridEvent
from evomal.files import read_json, write_json_atomic
from evomal.records import FinalistRecord

#: Version 2: a GP state's ``best`` is a :class:`~evomal.events.Scored` record (loss file,
#: fitness, generation, label); version 1 stored the best candidate's outcome, which
#: :meth:`evomal.gp.loop.GPState.from_dict` still reads.
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def environment(config: SearchConfig) -> dict[str, Any]:
    """Versions, seed and device: what a reader needs to reproduce the run."""
    from importlib.metadata import version

    import numpy
    import sympy
    import torch

    return {
        "evomal": version("evomal"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sympy": sympy.__version__,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "seed": config.seed,
        "device": config.execution.device,
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def default_run_dir(task: str, model: str, seed: int) -> Path:
    """``runs/<task>-<model>-<seed>``, with paths and colons of the specs flattened."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{task}-{model}-{seed}")
    return Path("runs") / name


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def _clean(data: Any) -> Any:
    """Replace NaN/inf by None so strict JSON can hold every record."""
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_clean(v) for v in data]
    return _finite_or_none(data)


class RunStore:
    """Writes and reads one run directory. The GP loop's listener."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def generations_path(self) -> Path:
        return self.root / "generations.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoint.json"

    @property
    def best_loss_path(self) -> Path:
        return self.root / "best_loss.json"

    @property
    def selection_path(self) -> Path:
        return self.root / "selection.json"

    # -- creation and loading --------------------------------------------------

    def create(
        self,
        config: SearchConfig,
        spec: dict[str, Any],
        task: dict[str, Any] | None = None,
        scenario: dict[str, Any] | None = None,
    ) -> None:
        """Start a new run directory; refuses one that already holds a run, and a file.

        ``task`` (its summary) goes into ``run.json`` beside the spec; a
        ``scenario`` record (label noise and imbalance as applied: realised
        flip rates, class counts, the flipped samples) is written to
        ``scenario.json``.
        """
        if self.root.exists() and not self.root.is_dir():
            raise RunDirectoryError(
                f"--out {self.root} is a file, not a directory; choose a directory"
            )
        if self.checkpoint_path.exists() or (self.root / "config.json").exists():
            raise RunDirectoryError(
                f"{self.root} already holds a run; resume it with `evomal resume {self.root}` "
                "or choose another --out directory"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / "config.json", to_dict(config))
        record: dict[str, Any] = {"spec": spec, "environment": environment(config)}
        if task is not None:
            record["task"] = task
        write_json_atomic(self.root / "run.json", record)
        if scenario is not None:
            write_json_atomic(self.root / "scenario.json", scenario)
        for path in (self.events_path, self.generations_path):
            path.write_text("")

    def load_config(self) -> SearchConfig:
        data = read_json(self.root / "config.json", "run config", RunDirectoryError)
        return from_dict(SearchConfig, data)

    def load_spec(self) -> dict[str, Any]:
        data = read_json(self.root / "run.json", "run description", RunDirectoryError)
        if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
            raise RunDirectoryError(f"{self.root / 'run.json'} is not an evomal run description")
        return data["spec"]

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpointed payload (None before the first generation).

        Event lines written after that checkpoint (an interrupted generation)
        are dropped, so the resumed run writes them again.
        """
        if not (self.root / "config.json").exists():
            raise RunDirectoryError(f"{self.root} is not an evomal run directory (no config.json)")
        if not self.checkpoint_path.exists():
            self._truncate(self.events_path, 0)
            self._truncate(self.generations_path, 0)
            return None
        data = read_json(self.checkpoint_path, "checkpoint", RunDirectoryError)
        if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS:
            raise RunDirectoryError(
                f"{self.checkpoint_path} is not a checkpoint of a version this evomal reads "
                f"({', '.join(map(str, READABLE_VERSIONS))})"
            )
        self._truncate(self.events_path, int(data["event_lines"]))
        self._truncate(self.generations_path, int(data["generation_lines"]))
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise RunDirectoryError(f"{self.checkpoint_path} has no checkpoint payload")
        return payload

    @staticmethod
    def _truncate(path: Path, lines: int) -> None:
        """Keep the first ``lines`` lines (drops events of an interrupted generation)."""
        if not path.exists():
            path.write_text("")
            return
        kept = path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        path.write_text("".join(kept), encoding="utf-8")

    # -- listening -----------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Record an event. Checkpoints are the method's to write (:meth:`checkpoint`),
        after the events they cover."""
        if isinstance(event, GridEvent):
            write_json_atomic(
                self.root / "zoo_grid.json", {"total": event.total, "cells": _clean(event.cells)}
            )
        elif isinstance(event, CandidateEvent):
            record = {
                "generation": event.generation,
                "index": event.index,
                **event.outcome.as_dict(),
            }
            self._append(self.events_path, record)
        elif isinstance(event, FinalistEvent):
            self._write_finalist(event)
        else:
            self._append(self.generations_path, event.summary.as_dict())

    def _write_finalist(self, event: FinalistEvent) -> None:
        """Rewrite ``selection.json`` and write the finalist's loss file.

        ``selection.json`` lists every finalist of the event's group: the group
        is checkpointed after its events, so a kill before that checkpoint
        retrains the group and rewrites the record.
        """
        write_json_atomic(
            self.selection_path, {"total": event.total, "finalists": _clean(event.records)}
        )
        record = event.record
        metadata = {
            "finalist": record["rank"],
            "task_loss": record["task_loss"],
            "val_metric": record["val_metric"],
            "search_fitness": record["search_fitness"],
        }
        write_json_atomic(
            self.root / "finalists" / f"{record['rank']:02d}.json",
            {**record["document"], "metadata": _clean(metadata)},
        )

    def save_selection(self, records: Sequence[FinalistRecord]) -> None:
        """Rewrite ``selection.json`` with the final records (the one returned marked)."""
        write_json_atomic(
            self.selection_path, {"total": len(records), "finalists": _clean(records)}
        )

    def load_selection(self) -> list[dict[str, Any]]:
        """The selection stage's finalist records (empty before selection)."""
        if not self.selection_path.exists():
            return []
        data = read_json(self.selection_path, "selection record", RunDirectoryError)
        return list(data.get("finalists", []))

    def _append(self, path: Path, record: Mapping[str, object]) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_clean(record), allow_nan=False) + "\n")
            handle.flush()

    def checkpoint(self, payload: dict[str, Any]) -> None:
        """Atomically write the method's state, with the number of event lines it covers."""
        write_json_atomic(
            self.checkpoint_path,
            {
                "version": CHECKPOINT_VERSION,
                "event_lines": _count_lines(self.events_path),
                "generation_lines": _count_lines(self.generations_path),
                "payload": _clean(payload),
            },
        )

    def save_best(self, loss: Any, metadata: dict[str, Any]) -> None:
        """Write the best loss so far (any loss module with ``save``)."""
        loss.save(self.best_loss_path, metadata=_clean(metadata))

    @property
    def result_path(self) -> Path:
        return self.root / "result.json"

    def save_result(self, result: Mapping[str, object]) -> None:
        write_json_atomic(self.result_path, _clean(result))

    def load_result(self) -> dict[str, Any] | None:
        """The finished run's ``result.json``, or None while the run has not finished."""
        if not self.result_path.exists():
            return None
        return dict(read_json(self.result_path, "run result", RunDirectoryError))

    def work_seconds(self) -> float:
        """Seconds of candidate work (every stage of every scored candidate) plus selection
        training, summed from the records: unlike wall time, it survives resumes and
        leaves out idle time."""
        total = sum(sum(event.get("seconds", {}).values()) for event in self.read_events())
        for finalist in self.load_selection():
            total += sum(run.get("seconds", 0.0) for run in finalist.get("seeds", []))
        return total

    def read_events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_text(encoding="utf-8").count("\n")
