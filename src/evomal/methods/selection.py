"""The final selection stage: full-schedule training decides which loss is returned.

A short-horizon fitness is a search signal, not a result: losses that lead
after a few hundred steps can lose to cross-entropy after full training, and
their order at 300 steps can be the reverse of their order at 3,000. So after
any method's search, its top ``selection.k`` distinct candidates and the
baselines are trained for the meta-testing schedule (``selection.steps``,
default ``meta_test.steps``, with ``meta_test.optimizer``) on the training
split, over ``selection.seeds`` seeds and at every ``selection.lr_factors``
multiple of the learning rate, and scored on the validation split at each
one's best factor. The test split is never read: the search view hides it.

The baselines (``selection.baselines``) are the task loss itself
(cross-entropy or MSE, trained exactly as ``F.cross_entropy`` /
``F.mse_loss``) and, with ``zoo``, each zoo family's tuned winner
(:mod:`evomal.methods.zoo`). A learned finalist is returned only when it beats
the best baseline on validation by more than ``selection.margin_se`` standard
errors of their paired difference (:func:`choose`: the noise between seeds
and the noise of a finite validation split, sample by sample); otherwise,
and on every tie, the best baseline is returned, so a search never hands back
a loss that did worse than a baseline on validation.

Each finalist is a plain-data job per (seed, lr factor), so finalists train
on any executor, a run's cache (:class:`~evomal.runs.train_cache.TrainingCache`)
shares runs between the methods of an experiment, and the stage checkpoints
after every group of finalists: ``evomal resume`` carries on where it
stopped. Finalists train one by one with :func:`evomal.training.train`, the
very loop meta-testing uses. ``selection.batched=true`` trains the finalists
of a seed together where the run batches candidates (population batching):
the same up to float rounding, but over a full schedule rounding alone can
reorder the finalists, so it is off by default.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from evomal.events import FinalistEvent
from evomal.execution.base import map_batched
from evomal.losses.document import TrainingAdvice
from evomal.losses.io import loss_from_dict
from evomal.losses.learned import task_loss_tree
from evomal.methods.finalists import (
    BASELINE,
    LEARNED,
    TASK,
    VAL_POINTS,
    Candidate,
    Finalist,
    FinalistJob,
    FinalistRun,
    downsample,
    top_distinct,
    train_finalist,
    train_finalists,
)
from evomal.records import FinalistRecord
from evomal.training.curves import CURVE_POINTS

__all__ = [
    "BASELINE",
    "CURVE_POINTS",
    "LEARNED",
    "TASK",
    "VAL_POINTS",
    "Candidate",
    "Finalist",
    "FinalistJob",
    "FinalistRun",
    "SelectionOutcome",
    "best_baseline",
    "choose",
    "downsample",
    "paired_difference",
    "run_selection",
    "top_distinct",
    "train_finalist",
    "train_finalists",
]


class SelectionState(TypedDict):
    """The selection stage's checkpoint (key ``selection``): the finalists trained so far, in
    rank order."""

    records: list[FinalistRecord]


def paired_difference(finalist: Finalist, other: Finalist) -> tuple[float, float] | None:
    """Mean and standard error of ``finalist - other`` on validation, each at its chosen lr.

    See :func:`paired_runs`. ``None`` when either failed.
    """
    return paired_runs(finalist.chosen_runs, other.chosen_runs)


def paired_runs(
    mine: Sequence[FinalistRun], theirs: Sequence[FinalistRun]
) -> tuple[float, float] | None:
    """Mean and standard error of the difference of two finalists' runs, paired two ways.

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
    other = {r.seed: r for r in theirs}
    diffs = []
    pairs = []
    for run in mine:
        match = other.get(run.seed)
        if run.val_metric is None or match is None or match.val_metric is None:
            return None
        diffs.append(run.val_metric - match.val_metric)
        pairs.append((run.val_samples, match.val_samples))
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


def best_baseline(finalists: Sequence[Finalist]) -> int | None:
    """The index of the baseline with the lowest validation metric (ties: the earlier one)."""
    scored = [(f.val_metric, i) for i, f in enumerate(finalists)
              if f.is_baseline and f.val_metric is not None]  # fmt: skip
    return min(scored)[1] if scored else None


def _beats(finalist: Finalist, baseline: Finalist, margin_se: float) -> bool:
    paired = paired_difference(finalist, baseline)
    return paired is not None and paired[0] + margin_se * paired[1] < 0


