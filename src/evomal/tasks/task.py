"""The ``Task``: data splits, kind, shapes, task loss and metric, in one value.

A search needs a task and spends nearly all its time training on it, so a
task keeps its splits as tensors that live on the training device. The
splits follow the paper (Section 4.2): the original test split is the test
set, and 10% of the original training split, chosen by a seed, is held out
for validation. Standardisation uses statistics of the remaining training
part only, never of validation or test data.

The test split is for meta-testing only. :meth:`Task.without_test` returns
the view a search receives: reading its test split raises an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from evomal.config import Scenario
from evomal.errors import DataError
from evomal.symbolic.transforms import TASK_KINDS, TaskKind, check_choice
from evomal.tasks.augmentation import Augmentation
from evomal.tasks.scenarios import corrupt, split_record

#: How features are standardised with training statistics.
#: ``feature``: per-feature mean/std (tabular data); ``none``: leave as is
#: (images are normalised per channel by their :class:`Augmentation`).
STANDARDISE = ("feature", "none")

#: A task's metric: the error rate, or the balanced error (the mean of per-class error rates).
#: Regression tasks report MSE whatever this says.
TASK_METRICS = ("error", "balanced_error")


class HiddenTestSplitError(RuntimeError):
    """Raised when code running a search tries to read the test split."""


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split, as tensors with a shared first dimension.

    ``y_clean`` holds the true labels where label noise was applied (``y`` is
    then what a user has: the noisy labels); it is ``None`` otherwise.
    """

    x: Tensor
    y: Tensor
    y_clean: Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(
                f"inputs and targets disagree on the number of samples: {self.x.shape[0]} vs "
                f"{self.y.shape[0]}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        clean = None if self.y_clean is None else self.y_clean.to(device)
        return Split(self.x.to(device), self.y.to(device), clean)

    @property
    def flipped(self) -> Tensor | None:
        """A boolean mask of the samples whose label was flipped (``None`` without noise)."""
        return None if self.y_clean is None else self.y != self.y_clean


@dataclass(frozen=True)
class TaskSource:
    """The arrays and options a task was built from, kept so it can be rebuilt in a scenario.

    Held by the task in memory only: a task sent to a worker travels without it.
    """

    name: str
    kind: TaskKind
    arrays: tuple[Any, Any, Any, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class Task:
    """A supervised learning task: splits, kind, shapes, task loss and metric.

    Build one with :meth:`from_tensors`, :meth:`from_datasets` or
    :func:`evomal.tasks.get_task`. ``kind`` is ``"classification"`` (task
    loss cross-entropy, metric error rate) or ``"regression"`` (task loss and
    metric MSE). ``n_outputs`` is the model's output width (the number of
    classes, 1 for binary classification with a sigmoid, or the number of
    regression targets).
    """

    name: str
    kind: TaskKind
    train: Split
    val: Split
    _test: Split | None
    n_outputs: int
    input_shape: tuple[int, ...]
    augmentation: Augmentation = field(default_factory=Augmentation)
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    metric: str = "error"
    scenario: Scenario = field(default_factory=Scenario)
    _source: TaskSource | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_choice(self.kind, TASK_KINDS, "task kind")
        check_choice(self.metric, TASK_METRICS, "task metric")
        if self.kind != "classification" and self.metric != "error":
            raise DataError(
                f"the balanced error needs a classification task; {self.name!r} is {self.kind}"
            )
        if self.n_outputs < 1:
            raise DataError(f"n_outputs must be positive, got {self.n_outputs}")
        for split_name, split in (("train", self.train), ("validation", self.val)):
            if len(split) == 0:
                raise DataError(f"the {split_name} split of task {self.name!r} is empty")
            if tuple(split.x.shape[1:]) != tuple(self.input_shape):
                raise DataError(
                    f"{split_name} inputs have shape {tuple(split.x.shape[1:])}, expected "
                    f"{self.input_shape}"
                )

    # -- splits --------------------------------------------------------------

    @property
    def test(self) -> Split:
        """The original test split. Hidden (raises) in the view a search receives."""
        if self._test is None:
            raise HiddenTestSplitError(
                f"the test split of task {self.name!r} is hidden: a search must not read it "
                "(use the validation split for fitness; meta-test on the full task)"
            )
        return self._test

    @property
    def has_test(self) -> bool:
        return self._test is not None

    def without_test(self) -> Task:
        """The same task with its test split hidden, as handed to a search."""
        return replace(self, _test=None)

    def to(self, device: torch.device | str) -> Task:
        """The task with every split (and the augmentation statistics) on ``device``."""
        return replace(
            self,
            train=self.train.to(device),
            val=self.val.to(device),
            _test=None if self._test is None else self._test.to(device),
            augmentation=self.augmentation.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_source"] = None  # workers get the splits, not the arrays they came from
        return state

    @property
    def n_classes(self) -> int:
        """Classes of a classification task (2 for one sigmoid output); 0 for regression."""
        if self.kind != "classification":
            return 0
        return 2 if self.n_outputs == 1 else self.n_outputs

    # -- scenarios -----------------------------------------------------------

    def with_scenario(self, scenario: Scenario) -> Task:
        """The task rebuilt in ``scenario``: noise and imbalance drawn over the training pool.

        The pool is corrupted before validation is carved, as
        :meth:`from_tensors` does (:mod:`evomal.tasks.scenarios`): the same
        settings give the same corrupted pool whatever the validation seed.
        A change of metric alone keeps the splits as they are.
        """
        if self.kind != "classification" and (
            scenario.corrupts or scenario.metric == "balanced_error"
        ):
            raise DataError(_regression_scenario(self.name))
        if not scenario.corrupts and not self.scenario.corrupts:
            info = {k: v for k, v in self.info.items() if k != "scenario"}
            if self.kind == "classification" and scenario.metric != "auto":
                info["scenario"] = _scenario_record(
                    scenario, {}, self.train, self.val, self.n_classes
                )
            return replace(self, scenario=scenario, metric=scenario.resolved_metric, info=info)
        if self._source is None:
            raise DataError(
                f"task {self.name!r} cannot be rebuilt with label noise or imbalance: it was "
                "not made by Task.from_tensors or get_task (build it with either)"
            )
        source = self._source
        rebuilt = Task.from_tensors(
            source.name, source.kind, *source.arrays, **source.options, scenario=scenario
        )
        if not self.has_test:
            rebuilt = rebuilt.without_test()
        return rebuilt.to(self.device) if rebuilt.device != self.device else rebuilt

    def with_label_noise(self, rate: float, kind: str = "symmetric", seed: int = 0) -> Task:
        """The task with training and validation labels flipped at ``rate`` (test stays clean).

        ``kind`` is ``symmetric`` (to any other class) or ``pair`` (c -> c + 1
        mod K); ``seed`` draws the flips, independently of the validation seed.
        Any imbalance already set is kept, and applied first.
        """
        return self.with_scenario(
            replace(self.scenario, label_noise=rate, noise_kind=kind, noise_seed=seed)
        )

    def with_imbalance(self, ratio: float) -> Task:
        """The task with a long-tailed training pool of imbalance ``ratio`` = n_max / n_min.

        Under ``metric="auto"`` (the default) the task is then scored by its
        balanced error. Any label noise already set is kept, and applied after.
        """
        return self.with_scenario(replace(self.scenario, imbalance=ratio))

    def with_metric(self, metric: str) -> Task:
        """The task scored by ``error``, ``balanced_error`` or ``auto`` (see :class:`Scenario`)."""
        return self.with_scenario(replace(self.scenario, metric=metric))

    # -- construction --------------------------------------------------------

    @classmethod
    def from_tensors(
        cls,
        name: str,
        kind: TaskKind,
        x_train: Tensor | np.ndarray,
        y_train: Tensor | np.ndarray,
        x_test: Tensor | np.ndarray,
        y_test: Tensor | np.ndarray,
        *,
        n_outputs: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        standardise: str = "feature",
        standardise_targets: bool = False,
        augmentation: Augmentation | None = None,
        info: dict[str, Any] | None = None,
        scenario: Scenario | None = None,
    ) -> Task:
        """Build a task from arrays: corrupt, carve validation, standardise, infer shapes.

        ``scenario`` (label noise, imbalance, metric) is applied to the whole
        training pool first (:mod:`evomal.tasks.scenarios`); then
        ``val_fraction`` of the training samples (chosen by ``seed``) become
        the validation split, so both carry the noise and the test split
        stays clean. With ``standardise="feature"`` each input
        feature is centred and scaled by the mean and standard deviation of
        the remaining training samples. ``standardise_targets`` does the same
        for regression targets (metrics are then in standardised units).
        Classification labels must be integers in ``[0, n_classes)``.
        """
        options: dict[str, Any] = {
            "n_outputs": n_outputs, "val_fraction": val_fraction, "seed": seed,
            "standardise": standardise, "standardise_targets": standardise_targets,
            "augmentation": augmentation, "info": info,
        }  # fmt: skip
        source = TaskSource(name, kind, (x_train, y_train, x_test, y_test), options)
        scenario = scenario or Scenario()
        check_choice(kind, TASK_KINDS, "task kind")
        if kind != "classification" and (scenario.corrupts or scenario.metric == "balanced_error"):
            raise DataError(_regression_scenario(name))
        check_choice(standardise, STANDARDISE, "standardisation")
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        xtr, ytr = (
            _as_tensor(x_train, floating=True),
            _as_tensor(y_train, floating=kind != "classification"),
        )
        xte, yte = (
            _as_tensor(x_test, floating=True),
            _as_tensor(y_test, floating=kind != "classification"),
        )
        if xtr.shape[1:] != xte.shape[1:]:
            raise DataError(
                f"train and test inputs differ in shape: {tuple(xtr.shape[1:])} vs "
                f"{tuple(xte.shape[1:])}"
            )
        clean: Tensor | None = None
        scenario_info: dict[str, Any] = {}
        if kind == "classification":
            n_classes = _check_labels(ytr, yte, n_outputs)
            n_outputs = 1 if n_classes == 2 and n_outputs == 1 else n_classes
            if scenario.corrupts:
                pool = len(ytr)
                corruption = corrupt(ytr.numpy(), scenario, n_classes)
                keep = torch.from_numpy(corruption.keep)
                xtr, clean = xtr[keep], ytr[keep]
                ytr = torch.from_numpy(corruption.labels).to(torch.long)
                scenario_info = {"pool_size": pool, "flipped_pool_indices":
                                 corruption.flipped.tolist()}  # fmt: skip
                if scenario.label_noise == 0.0:
                    clean = None
        else:
            if ytr.ndim == 1:
                ytr, yte = ytr.unsqueeze(1), yte.unsqueeze(1)
            n_outputs = int(ytr.shape[1]) if n_outputs is None else n_outputs
            if ytr.shape[1] != n_outputs:
                raise DataError(
                    f"regression targets have {ytr.shape[1]} columns, n_outputs={n_outputs}"
                )

        n = xtr.shape[0]
        n_val = max(1, round(val_fraction * n))
        if n - n_val < 1:
            raise DataError(
                f"task {name!r} has too few training samples ({n}) to hold out validation"
            )
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        train = Split(xtr[train_idx], ytr[train_idx], None if clean is None else clean[train_idx])
        val = Split(xtr[val_idx], ytr[val_idx], None if clean is None else clean[val_idx])
        test = Split(xte, yte)

        stats: dict[str, Any] = {}
        if standardise == "feature":
            mean, std = _mean_std(train.x)
            train, val, test = (replace(s, x=(s.x - mean) / std) for s in (train, val, test))
            stats["feature_mean_std"] = (mean, std)
        if standardise_targets and kind == "regression":
            mean, std = _mean_std(train.y)
            train, val, test = (replace(s, y=(s.y - mean) / std) for s in (train, val, test))
            stats["target_mean_std"] = (mean, std)
        if kind == "classification" and (scenario.corrupts or scenario.metric != "auto"):
            stats["scenario"] = _scenario_record(scenario, scenario_info, train, val, n_classes)
        aug = augmentation if augmentation is not None else Augmentation()
        aug = aug.fitted(train.x)
        return cls(
            name=name,
            kind=kind,
            train=train,
            val=val,
            _test=test,
            n_outputs=n_outputs,
            input_shape=tuple(int(d) for d in xtr.shape[1:]),
            augmentation=aug,
            info={**(info or {}), **stats, "val_seed": seed, "val_fraction": val_fraction},
            metric=scenario.resolved_metric if kind == "classification" else "error",
            scenario=scenario,
            _source=source,
        )

    @classmethod
    def from_datasets(
        cls,
        name: str,
        kind: TaskKind,
        train: torch.utils.data.Dataset,
        test: torch.utils.data.Dataset,
        **kwargs: Any,
    ) -> Task:
        """Build a task from two map-style ``Dataset``s of ``(input, target)`` pairs.

        The datasets are read once into tensors (the training loop keeps data
        on the device and samples indices; it never iterates a DataLoader).
        Keyword arguments go to :meth:`from_tensors`.
        """
        xtr, ytr = _materialise(train, "train")
        xte, yte = _materialise(test, "test")
        return cls.from_tensors(name, kind, xtr, ytr, xte, yte, **kwargs)

    def summary(self) -> dict[str, Any]:
        """Plain-data description (for run directories and reports)."""
        out = {
            "name": self.name,
            "kind": self.kind,
            "n_outputs": self.n_outputs,
            "input_shape": list(self.input_shape),
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self._test) if self._test is not None else None,
            "augmentation": self.augmentation.describe(),
            "metric": self.metric,
        }
        record = self.scenario_record
        if record is not None:
            out["scenario"] = scenario_summary(record)
        return out

    @property
    def scenario_record(self) -> dict[str, Any] | None:
        """The scenario as applied: settings, realised flip rates and class counts per split,
        and the flipped samples (pool indices, and positions within each split)."""
        return self.info.get("scenario")


def scenario_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A scenario record without its index lists (for ``run.json`` and printing)."""
    out = {k: v for k, v in record.items() if k not in ("flipped_pool_indices", "splits")}
    out["splits"] = {
        name: {k: v for k, v in split.items() if k != "flipped"}
        for name, split in record.get("splits", {}).items()
    }
    return out


def describe_scenario(record: dict[str, Any] | None) -> str | None:
    """One line a user reads: the realised flip rate and class counts per split."""
    if record is None:
        return None
    parts = []
    if record["label_noise"] > 0:
        rates = ", ".join(
            f"{name} {split['flip_rate']:.3f}" for name, split in record["splits"].items()
        )
        parts.append(
            f"{record['noise_kind']} label noise {record['label_noise']:g} (seed "
            f"{record['noise_seed']}): realised flip rate {rates}"
        )
    if record["imbalance"] > 1:
        counts = record["splits"]["train"]["class_counts"]
        parts.append(
            f"imbalance {record['imbalance']:g}: training class counts {counts} "
            f"(n_max/n_min = {max(counts)}/{max(1, min(counts))})"
        )
    parts.append(f"metric {record['metric']}")
    return "; ".join(parts)


def _scenario_record(
    scenario: Scenario, info: dict[str, Any], train: Split, val: Split, n_classes: int
) -> dict[str, Any]:
    def as_numpy(t: Tensor | None) -> np.ndarray | None:
        return None if t is None else t.cpu().numpy()

    return {
        "label_noise": scenario.label_noise,
        "noise_kind": scenario.noise_kind,
        "noise_seed": scenario.noise_seed,
        "imbalance": scenario.imbalance,
        "metric": scenario.resolved_metric,
        **info,
        "splits": {
            name: split_record(as_numpy(s.y), as_numpy(s.y_clean), n_classes)  # type: ignore[arg-type]
            for name, s in (("train", train), ("validation", val))
        },
    }


def _regression_scenario(name: str) -> str:
    return (
        f"label noise, imbalance and the balanced error need a classification task; "
        f"task {name!r} is regression (drop the data.label_noise, data.imbalance and "
        "data.metric settings)"
    )


def _as_tensor(value: Tensor | np.ndarray | Sequence[Any], floating: bool) -> Tensor:
    t = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    if floating:
        return t.to(torch.get_default_dtype())
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise DataError("classification labels must be integers")
        t = t.round()
    return t.to(torch.long).reshape(-1) if t.ndim > 1 and t.shape[-1] == 1 else t.to(torch.long)


def _check_labels(ytr: Tensor, yte: Tensor, n_outputs: int | None) -> int:
    if ytr.ndim != 1 or yte.ndim != 1:
        raise DataError(
            f"classification labels must be 1-D, got {tuple(ytr.shape)} and {tuple(yte.shape)}"
        )
    low = int(min(ytr.min(), yte.min()))
    n_classes = int(max(ytr.max(), yte.max())) + 1
    if low < 0:
        raise DataError(f"classification labels must be >= 0, found {low}")
    if n_outputs is not None:
        if n_outputs == 1 and n_classes <= 2:
            return 2
        if n_outputs < n_classes:
            raise DataError(f"labels go up to {n_classes - 1} but n_outputs={n_outputs}")
        return n_outputs
    return n_classes


def _mean_std(x: Tensor) -> tuple[Tensor, Tensor]:
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, keepdim=True)
    # A constant feature keeps its scale instead of dividing by zero.
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


def _materialise(dataset: torch.utils.data.Dataset, which: str) -> tuple[Tensor, Tensor]:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"the {which} dataset must be map-style (define __len__)") from None
    if n == 0:
        raise DataError(f"the {which} dataset is empty")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"{which} dataset items must be (input, target) pairs")
        xs.append(torch.as_tensor(np.asarray(item[0])))
        ys.append(torch.as_tensor(np.asarray(item[1])))
    return torch.stack(xs), torch.stack(ys)
