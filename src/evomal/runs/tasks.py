"""Build a named task the way a configuration asks (validation share, augmentation)."""

from __future__ import annotations

import os

from evomal.runs.config import SearchConfig
from evomal.tasks.registry import get_task
from evomal.tasks.task import Task


def task_for(
    name: str,
    config: SearchConfig,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> Task:
    """``get_task(name)`` with ``config.data`` applied; the validation split drawn from ``seed``.

    ``seed`` defaults to the run seed (``config.seed``).
    """
    return get_task(
        name,
        data_dir=data_dir,
        seed=config.seed if seed is None else seed,
        val_fraction=config.data.val_fraction,
        augmentation=config.data.augmentation,
    )
