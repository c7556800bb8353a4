"""The final selection stage: full-schedule training decides which loss is returned.

A short-horizon fitness is a search signal, not a result: losses that lead
after a few hundred steps can lose to cross-entropy after full training, and
their order at 300 steps can be the reverse of their order at 3,000 (issue
10). So after any method's search, its top ``selection.k`` distinct
candidates and the task loss itself (cross-entropy or MSE, trained exactly as
``F.cross_entropy`` / ``F.mse_loss``) are trained for the meta-testing
schedule (``selection.steps``, default ``meta_test.steps``, with
``meta_test.optimizer``) on the training split, over ``selection.seeds``
seeds, and scored on the validation split. The test split is never read: the
search view hides it. A learned finalist is returned only when it beats the
task loss on validation by more than ``selection.margin_se`` standard errors
of their paired difference (:func:`choose`: the noise between seeds and the
noise of a finite validation split, sample by sample); the task loss wins
otherwise and on every tie, so a search never hands back a loss that did
worse than the task loss on validation.

Each finalist is a plain-data job, so finalists train on any executor, and
the stage checkpoints after every group of finalists: ``evomal resume``
carries on where it stopped. Finalists train one by one with
:func:`evomal.training.train`, the very loop meta-testing uses, so the
selection of seed ``s`` *is* the meta-test's training run of seed ``s``.
``selection.batched=true`` trains the finalists of a seed together where the
run batches candidates (:func:`train_finalists`, population batching): the
same up to float rounding, but over a full schedule rounding alone can move a
validation error by several points and reorder the finalists, so it is an
option, off by default (see :class:`~evomal.config.SelectionConfig`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evomal.events import FinalistEvent
from evomal.execution.base import map_batched
from evomal.execution.context import EvaluationContext
from evomal.losses.io import loss_from_dict
from evomal.losses.learned import task_loss_tree
from evomal.methods.stages import describe_error
from evomal.training.loop import TrainResult, evaluate_per_sample, train
from evomal.training.population import train_population

#: Points kept of each finalist's training-loss curve.
CURVE_POINTS = 100

#: Validation-curve points per finalist run.
VAL_POINTS = 10


@dataclass(frozen=True)
class Candidate:
    """A method's candidate loss: its JSON document, search fitness and distinctness key."""

    label: str
    document: dict[str, Any]
    fitness: float
    key: str


