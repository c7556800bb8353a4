"""What every dataset loader returns, and where file-based datasets live on disk.

This module sits below both the loaders (:mod:`evomal.tasks.datasets`) and the
table of named tasks (:mod:`evomal.tasks.registry`), so neither imports the
other to share these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variable that overrides the default data directory.
DATA_DIR_ENV = "EVOMAL_DATA_DIR"


@dataclass(frozen=True)
class RawData:
    """A dataset's original train/test split as arrays, before any preprocessing.

    ``info`` carries what a loader learned about the data that a user needs
    back (e.g. the class names a CSV's labels were mapped from).
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    n_outputs: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


def default_data_dir() -> Path:
    """``$EVOMAL_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/evomal/data`` (``~/.cache/...``)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "evomal" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """An explicit ``data_dir`` wins over the environment variable and the default."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