def choose(finalists: Sequence[Finalist], margin_se: float = 0.0) -> int:
    """The index of the finalist to return: the best baseline unless a learned one beats it
    clearly enough.

    A learned finalist is *eligible* when its mean validation metric beats the
    best baseline's by more than ``margin_se`` standard errors of their paired
    difference (``mean_diff + margin_se * se < 0``, see :func:`paired_difference`;
    with one seed and no per-sample metrics, simply a lower value). The
    eligible finalist with the lowest mean wins; with none, the best baseline
    does, which also wins every tie. If every baseline failed, the learned
    finalist with the lowest mean wins.

    Why a margin: with k learned finalists against one baseline, the lowest
    of k + 1 noisy validation numbers is a learned one far more often than
    not even when none is truly better (the winner's curse). Requiring the
    win to exceed the noise of the difference, as Breiman's
    one-standard-error rule does for model selection, keeps those losses out.
    """
    base = best_baseline(finalists)
    best, best_value = (0 if base is None else base), None
    for i, finalist in enumerate(finalists):
        value = finalist.val_metric
        if finalist.is_baseline or value is None:
            continue
        if base is not None and not _beats(finalist, finalists[base], margin_se):
            continue
        if best_value is None or value < best_value:
            best, best_value = i, value
    return best


@dataclass
class SelectionOutcome:
    """The finalists (task loss first), the index of the winner, and the margin used."""

    finalists: list[Finalist]
    winner: int
    kind: str
    margin_se: float = 0.0
    lr: float | None = None  # meta_test.optimizer.lr, recorded with a returned lr factor

    @property
    def chosen(self) -> Finalist:
        return self.finalists[self.winner]

    @property
    def task_loss_won(self) -> bool:
        """The plain task loss won: cross-entropy / MSE at the configured lr, as configured."""
        chosen = self.chosen
        return chosen.is_task_loss and chosen.lr_factor == 1.0 and chosen.early_stopping is None

    @property
    def baseline_won(self) -> bool:
        return self.chosen.is_baseline

    @property
    def records(self) -> list[FinalistRecord]:
        """The finalists as plain data, the one returned marked ``returned``."""
        records = records_of(self.finalists)
        records[self.winner]["returned"] = True
        return records

    def best_loss(self) -> Any:
        """The winner as a loss module, carrying its training advice when it has any."""
        return finalist_loss(self.chosen, self.lr)

    def won_through_lr(self) -> bool:
        """A learned winner whose lead at factor 1 is within the margin: it won through its lr."""
        chosen, base = self.chosen, best_baseline(self.finalists)
        if chosen.is_baseline or base is None or chosen.lr_factor == 1.0:
            return False
        paired = paired_runs(chosen.runs_at(1.0), self.finalists[base].chosen_runs)
        return paired is None or not paired[0] + self.margin_se * paired[1] < 0

    def message(self, task_loss_name: str) -> str:
        names = {i: _name(f, task_loss_name) for i, f in enumerate(self.finalists)}
        zoo = any(f.role == BASELINE for f in self.finalists)
        against = "the tuned baselines" if zoo else task_loss_name
        learned = [(f.val_metric, i) for i, f in enumerate(self.finalists)
                   if not f.is_baseline and f.val_metric is not None]  # fmt: skip
        base = best_baseline(self.finalists)
        base_text = (
            "-"
            if base is None
            else (
                f"{names[base]}, {_fmt(self.finalists[base].val_metric)}"
                if zoo
                else f"{names[base]} {_fmt(self.finalists[base].val_metric)}"
            )
        )
        if not learned:
            if zoo and base is not None:
                return f"best tuned baseline on validation: {base_text}; returning {names[base]}"
            return (
                f"no learned loss finished selection training; returning "
                f"{names.get(self.winner, task_loss_name)} (validation "
                f"{_fmt(self.chosen.val_metric)})"
            )
        best_learned = self.finalists[min(learned)[1]]
        if self.baseline_won:
            margin = ""
            paired = None if base is None else paired_difference(best_learned, self.finalists[base])
            if paired is not None and paired[0] < 0 and self.margin_se > 0:
                margin = (
                    f" by more than {self.margin_se:g} standard error(s) of the paired "
                    f"difference ({paired[0]:+.4g} ± {paired[1]:.2g}; "
                    f"{len(best_learned.chosen_runs)} seed(s))"
                )
            value = _fmt(best_learned.val_metric)
            if zoo:
                return (
                    f"no learned loss beat {against}{margin}: best learned "
                    f"{best_learned.describe()}, {value}; best baseline {base_text}; "
                    f"returning {names[self.winner]}"
                )
            return (
                f"no learned loss beat {against} on validation{margin}: best learned "
                f"{best_learned.describe()} at {value}, {base_text}; returning {names[self.winner]}"
            )
        text = (
            f"selected {self.chosen.describe()}: validation {_fmt(self.chosen.val_metric)} "
            f"against {'the best baseline ' if zoo else ''}{base_text}"
        )
        if self.won_through_lr():
            text += (
                f" (it won through its learning rate: at the configured lr its lead is within "
                f"{self.margin_se:g} standard error(s), the implicit lr tuning of the paper's "
                "Section 5.3)"
            )
        return text


