"""Meta-testing one loss over several seeds: the library behind ``evomal test``.

Every seed trains a fresh base model with the loss for the meta-testing
schedule (:func:`~evomal.methods.meta_test.meta_test`) and scores it on the
test split. With ``out``, the record is rewritten atomically after every seed,
and calling again with the same settings skips the seeds already in it, so a
long transfer test survives a crash or the end of a session and finishes with
the same command, like the analysis cells.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evomal.config import SearchConfig
from evomal.errors import RunDirectoryError
from evomal.files import read_json, write_json_atomic
from evomal.methods.meta_test import (
    SeedSummary,
    check_transfer,
    meta_test,
    summarise,
    training_settings,
)
from evomal.records import OnlineTraceRecord
from evomal.tasks.models.source import ModelLike
from evomal.tasks.task import Task
from evomal.training.loop import TrainResult

#: The keys of a test record that say what was tested: a re-run resumes a record only when
#: all of them match, so seeds of two different tests are never mixed.
IDENTITY = ("loss", "task", "model", "preset", "overrides", "lr", "early_stopping")


@dataclass(frozen=True)
class SeedRun:
    """One seed's meta-test, as the test record stores it."""

    seed: int
    test_metric: float | None
    val_metric: float | None
    diverged: bool
    reason: str | None
    seconds: float
    best_step: int | None
    details: dict[str, object] = field(default_factory=dict)
    metric: str = ""  # the test metric's name ("error rate", "balanced error", "MSE")
    #: for a loss that adapts online: what adapted over training (snapshots, meta-loss curve)
    online: OnlineTraceRecord | None = None

    @classmethod
    def of(cls, seed: int, outcome: TrainResult) -> SeedRun:
        return cls(
            seed=seed,
            test_metric=None if outcome.diverged else outcome.test_metric,
            val_metric=outcome.val_metric,
            diverged=outcome.diverged,
            reason=outcome.reason,
            seconds=round(outcome.seconds, 2),
            best_step=outcome.best_step,
            details=dict(outcome.details),
            metric=outcome.metric,
            online=None if outcome.online is None else outcome.online.as_record(),
        )

    def as_record(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "test_metric": self.test_metric,
            "val_metric": self.val_metric,
            "diverged": self.diverged,
            "reason": self.reason,
            "seconds": self.seconds,
            "best_step": self.best_step,
            "details": self.details,
            "metric": self.metric,
            **({} if self.online is None else {"online": self.online}),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SeedRun:
        return cls(
            seed=int(record["seed"]),
            test_metric=record.get("test_metric"),
            val_metric=record.get("val_metric"),
            diverged=bool(record.get("diverged")),
            reason=record.get("reason"),
            seconds=float(record.get("seconds") or 0.0),
            best_step=record.get("best_step"),
            details=dict(record.get("details") or {}),
            metric=str(record.get("metric") or ""),
            online=record.get("online"),
        )


@dataclass(frozen=True)
class LossTest:
    """A loss meta-tested over seeds: how it was trained, each seed, and the summary."""

    identity: dict[str, object]  # IDENTITY's keys: loss, task, model, preset, overrides, ...
    lr_factor: float
    metric: str
    seeds: tuple[int, ...]
    runs: tuple[SeedRun, ...]  # every seed on record (earlier calls' extra seeds included)

    @property
    def summary(self) -> SeedSummary:
        """Mean and std over the seeds asked for (not the extra seeds of earlier calls)."""
        by_seed = {run.seed: run.test_metric for run in self.runs}
        return summarise([(seed, by_seed.get(seed)) for seed in self.seeds])

    def record(self) -> dict[str, object]:
        """The JSON ``evomal test --out`` writes (its keys are kept from earlier versions)."""
        summary = self.summary
        return {
            **self.identity,
            "lr_factor": self.lr_factor,
            "metric": self.metric,
            "seeds": list(self.seeds),
            "runs": [run.as_record() for run in self.runs],
            "mean": summary.mean,
            "std": summary.std,
            "complete": all(any(r.seed == s for r in self.runs) for s in self.seeds),
        }


SeedProgress = Callable[[int], Any]  # seed -> a training progress callback (or None)


def meta_test_seeds(
    loss: Any,
    task_for_seed: Callable[[int], Task],
    model: ModelLike,
    config: SearchConfig,
    seeds: Sequence[int],
    *,
    identity: Mapping[str, object],
    apply_advice: bool = True,
    out: str | os.PathLike[str] | None = None,
    seed_progress: SeedProgress | None = None,
    on_seed: Callable[[SeedRun, TrainResult | None], None] | None = None,
    val_every: int | None = None,
) -> LossTest:
    """Meta-test ``loss`` from every seed in ``seeds``; resumable through ``out``.

    ``identity`` names the test (``loss``, ``task``, ``model``, ``preset``,
    ``overrides``); the learning rate and early stopping the loss trains with
    are added to it. A record already at ``out`` with the same identity is
    resumed (its seeds are not trained again); one with another identity is an
    error, so nothing on disk is overwritten. ``on_seed`` hears each seed as it
    finishes, with the training result (``None`` for a seed read back).
    """
    optimizer, every = training_settings(loss, config, apply_advice=apply_advice)
    full_identity = {**identity, "lr": optimizer.lr, "early_stopping": every}
    lr_factor = optimizer.lr / config.meta_test.optimizer.lr
    done = _resume(out, full_identity)
    metric = next((run.metric for run in done.values() if run.metric), "")
    for seed in seeds:
        if seed in done:
            if on_seed is not None:
                on_seed(done[seed], None)
            continue
        task = task_for_seed(seed)
        check_transfer(loss, task)
        outcome = meta_test(
            loss,
            task,
            model,
            config,
            seed=seed,
            progress=seed_progress(seed) if seed_progress is not None else None,
            val_every=val_every,
            apply_advice=apply_advice,
        )
        done[seed] = run = SeedRun.of(seed, outcome)
        metric = run.metric
        if out is not None:
            write_json_atomic(out, _result(full_identity, lr_factor, metric, seeds, done).record())
        if on_seed is not None:
            on_seed(done[seed], outcome)
    result = _result(full_identity, lr_factor, metric, seeds, done)
    if out is not None:
        write_json_atomic(out, result.record())
    return result


def _result(
    identity: dict[str, object], lr_factor: float, metric: str, seeds: Sequence[int],
    done: dict[int, SeedRun],
) -> LossTest:  # fmt: skip
    return LossTest(identity, lr_factor, metric, tuple(seeds), tuple(done.values()))


def _resume(out: str | os.PathLike[str] | None, identity: dict[str, object]) -> dict[int, SeedRun]:
    """The seeds a record at ``out`` already holds for this test."""
    if out is None or not Path(out).exists():
        return {}
    stored = read_json(out, "test record", RunDirectoryError)
    differs = [key for key in IDENTITY if _plain(stored.get(key)) != _plain(identity.get(key))]
    if differs:
        raise RunDirectoryError(
            f"{out} holds a test with another {', '.join(differs)} "
            f"({', '.join(f'{k}={stored.get(k)!r}' for k in differs)}); choose another --out, "
            "or move that file away to start over"
        )
    runs = [SeedRun.from_record(r) for r in stored.get("runs") or []]
    metric = str(stored.get("metric") or "")  # records before the per-seed metric name
    return {run.seed: replace(run, metric=run.metric or metric) for run in runs}


def _plain(value: object) -> object:
    """A value as JSON reads it back (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value
