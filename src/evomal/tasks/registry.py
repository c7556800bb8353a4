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

from evomal.config import Scenario
from evomal.errors import DataError, UnknownNameError
from evomal.symbolic.transforms import TASK_KINDS, TaskKind, check_choice
from evomal.tasks.augmentation import get_augmentation
from evomal.tasks.datasets.raw import RawData, resolve_data_dir
from evomal.tasks.task import Task
from evomal.tasks.user_code import import_object

Loader = Callable[[Path], RawData]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load and preprocess one named dataset."""

    name: str
    kind: TaskKind
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


def task_names() -> list[str]:
    return list(DATASETS)


def get_task(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    augmentation: str | None = None,
    target: str | None = None,
    kind: TaskKind | None = None,
    scenario: Scenario | None = None,
) -> Task:
    """A task by name: built-in, or one of the user's own.

    * a built-in name (``digits``, ``mnist``, ...; see :data:`DATASETS`);
    * ``idx:PATH``, a folder of MNIST-style IDX files;
    * ``csv:PATH``, a CSV file with a header; ``target`` names the label or
      target column and ``kind`` overrides the inferred task kind
      (:mod:`evomal.tasks.datasets.files`);
    * ``npz:PATH``, arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``;
    * ``package.module:function``, a function that returns a :class:`Task`.

    ``seed`` chooses the validation samples. ``augmentation`` overrides the
    dataset's preset (``none``, ``mnist``, ``cifar``, ``svhn``). ``scenario``
    adds label noise, class imbalance or the balanced error
    (:class:`~evomal.config.Scenario`, :mod:`evomal.tasks.scenarios`). A dataset
    whose files are missing raises ``FileNotFoundError`` saying how to get it.
    """
    if kind is not None:
        check_choice(kind, TASK_KINDS, "task kind")
    prefix, _, rest = name.partition(":")
    if prefix in ("csv", "npz"):
        from evomal.tasks.datasets.files import load_csv, load_npz

        path = Path(rest).expanduser()
        raw, found = load_csv(path, target, kind) if prefix == "csv" else load_npz(path, kind)
        spec = DatasetSpec(name, found, "", f"{prefix.upper()} file {path}",
                           standardise_targets=found == "regression")  # fmt: skip
    elif prefix == "idx":
        from evomal.tasks.datasets.images import load_idx_folder

        folder = Path(rest).expanduser()
        raw = load_idx_folder(folder)
        spec = DatasetSpec(name, "classification", "", f"IDX files in {folder}",
                           standardise="none", augmentation="mnist")  # fmt: skip
    elif name in DATASETS:
        spec = DATASETS[name]
        raw = spec.load(resolve_data_dir(data_dir))
    elif rest:
        task = _task_from_function(name)
        return task.with_scenario(scenario) if scenario is not None else task
    else:
        raise UnknownNameError(
            f"unknown task {name!r}; built-in tasks are {task_names()}, or use csv:PATH "
            "(with --target), npz:PATH, idx:PATH or package.module:function"
        )
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
        info={**raw.info, "description": spec.description, "augmentation": aug_name},
        scenario=scenario,
    )


def _task_from_function(path: str) -> Task:
    """Call ``package.module:function`` (the user's own code) and check it returned a Task."""
    function = import_object(path, "task", DataError)
    if not callable(function):
        raise DataError(f"task {path} is not a function returning a Task")
    task = function()
    if not isinstance(task, Task):
        raise DataError(f"task function {path} returned {type(task).__name__}, not a Task")
    return task