def finalist_advice(finalist: Finalist, lr: float | None) -> TrainingAdvice | None:
    """The lr factor and early stopping a finalist was scored with (None: as configured).

    ``lr`` is the configured ``meta_test.optimizer.lr``, recorded beside the factor.
    """
    if finalist.lr_factor == 1.0 and finalist.early_stopping is None:
        return None
    absolute = None if lr is None else lr * finalist.lr_factor
    return TrainingAdvice(finalist.lr_factor, absolute, finalist.early_stopping)


def finalist_loss(finalist: Finalist, lr: float | None) -> Any:
    """A finalist as the loss to train it exactly as selection scored it.

    The plain task loss is ``"task"`` (``F.cross_entropy`` / ``F.mse_loss``);
    at another lr factor or with early stopping it is the zoo's ``ce`` / ``mse``
    (the same functions) carrying that advice. Any other finalist is its
    document's loss, with its advice.
    """
    advice = finalist_advice(finalist, lr)
    if finalist.is_task_loss:
        if advice is None:
            return "task"
        from evomal.losses.zoo import ZooLoss

        loss: Any = ZooLoss("ce" if finalist.document.get("task") == "classification" else "mse")
    else:
        loss = loss_from_dict(finalist.document)
    if advice is not None:
        loss.training_advice = advice
    return loss


def _name(finalist: Finalist, task_loss_name: str) -> str:
    """A finalist as the messages name it: the task loss by its name, with any lr factor."""
    if not finalist.is_task_loss:
        return finalist.describe()
    factor = finalist.lr_factor
    return task_loss_name if factor == 1.0 else f"{task_loss_name} at {factor:.3g}x lr"


def records_of(finalists: Sequence[Finalist]) -> list[FinalistRecord]:
    """Finalists as plain data; each learned one with its paired difference to the best
    baseline (``val_diff``, ``val_diff_se``: mean and standard error, see
    :func:`paired_difference`; with ``selection.baselines=task`` the task loss)."""
    records = [f.record(i) for i, f in enumerate(finalists)]
    base = best_baseline(finalists)
    for finalist, record in zip(finalists, records, strict=True):
        if finalist.is_baseline:
            continue
        paired = None if base is None else paired_difference(finalist, finalists[base])
        record["val_diff"] = None if paired is None else paired[0]
        record["val_diff_se"] = None if paired is None else paired[1]
    return records


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4g}"


def run_selection(run: Any, candidates: Sequence[Candidate]) -> SelectionOutcome:
    """Train the baselines and the top ``selection.k`` distinct candidates; pick the best.

    ``run`` is the :class:`~evomal.methods.base.MethodRun`. With
    ``selection.baselines=zoo`` the zoo families' tuned winners join the task
    loss (:func:`evomal.methods.zoo.zoo_baselines`).
    """
    from evomal.methods.online import online_finalists
    from evomal.methods.registry import method_spec

    config = run.config
    chosen = top_distinct(candidates, config.selection.k)
    spec = method_spec(run.method)
    chosen = online_finalists(chosen, spec.online, config.online, spec.trees)
    finalists = baseline_finalists(run, zoo=config.selection.baselines == "zoo")
    finalists += [Finalist(c.label, c.document, c.fitness) for c in chosen]
    identify(run, finalists)
    train_all(run, finalists)
    margin = config.selection.margin_se
    return SelectionOutcome(
        finalists, choose(finalists, margin), run.kind, margin, config.meta_test.optimizer.lr
    )