def top_distinct(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The ``k`` candidates with the best (lowest) fitness, one per key, best first."""
    if k <= 0:
        return []
    seen: set[str] = set()
    chosen: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: c.fitness):
        if candidate.key in seen or not math.isfinite(candidate.fitness):
            continue
        seen.add(candidate.key)
        chosen.append(candidate)
        if len(chosen) == k:
            break
    return chosen


@dataclass(frozen=True)
class FinalistJob:
    """Train one finalist from one seed: ``document`` is ``None`` for the task loss."""

    document: dict[str, Any] | None
    seed: int
    steps: int


@dataclass
class FinalistRun:
    """What one finalist's training from one seed gave (validation metric and curves).

    ``val_samples`` is each validation sample's contribution to the metric (error
    indicator or squared error; its mean is ``val_metric``) when the context trains one
    task; it is ``None`` for multi-task contexts and for records written before it existed.
    """

    seed: int
    val_metric: float | None
    failed: str | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    val_samples: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "val_metric": self.val_metric,
            "failed": self.failed,
            "loss_curve": [list(p) for p in self.loss_curve],
            "val_curve": [list(p) for p in self.val_curve],
            "seconds": round(self.seconds, 3),
            "val_samples": _sparse(self.val_samples),
        }


def _sparse(values: Sequence[float] | None) -> dict[str, Any] | None:
    """A per-sample vector as its length and nonzero entries (an error-rate vector is mostly 0)."""
    if values is None:
        return None
    nonzero = [(i, v) for i, v in enumerate(values) if v != 0.0]
    return {"n": len(values), "index": [i for i, _ in nonzero], "value": [v for _, v in nonzero]}


def _dense(record: dict[str, Any] | None) -> list[float] | None:
    """The inverse of :func:`_sparse`."""
    if record is None:
        return None
    values = [0.0] * int(record["n"])
    for i, v in zip(record["index"], record["value"], strict=True):
        values[int(i)] = float(v)
    return values


def downsample(history: Sequence[float], points: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """``(step, mean loss)`` over ``points`` equal windows of a per-step history."""
    n = len(history)
    if n == 0:
        return []
    size = max(1, math.ceil(n / points))
    out = []
    for start in range(0, n, size):
        window = history[start : start + size]
        out.append((start + len(window), float(sum(window) / len(window))))
    return out


def _val_every(steps: int) -> int:
    return max(1, steps // VAL_POINTS)


def _run_of(
    job: FinalistJob,
    results: Sequence[TrainResult],
    seconds: float,
    val_samples: list[float] | None = None,
) -> FinalistRun:
    """Average one job's results over the context's training tasks."""
    bad = next((r for r in results if r.diverged or r.val_metric is None), None)
    if bad is not None:
        return FinalistRun(job.seed, None, f"diverged: {bad.reason}", seconds=seconds)
    values = [r.val_metric for r in results if r.val_metric is not None]
    if not all(math.isfinite(v) for v in values):
        return FinalistRun(job.seed, None, "non-finite validation metric", seconds=seconds)
    first = results[0]
    return FinalistRun(
        job.seed,
        sum(values) / len(values),
        None,
        downsample(first.loss_history),
        list(first.val_history),
        seconds,
        val_samples,
    )


def train_finalist(ctx: EvaluationContext, job: FinalistJob) -> FinalistRun:
    """Stage: one finalist, one seed, the full schedule; validation metric (mean over tasks)."""
    start = time.perf_counter()
    config = ctx.config
    try:
        results = []
        for j, learner in enumerate(ctx.learners):
            loss: Any = "task" if job.document is None else loss_from_dict(job.document)
            model = learner.build(job.seed + j)
            results.append(
                train(
                    model,
                    loss,
                    learner.task,
                    job.steps,
                    config.meta_test.optimizer,
                    batch_size=config.meta_test.batch_size,
                    seed=job.seed + j,
                    val_every=_val_every(job.steps),
                )
            )
        samples = None
        if len(ctx.learners) == 1 and not results[0].diverged:  # paired by sample (one task)
            samples = evaluate_per_sample(model, learner.task.val, learner.task).tolist()
    except Exception as exc:  # a fault stays inside its finalist
        return FinalistRun(job.seed, None, describe_error(exc), seconds=time.perf_counter() - start)
    return _run_of(job, results, time.perf_counter() - start, samples)


def train_finalists(ctx: EvaluationContext, jobs: list[FinalistJob]) -> list[FinalistRun]:
    """Stage: several finalists trained together, one population per (seed, steps).

    Same data order, initial weights and optimiser as :func:`train_finalist`
    (population batching shares the seed's batches), so each result equals
    that finalist trained alone up to float rounding. Falls back to one by
    one if the batched run raises.
    """
    start = time.perf_counter()
    groups: dict[tuple[int, int], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.seed, job.steps), []).append(i)
    runs: list[FinalistRun | None] = [None] * len(jobs)
    config = ctx.config
    try:
        for (seed, steps), members in groups.items():
            if len(members) == 1:
                runs[members[0]] = train_finalist(ctx, jobs[members[0]])
                continue
            losses: list[Any] = [
                "task" if jobs[i].document is None else loss_from_dict(jobs[i].document)
                for i in members
            ]
            per_task = []
            for j, learner in enumerate(ctx.learners):
                per_task.append(
                    train_population(
                        [learner.build(seed + j) for _ in members],
                        losses,
                        learner.task,
                        steps,
                        config.meta_test.optimizer,
                        batch_size=config.meta_test.batch_size,
                        seed=seed + j,
                        val_every=_val_every(steps),
                        val_samples=len(ctx.learners) == 1,
                    )
                )
            share = (time.perf_counter() - start) / len(jobs)
            for n, i in enumerate(members):
                results = [task_results[n] for task_results in per_task]
                runs[i] = _run_of(jobs[i], results, share, results[0].val_samples)
    except Exception:
        return [train_finalist(ctx, job) for job in jobs]
    return [run for run in runs if run is not None]


@dataclass
class Finalist:
    """A loss entering selection, and what its training runs gave.

    The task loss carries its tree's document, but trains as plain
    ``F.cross_entropy`` / ``F.mse_loss`` (its job's document is ``None``).
    """

    label: str
    document: dict[str, Any]
    fitness: float | None
    is_task_loss: bool = False
    runs: list[FinalistRun] = field(default_factory=list)

    @property
    def job_document(self) -> dict[str, Any] | None:
        return None if self.is_task_loss else self.document

    @property
    def val_metric(self) -> float | None:
        """Mean validation metric over the seeds; ``None`` if any run failed."""
        if not self.runs or any(r.val_metric is None for r in self.runs):
            return None
        return statistics.fmean(r.val_metric for r in self.runs if r.val_metric is not None)

    def record(self, rank: int) -> dict[str, Any]:
        """The finalist as plain data (``selection.json``, ``result.json``, checkpoints)."""
        return {
            "rank": rank,
            "label": self.label,
            "task_loss": self.is_task_loss,
            "search_fitness": self.fitness,
            "val_metric": self.val_metric,
            "seeds": [r.as_dict() for r in self.runs],
            "document": self.document,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Finalist:
        runs = [
            FinalistRun(
                r["seed"],
                r["val_metric"],
                r.get("failed"),
                [tuple(p) for p in r.get("loss_curve", [])],
                [tuple(p) for p in r.get("val_curve", [])],
                r.get("seconds", 0.0),
                _dense(r.get("val_samples")),
            )
            for r in record["seeds"]
        ]
        return cls(
            record["label"], record["document"], record["search_fitness"], record["task_loss"], runs
        )


@dataclass
class SelectionOutcome:
    """The finalists (task loss first), the index of the winner, and the margin used."""

    finalists: list[Finalist]
    winner: int
    kind: str
    margin_se: float = 0.0

    @property
    def task_loss_won(self) -> bool:
        return self.finalists[self.winner].is_task_loss

    @property
    def records(self) -> list[dict[str, Any]]:
        return records_of(self.finalists)

    def best_loss(self) -> Any:
        return loss_from_dict(self.finalists[self.winner].document)

    def message(self, task_loss_name: str) -> str:
        task = self.finalists[0]
        learned = [f for f in self.finalists[1:] if f.val_metric is not None]
        best_learned = min(learned, key=lambda f: f.val_metric or math.inf, default=None)
        task_val = _fmt(task.val_metric)
        if best_learned is None:
            return (
                f"no learned loss finished selection training; returning {task_loss_name} "
                f"(validation {task_val})"
            )
        if self.task_loss_won:
            paired = paired_difference(best_learned, task)
            margin = ""
            if paired is not None and paired[0] < 0 and self.margin_se > 0:
                margin = (
                    f" by more than {self.margin_se:g} standard error(s) of the paired "
                    f"difference ({paired[0]:+.4g} ± {paired[1]:.2g}; "
                    f"{len(best_learned.runs)} seed(s))"
                )
            return (
                f"no learned loss beat {task_loss_name} on validation{margin}: best learned "
                f"{best_learned.label} at {_fmt(best_learned.val_metric)}, {task_loss_name} "
                f"{task_val}; returning {task_loss_name}"
            )
        winner = self.finalists[self.winner]
        return (
            f"selected {winner.label}: validation {_fmt(winner.val_metric)} against "
            f"{task_loss_name} {task_val}"
        )


def records_of(finalists: Sequence[Finalist]) -> list[dict[str, Any]]:
    """Finalists as plain data; each learned one with its paired difference to the task loss
    (``val_diff``, ``val_diff_se``: mean and standard error, see :func:`paired_difference`)."""
    records = [f.record(i) for i, f in enumerate(finalists)]
    for finalist, record in zip(finalists[1:], records[1:], strict=True):
        paired = paired_difference(finalist, finalists[0])
        record["val_diff"] = None if paired is None else paired[0]
        record["val_diff_se"] = None if paired is None else paired[1]
    return records


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4g}"


def paired_difference(finalist: Finalist, task: Finalist) -> tuple[float, float] | None:
    """Mean and standard error of ``finalist - task`` on validation, paired two ways.

    Both trained from the same seeds (same initial weights and batches) and were
    scored on the same validation samples, so the differences pair up by seed and
    by sample. Two sources of noise are combined (as independent variances):

    * between seeds: the standard error of the per-seed differences (0 with one seed);
    * between samples: the standard error of the per-sample differences, averaged over
      the seeds, when every run kept its per-sample metric. With one seed this is all
      the noise there is to see: the meta-test of seed ``s`` repeats the selection's
      training run of seed ``s``, and only the samples (validation against test) differ.

    ``None`` when either failed.
    """
    mine = {r.seed: r for r in finalist.runs}
    theirs = {r.seed: r for r in task.runs}
    diffs = []
    pairs = []
    for seed, run in mine.items():
        other = theirs.get(seed)
        if run.val_metric is None or other is None or other.val_metric is None:
            return None
        diffs.append(run.val_metric - other.val_metric)
        pairs.append((run.val_samples, other.val_samples))
    if not diffs:
        return None
    seed_se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    sample_se = _sample_se(pairs)
    return statistics.fmean(diffs), math.hypot(seed_se, sample_se)


def _sample_se(pairs: Sequence[tuple[list[float] | None, list[float] | None]]) -> float:
    """Standard error of the mean per-sample difference (averaged over seeds); 0 if unknown."""
    vectors = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not vectors or len(vectors) != len(pairs):
        return 0.0
    n = len(vectors[0][0])
    if n < 2 or any(len(a) != n or len(b) != n for a, b in vectors):
        return 0.0
    per_sample = [statistics.fmean(a[i] - b[i] for a, b in vectors) for i in range(n)]
    return statistics.stdev(per_sample) / math.sqrt(n)


def choose(finalists: Sequence[Finalist], margin_se: float = 0.0) -> int:
    """The index of the finalist to return: the task loss (index 0) unless a learned one
    beats it clearly enough.

    A learned finalist is *eligible* when its mean validation metric beats the
    task loss's by more than ``margin_se`` standard errors of their paired
    difference (``mean_diff + margin_se * se < 0``, see :func:`paired_difference`;
    with one seed and no per-sample metrics, simply a lower value). The
    eligible finalist with the lowest mean wins; with none, the task loss does,
    which also wins every tie. If the task loss failed, the learned finalist
    with the lowest mean wins.

    Why a margin: with k learned finalists against one task loss, the lowest
    of k + 1 noisy validation numbers is a learned one far more often than
    not even when none is truly better (the winner's curse). Requiring the
    win to exceed the noise of the difference, as Breiman's
    one-standard-error rule does for model selection, keeps those losses out.
    """
    task = finalists[0]
    best, best_value = 0, None
    for i, finalist in enumerate(finalists[1:], start=1):
        value = finalist.val_metric
        if value is None:
            continue
        if task.val_metric is not None:
            paired = paired_difference(finalist, task)
            if paired is None or not paired[0] + margin_se * paired[1] < 0:
                continue
        if best_value is None or value < best_value:
            best, best_value = i, value
    return best


def run_selection(run: Any, candidates: Sequence[Candidate]) -> SelectionOutcome:
    """Train the task loss and the top ``selection.k`` distinct candidates; pick the best.

    ``run`` is the :class:`~evomal.methods.base.MethodRun`. Finished
    finalists are read back from its checkpoint, so a resumed run trains
    only the rest; a :class:`~evomal.events.FinalistEvent` is emitted (and
    the run directory checkpointed) after every group.
    """
    config = run.config
    chosen = top_distinct(candidates, config.selection.k)
    task = task_loss_tree(run.kind)
    finalists = [Finalist(f"{task.expression} (task loss)", task.to_dict(), None, True)]
    finalists += [Finalist(c.label, c.document, c.fitness) for c in chosen]
    saved = (run.resume_from or {}).get("selection", {}).get("records", [])
    for i, record in enumerate(saved[: len(finalists)]):
        finalists[i] = Finalist.from_record(record)
    steps = config.selection_steps
    seeds = [config.seed + s for s in range(config.selection.seeds)]
    run.start_executor()
    batch = run.batch_size if config.selection.batched else 1
    group = max(1, run.executor.workers) * max(1, batch)
    todo = list(range(len(saved), len(finalists)))
    for start in range(0, len(todo), group):
        members = todo[start : start + group]
        jobs = [
            FinalistJob(finalists[i].job_document, seed, steps) for i in members for seed in seeds
        ]
        if batch > 1:  # seed-major, so that a chunk holds finalists of one seed
            order = sorted(range(len(jobs)), key=lambda n: (jobs[n].seed, n))
            done = map_batched(
                run.executor, train_finalist, train_finalists, [jobs[n] for n in order], batch
            )
            results = list(done)
            for position, n in enumerate(order):  # back to the jobs' own order
                results[n] = done[position]
        else:
            results = run.executor.map(train_finalist, jobs)
        for n, i in enumerate(members):
            finalists[i].runs = results[n * len(seeds) : (n + 1) * len(seeds)]
        records = records_of(finalists[: members[-1] + 1])
        payload = {**run.last_checkpoint, "selection": {"records": records}}
        for i in members:
            run.emit(FinalistEvent(i, len(finalists), records[: i + 1], payload))
    margin = config.selection.margin_se
    return SelectionOutcome(finalists, choose(finalists, margin), run.kind, margin)
