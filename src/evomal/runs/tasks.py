"""Build a named task the way a configuration asks (validation share, augmentation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evomal.config import SearchConfig
from evomal.errors import ConfigError
from evomal.symbolic.transforms import TaskKind
from evomal.tasks.registry import get_task
from evomal.tasks.task import Task


def task_for(
    name: str,
    config: SearchConfig,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    target: str | None = None,
    kind: str | None = None,
) -> Task:
    """``get_task(name)`` with ``config.data`` applied; the validation split drawn from ``seed``.

    ``config.data`` sets the validation share, the augmentation and the
    scenario (label noise, imbalance, metric), so a resumed run rebuilds the
    same corrupted task.

    ``seed`` defaults to the run seed (``config.seed``). ``target`` and
    ``kind`` are for ``csv:``/``npz:`` data files.
    """
    return get_task(
        name,
        data_dir=data_dir,
        seed=config.seed if seed is None else seed,
        val_fraction=config.data.val_fraction,
        augmentation=config.data.augmentation,
        target=target,
        kind=check_kind(kind),
        scenario=config.data.scenario,
    )


def check_kind(kind: str | None) -> TaskKind | None:
    """A data file's task kind: classification or regression (None: inferred from the data)."""
    if kind is None:
        return None
    if kind == "classification":
        return "classification"
    if kind == "regression":
        return "regression"
    raise ConfigError(f"--kind must be classification or regression, got {kind!r}")


def task_record(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    target: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """How to rebuild a task later (``run.json``, experiments): a data file's path made absolute.

    ``evomal resume`` may run from another directory, so ``csv:data.csv``
    is recorded as ``csv:/abs/path/data.csv``.
    """
    check_kind(kind)
    prefix, _, rest = name.partition(":")
    if prefix in ("csv", "npz", "idx") and rest:
        name = f"{prefix}:{Path(rest).expanduser().resolve()}"
    record: dict[str, Any] = {"task": name, "data_dir": os.fspath(data_dir) if data_dir else None}
    if target is not None:
        record["target"] = target
    if kind is not None:
        record["kind"] = kind
    return record


def task_from_record(
    record: dict[str, Any],
    config: SearchConfig,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> Task:
    """The task a :func:`task_record` describes (``data_dir`` overrides the recorded one)."""
    return task_for(
        record["task"],
        config,
        data_dir=data_dir or record.get("data_dir"),
        seed=seed,
        target=record.get("target"),
        kind=record.get("kind"),
    )
