"""Meta-testing and transfer: train a fresh base model with a loss, report the test metric.

Every method gets identical initial conditions for a seed: the base model is
built from the seed, and batches are drawn from a generator seeded with it.
A loss learned on one task can be applied to another (paper Table 3) when
the two are compatible; :func:`check_transfer` says clearly when they are not.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from evomal.config import SearchConfig
from evomal.errors import ConfigError, LossFileError
from evomal.execution.process import cpu_worker_threads
from evomal.losses.document import advice_of, online_of
from evomal.optim import SGDConfig
from evomal.tasks.models.source import ModelLike
from evomal.tasks.task import Task
from evomal.training.loop import TrainResult, train

if TYPE_CHECKING:
    from evomal.execution.context import EvaluationContext


def check_transfer(loss: Any, task: Task) -> None:
    """Raise a ``ValueError`` when ``loss`` cannot train on ``task``.

    A loss keeps the task kind it was learned for (a classification loss
    reads probabilities and one-hot labels, a regression loss raw values).
    Every evomal loss (tree, Taylor polynomial, ML3 network) reads one
    (prediction, target) pair at a time, so any number of classes or
    outputs is fine.
    """
    if isinstance(loss, str):
        return
    kind = getattr(loss, "task", None)
    if kind is not None and kind != task.kind:
        raise LossFileError(
            f"the loss was learned for {kind}, but task {task.name!r} is {task.kind}; "
            "a loss transfers only between tasks of the same kind"
        )


def training_settings(
    loss: Any, config: SearchConfig, *, lr_factor: float | None = None, apply_advice: bool = True
) -> tuple[SGDConfig, int | None]:
    """The optimiser and early-stopping interval a loss trains with under the meta-test schedule.

    ``meta_test.optimizer`` with its lr multiplied by ``lr_factor``, else by the
    factor the loss's file records (its :class:`~evomal.losses.document.TrainingAdvice`,
    unless ``apply_advice`` is false, as when a user sets the lr explicitly);
    early stopping as the loss's file records it, else as ``meta_test.early_stopping``.
    """
    advice = advice_of(loss)
    optimizer = config.meta_test.optimizer
    factor = (
        lr_factor
        if lr_factor is not None
        else (advice.lr_factor if advice is not None and apply_advice else 1.0)
    )
    if factor != 1.0:
        optimizer = replace(optimizer, lr=optimizer.lr * factor)
    every = advice.early_stopping if advice is not None else None
    return optimizer, every if every is not None else config.meta_test.stop_every


def describe_training(loss: Any, config: SearchConfig, *, apply_advice: bool = True) -> str:
    """How ``loss`` trains under the meta-test schedule, in words (steps, lr and why, early
    stopping): the line ``evomal test`` prints before it trains."""
    optimizer, every = training_settings(loss, config, apply_advice=apply_advice)
    advice, preset_lr = advice_of(loss), config.meta_test.optimizer.lr
    how = f"{config.meta_test.steps} steps, lr {optimizer.lr:g}"
    if advice is not None and advice.lr_factor != 1.0:
        how += (
            f" (the preset's {preset_lr:g} x the factor {advice.lr_factor:.3g} the loss was "
            "selected at)"
            if apply_advice
            else f" (the preset's {preset_lr:g} set explicitly: the file's factor "
            f"{advice.lr_factor:.3g} not applied)"
        )
    if every is not None:
        how += f", early stopping every {every} steps"
    online = online_of(loss)
    if online is not None:
        how += f"; the loss {online.describe()}, from the file's initial weights"
    return how


def meta_test(
    loss: Any,
    task: Task,
    model: ModelLike,
    config: SearchConfig,
    *,
    seed: int,
    steps: int | None = None,
    progress: Any = None,
    val_every: int | None = None,
    apply_advice: bool = True,
) -> TrainResult:
    """Train ``model`` from seed ``seed`` with ``loss``; report validation and test metrics.

    Uses the meta-testing schedule: ``meta_test.steps``, ``meta_test.optimizer``
    and ``meta_test.batch_size``, with the learning-rate factor and early
    stopping a returned loss's file records (:func:`training_settings`;
    ``apply_advice=False`` keeps the configured lr). ``val_every`` records a
    validation curve. With the process executor on a CPU, it trains with the
    workers' thread count (:func:`selection_threads`), so that it repeats the
    final selection's run of the same seed exactly.
    """
    check_transfer(loss, task)
    optimizer, every = training_settings(loss, config, apply_advice=apply_advice)
    with _torch_threads(selection_threads(config)):
        return train(
            model,
            loss,
            task,
            steps if steps is not None else config.meta_test.steps,
            optimizer,
            batch_size=config.meta_test.batch_size,
            seed=seed,
            device=config.execution.device,
            evaluate_test=True,
            progress=progress,
            model_options=dict(config.model_options),
            val_every=val_every,
            early_stopping=every,
        )


@dataclass(frozen=True)
class MetaTestJob:
    """One meta-test for a worker: the loss as plain data (``"task"``, or a loss document
    with its training advice) and the seed."""

    loss: str | dict[str, Any]
    seed: int

    @classmethod
    def of(cls, loss: Any, seed: int) -> MetaTestJob:
        """The job for a loss object (a string loss such as ``"task"`` travels as is)."""
        if isinstance(loss, str):
            return cls(loss, seed)
        document = dict(loss.to_dict())
        advice = advice_of(loss)
        if advice is not None:
            document["training"] = advice.as_dict()
        return cls(document, seed)


def meta_test_stage(context: EvaluationContext, job: MetaTestJob) -> TrainResult:
    """Stage: :func:`meta_test` in a worker, on the context's task and model.

    The worker trains with the thread count :func:`meta_test` sets in the calling
    process (:func:`selection_threads`), so the result is the one a meta-test there gives.
    """
    from evomal.losses.io import loss_from_dict

    loss = job.loss if isinstance(job.loss, str) else loss_from_dict(job.loss)
    spec = context.spec
    return meta_test(loss, spec.tasks[0], spec.model, context.config, seed=job.seed)


def loss_to_test(result: Any) -> Any:
    """What meta-testing trains for a search's result.

    The task loss itself (``"task"``: plain ``F.cross_entropy`` / MSE, so the
    comparison with the task loss is exact) when the search returned it; else
    the returned loss, read back from the run directory when the result holds
    none in memory; ``None`` when the search produced no loss. The command
    line's meta-test and every experiment cell decide it here.
    """
    if result.task_loss:
        return "task"
    if result.best is not None:
        return result.best
    run_dir = result.run_dir
    if run_dir is not None and (run_dir / "best_loss.json").exists():
        from evomal.losses.io import load_loss

        return load_loss(run_dir / "best_loss.json")
    return None


def meta_test_beside_task_loss(
    result: Any, task: Task, model: ModelLike, config: SearchConfig
) -> tuple[Any, TrainResult, TrainResult] | None:
    """A search's returned loss, then the task loss and it meta-tested from the run seed.

    What ``evomal search`` and ``resume`` show at the end: the loss meta-testing
    trains is :func:`loss_to_test`'s, as in every experiment cell; when that is
    the task loss itself its one run is both rows. ``None`` when the search
    produced no loss.
    """
    loss = loss_to_test(result)
    if loss is None:
        return None
    baseline = meta_test("task", task, model, config, seed=config.seed)
    if loss == "task":
        return loss, baseline, baseline  # the same loss, trained the same way
    return loss, baseline, meta_test(loss, task, model, config, seed=config.seed)


def selection_threads(config: SearchConfig) -> int | None:
    """The torch thread count the final selection trained with, if not this process's.

    The process executor trains the finalists in workers that split the CPU
    cores between them; serial runs (and GPUs, and Ray, whose workers may sit
    on other machines) train in the calling process's setting (``None``).
    """
    execution = config.execution
    if execution.executor != "process" or execution.device.startswith("cuda"):
        return None
    return cpu_worker_threads(execution.workers)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (nothing when ``None``)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SeedSummary:
    """Test metrics over seeds: per seed, mean and sample standard deviation."""

    per_seed: dict[int, float | None]

    @property
    def finite(self) -> list[float]:
        return [v for v in self.per_seed.values() if v is not None and math.isfinite(v)]

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.finite) if self.finite else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.finite) if len(self.finite) > 1 else None

    @property
    def diverged(self) -> int:
        return len(self.per_seed) - len(self.finite)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ``"3"`` -> [3]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else (part, "")
                a, b = int(low), int(high)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(
                f"cannot read seeds {text!r}; use a range like 0-4 or a list like 0,2,5"
            ) from None
    if not seeds:
        raise ConfigError("no seeds given; use a range like 0-4")
    return seeds


def summarise(values: Sequence[tuple[int, float | None]]) -> SeedSummary:
    return SeedSummary(dict(values))