def identify(run: Any, finalists: Sequence[Finalist]) -> None:
    """Mark each learned finalist with the zoo member it equals up to a positive scale, if any
    (:mod:`evomal.losses.identity`): such a loss is returned, but not counted as learned."""
    import torch

    from evomal.losses.identity import known_equal_document, known_losses

    task = run.task
    counts = None
    if task.kind == "classification":
        counts = torch.bincount(task.train.y.cpu(), minlength=task.n_classes).tolist()
    known = known_losses(task.kind, task.n_outputs, counts)
    for finalist in finalists:
        if finalist.role == LEARNED and "online" not in finalist.document:  # adapts: not fixed
            finalist.equals = known_equal_document(
                finalist.document, known, task.kind, task.n_outputs
            )


def baseline_finalists(run: Any, zoo: bool) -> list[Finalist]:
    """The task loss, and with ``zoo`` each zoo family's tuned winner after it."""
    task = task_loss_tree(run.kind)
    finalists = [Finalist(f"{task.expression} (task loss)", task.to_dict(), None, True)]
    if zoo:
        from evomal.methods.zoo import zoo_baselines

        finalists += zoo_baselines(run)
    return finalists


def train_all(run: Any, finalists: list[Finalist], factors: Sequence[float] | None = None) -> None:
    """Train every finalist at every (seed, lr factor), resuming and caching; in place.

    ``factors`` defaults to the config's ``selection_lr_factors``.

    Finished finalists are read back from the run's checkpoint, so a resumed
    run trains only the rest; runs already in the run's cache are not trained
    again. A :class:`~evomal.events.FinalistEvent` is emitted per finalist, and
    the run directory checkpointed, after every group.
    """
    config = run.config
    state: SelectionState | None = run.saved("selection")
    saved = state.get("records", []) if state else []
    for i, record in enumerate(saved[: len(finalists)]):
        finalists[i] = Finalist.from_record(record)
    steps = config.selection_steps
    seeds = [config.seed + s for s in range(config.selection.seeds)]
    factors = config.selection_lr_factors if factors is None else tuple(factors)
    run.start_executor()
    batch = run.batch_size if config.selection.batched else 1
    group = max(1, run.executor.workers) * max(1, batch)
    todo = list(range(len(saved), len(finalists)))
    for start in range(0, len(todo), group):
        members = todo[start : start + group]
        jobs = [
            finalists[i].job(seed, steps, f) for i in members for f in factors for seed in seeds
        ]
        results = run_jobs(run, jobs, batch)
        per = len(factors) * len(seeds)
        for n, i in enumerate(members):
            finalists[i].runs = results[n * per : (n + 1) * per]
        records = records_of(finalists[: members[-1] + 1])
        for i in members:
            run.emit(FinalistEvent(i, len(finalists), records))
        run.checkpoint("selection", SelectionState(records=records))


def run_jobs(run: Any, jobs: Sequence[FinalistJob], batch: int = 1) -> list[FinalistRun]:
    """Every job's run: from the run's cache where it has one, the rest trained on the executor."""
    cache = getattr(run, "cache", None)
    keys = [{"context": run.cache_context, "job": asdict(job), "batched": batch > 1}
            for job in jobs]  # fmt: skip
    found: list[FinalistRun | None] = [None] * len(jobs)
    if cache is not None:
        found = [None if (hit := cache.get(key)) is None else FinalistRun.from_dict(hit)
                 for key in keys]  # fmt: skip
    missing = [n for n, hit in enumerate(found) if hit is None]
    if missing:
        todo = [jobs[n] for n in missing]
        if batch > 1:  # seed-major, so that a chunk holds finalists of one seed
            order = sorted(range(len(todo)), key=lambda n: (todo[n].seed, n))
            done = map_batched(
                run.executor, train_finalist, train_finalists, [todo[n] for n in order], batch
            )
            trained: list[FinalistRun] = list(done)
            for position, n in enumerate(order):  # back to the jobs' own order
                trained[n] = done[position]
        else:
            trained = run.executor.map(train_finalist, todo)
        for n, result in zip(missing, trained, strict=True):
            found[n] = result
            if cache is not None:
                cache.put(keys[n], result.as_dict())
    return [r for r in found if r is not None]
