"""Built-in tasks by name: ``get_task("digits")``, ``get_task("idx:/path/to/folder")``.

Each entry names a loader that returns raw arrays (the original train/test
split), how to preprocess them and which augmentation preset applies. The
loaders live in :mod:`evomal.tasks.datasets`; this table is the one place
that maps names to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evomal.tasks.augmentation import get_augmentation
from evomal.tasks.task import Task

#: Environment variable that overrides the default data directory.
DATA_DIR_ENV = "EVOMAL_DATA_DIR"


@dataclass(frozen=True)
class RawData:
    """A dataset's original train/test split as arrays, before any preprocessing."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    n_outputs: int | None = None


Loader = Callable[[Path], RawData]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load and preprocess one named dataset."""

    name: str
    kind: str
    loader: str  # "module:function", imported on first use
    description: str
    needs_files: bool = False
    standardise: str = "feature"
    standardise_targets: bool = False
    augmentation: str = "none"

    def load(self, data_dir: Path) -> RawData:
        module_name, func_name = self.loader.split(":")
        module = __import__(module_name, fromlist=[func_name])
        loader: Loader = getattr(module, func_name)
        return loader(data_dir)


_B = "evomal.tasks.datasets.bundled"
_I = "evomal.tasks.datasets.images"

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec("digits", "classification", f"{_B}:load_digits",
                    "8x8 handwritten digits, 10 classes (scikit-learn, bundled)"),
        DatasetSpec("breast_cancer", "classification", f"{_B}:load_breast_cancer",
                    "Wisconsin breast cancer, 2 classes, 30 features (scikit-learn, bundled)"),
        DatasetSpec("wine", "classification", f"{_B}:load_wine",
                    "wine recognition, 3 classes, 13 features (scikit-learn, bundled)"),
        DatasetSpec("diabetes", "regression", f"{_B}:load_diabetes",
                    "diabetes progression, 10 features (scikit-learn, bundled)",
                    standardise_targets=True),
        DatasetSpec("mnist1d", "classification", f"{_B}:load_mnist1d",
                    "MNIST-1D, 40-sample 1-D signals, 10 classes (generated offline)"),
        DatasetSpec("boston", "regression", f"{_B}:load_boston",
                    "Boston housing, 13 features (mlxtend, bundled)", standardise_targets=True),
        DatasetSpec("california", "regression", f"{_B}:load_california",
                    "California housing, 8 features (scikit-learn download cache)",
                    needs_files=True, standardise_targets=True),
        DatasetSpec("mnist", "classification", f"{_I}:load_mnist",
                    "MNIST 28x28 digits (IDX files; `evomal data get mnist`)",
                    needs_files=True, standardise="none", augmentation="mnist"),
        DatasetSpec("fashion_mnist", "classification", f"{_I}:load_fashion_mnist",
                    "Fashion-MNIST 28x28 (IDX files)", needs_files=True, standardise="none",
                    augmentation="mnist"),
        DatasetSpec("cifar10", "classification", f"{_I}:load_cifar10",
                    "CIFAR-10 32x32 colour (python batches)", needs_files=True,
                    standardise="none", augmentation="cifar"),
        DatasetSpec("cifar100", "classification", f"{_I}:load_cifar100",
                    "CIFAR-100 32x32 colour (python batches)", needs_files=True,
                    standardise="none", augmentation="cifar"),
        DatasetSpec("svhn", "classification", f"{_I}:load_svhn",
                    "SVHN 32x32 digits (.mat files)", needs_files=True, standardise="none",
                    augmentation="svhn"),
    )
}  # fmt: skip

#: The offline datasets shipped with the package's dependencies.
EMBEDDED = ("digits", "breast_cancer", "wine", "diabetes", "mnist1d", "boston")


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


def task_names() -> list[str]:
    return list(DATASETS)


def get_task(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    augmentation: str | None = None,
) -> Task:
    """A built-in task by name, or ``idx:PATH`` for a folder of IDX files.

    ``seed`` chooses the validation samples. ``augmentation`` overrides the
    dataset's preset (``none``, ``mnist``, ``cifar``, ``svhn``). A dataset
    whose files are missing raises ``FileNotFoundError`` saying how to get it.
    """
    if name.startswith("idx:"):
        from evomal.tasks.datasets.images import load_idx_folder

        folder = Path(name[4:]).expanduser()
        raw = load_idx_folder(folder)
        spec = DatasetSpec(name, "classification", "", f"IDX files in {folder}",
                           standardise="none", augmentation="mnist")  # fmt: skip
    else:
        if name not in DATASETS:
            raise ValueError(
                f"unknown task {name!r}; built-in tasks are {task_names()}, or use idx:PATH for "
                "a folder holding train/t10k IDX files"
            )
        spec = DATASETS[name]
        raw = spec.load(resolve_data_dir(data_dir))
    aug_name = augmentation if augmentation is not None else spec.augmentation
    aug = get_augmentation(aug_name)
    return Task.from_tensors(
        name,
        spec.kind,
        raw.x_train,
        raw.y_train,
        raw.x_test,
        raw.y_test,
        n_outputs=raw.n_outputs,
        val_fraction=val_fraction,
        seed=seed,
        standardise=spec.standardise,
        standardise_targets=spec.standardise_targets,
        augmentation=aug,
        info={"description": spec.description, "augmentation": aug_name},
    )
