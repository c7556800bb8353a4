"""Experiments: every method x every seed, searched and meta-tested, resumable.

Layout of an experiment directory::

    DIR/experiment.json                 what was asked (methods, task, model, seeds, preset)
    DIR/<method>/seed-<k>/search/       the method's run directory (resumable)
    DIR/<method>/seed-<k>/meta_test.json  the meta-test of its best loss (seed k), and of
                                        its extra rows (the zoo's tuned members; a
                                        learned method's best learned finalist)
    DIR/cache/                          training runs shared by the methods (the tuned
                                        baselines of selection.baselines=zoo), and each
                                        finished meta-test of a cell

A (method, seed) pair whose ``meta_test.json`` exists is skipped on a re-run;
a search that was interrupted is resumed from its checkpoint, and a cell
interrupted among its meta-tests (a zoo cell trains one per tuned member)
reruns only those that had not finished. The tables are built from these
files only (:mod:`evomal.report.tables`).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import torch

from evomal.config import build_config, to_dict
from evomal.errors import RunDirectoryError, UnknownNameError
from evomal.files import read_json, write_json_atomic
from evomal.losses.document import advice_of
from evomal.methods.finalists import Finalist
from evomal.methods.meta_test import loss_to_test, meta_test
from evomal.methods.registry import method_names
from evomal.methods.selection import finalist_loss
from evomal.records import FinalistRecord
from evomal.runs.store import RunStore
from evomal.runs.tasks import task_from_record, task_record
from evomal.runs.train_cache import TrainingCache
from evomal.search import resume, search
from evomal.training.loop import TrainResult

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    methods: tuple[str, ...]
    task: str
    model: str
    seeds: tuple[int, ...]
    preset: str
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None
    target: str | None = None
    kind: str | None = None

    @classmethod
    def from_options(
        cls, *, methods: str, seeds: str, overrides: Sequence[str], data_dir: object, **rest: Any
    ) -> ExperimentSpec:
        """From the command line's strings (``--methods a,b --seeds 0-4``), checking the
        preset and every ``--set`` key before anything runs."""
        from evomal.methods.meta_test import parse_seeds

        build_config(rest["preset"], overrides)  # fail fast on a bad preset or --set key
        return cls(
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            seeds=tuple(parse_seeds(seeds)),
            overrides=tuple(overrides),
            data_dir=str(data_dir) if data_dir else None,
            **rest,
        )

    @property
    def task_record(self) -> dict[str, Any]:
        """How every cell rebuilds the task (a data file's path made absolute)."""
        return task_record(self.task, data_dir=self.data_dir, target=self.target, kind=self.kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "task": self.task,
            "model": self.model,
            "seeds": list(self.seeds),
            "preset": self.preset,
            "overrides": list(self.overrides),
            "data_dir": self.data_dir,
            "target": self.target,
            "kind": self.kind,
        }


def _check(spec: ExperimentSpec, root: Path) -> None:
    unknown = [m for m in spec.methods if m not in method_names()]
    if unknown:
        raise UnknownNameError(f"unknown method(s) {unknown}; choose from {list(method_names())}")
    saved = root / "experiment.json"
    if saved.exists():
        previous = read_json(saved, "experiment description", RunDirectoryError)
        for key in ("task", "model", "preset", "overrides", "target", "kind"):
            if previous.get(key) != spec.as_dict()[key]:
                raise RunDirectoryError(
                    f"{root} holds an experiment with {key}={previous.get(key)!r}, not "
                    f"{spec.as_dict()[key]!r}; use another --out directory"
                )


def run_experiment(
    spec: ExperimentSpec, out: str | os.PathLike[str], progress: Progress | None = None
) -> Path:
    """Search and meta-test every (method, seed) pair not already done. Returns the directory."""
    root = Path(out)
    _check(spec, root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "experiment.json", spec.as_dict())
    say = progress or (lambda message: None)
    for method in spec.methods:
        for seed in spec.seeds:
            cell = root / method / f"seed-{seed}"
            if (cell / "meta_test.json").exists():
                say(f"{method} seed {seed}: done already, skipped")
                continue
            run_cell(spec, method, seed, cell, say)
    return root


def run_cell(spec: ExperimentSpec, method: str, seed: int, cell: Path, say: Progress) -> None:
    """One (method, seed): search (or resume it), then meta-test its best loss.

    A search already started is resumed, and meta-tested, with the config it
    recorded when it started, not the preset as it reads now: a preset edited
    (or an evomal upgraded) between start and resume must not change half a run.
    """
    run_dir = cell / "search"
    started = (run_dir / "config.json").exists()
    if started:
        config = RunStore(run_dir).load_config()
    else:
        config = build_config(spec.preset, spec.overrides, {"seed": seed, "method": method})
    task = task_from_record(spec.task_record, config)
    start = time.perf_counter()
    if started:
        say(f"{method} seed {seed}: resuming the search")
        result = resume(run_dir, task=task)
    else:
        say(f"{method} seed {seed}: searching")
        result = search(task, spec.model, config, out=run_dir, spec=spec.task_record,
                        cache=cell.parent.parent / CACHE)  # fmt: skip
    search_seconds = time.perf_counter() - start
    loss = loss_to_test(result)
    tester = _CachedMetaTest(
        TrainingCache(cell.parent.parent / CACHE),
        {"task": spec.task_record, "model": spec.model, "seed": seed, "config": to_dict(config),
         "threads": torch.get_num_threads()},
        task, spec.model, config, seed,
    )  # fmt: skip
    record: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "task": spec.task,
        "model": spec.model,
        # Wall time of this call only (a resumed search counts the part after the resume);
        # tables time a search by its recorded work instead (report.sources.load_cells).
        "search_seconds": round(search_seconds, 2),
        "best_fitness": result.best_fitness,
        "expression": getattr(result.best, "expression", None),
        "task_loss": result.task_loss,
        "baseline": result.baseline,
        "equals": result.equals,
        "learned": result.learned,
        "message": result.message,
        "finalists": [
            {
                "label": f["label"],
                "task_loss": f["task_loss"],
                "val_metric": f["val_metric"],
                "role": f.get("role"),
                "lr_factor": f.get("lr_factor", 1.0),
            }
            for f in result.selection or []
        ],
        "config": to_dict(config),
    }
    if loss is None:
        record.update(test_metric=None, diverged=True, reason="the search produced no loss")
    else:
        say(f"{method} seed {seed}: meta-testing for {config.meta_test.steps} steps")
        records = result.selection or []
        plan = _row_plan(method, records)
        if _expected_meta_test_seconds(records, config) >= SIDE_BY_SIDE_SECONDS:
            tester.prefetch(
                [loss, *_row_losses(records, plan, config)],
                lambda n: say(f"{method} seed {seed}: meta-testing {n} losses side by side"),
            )
        tested, online = tester(loss)
        record.update(tested)
        if online is not None:  # what adapted, beside the record (a network's weights)
            record["online"] = _keep_trace(cell, ONLINE_TRACE, online)
        record["lr_factor"] = getattr(advice_of(loss), "lr_factor", 1.0)
        record["rows"] = _extra_rows(method, result, record, tester, config, seed, say, cell,
                                     plan)  # fmt: skip
    write_json_atomic(cell / "meta_test.json", record)
    say(f"{method} seed {seed}: test {record.get('metric', 'metric')} {record['test_metric']}")


#: A cell's meta-tests run side by side on the executor's workers when one is expected to
#: take at least this long; starting the workers costs several seconds (each imports torch
#: and receives the task), more than a short meta-test (an MLP's 3,000 steps, 1-2 s) saves.
SIDE_BY_SIDE_SECONDS = 30.0


def _expected_meta_test_seconds(records: Sequence[FinalistRecord], config: Any) -> float:
    """A meta-test's expected wall time: the median of the final selection's training runs
    (the schedule a meta-test repeats), scaled by the steps when selection trained fewer;
    0 when selection recorded no run."""
    runs = [run["seconds"] for r in records for run in r.get("seeds", []) if run.get("seconds")]
    if not runs:
        return 0.0
    steps = config.meta_test.steps
    return float(statistics.median(runs)) * steps / (config.selection.steps or steps)


def _row_losses(
    records: Sequence[FinalistRecord], plan: list[tuple[str, FinalistRecord, str]], config: Any
) -> list[Any]:
    """The losses :func:`_extra_rows` meta-tests for ``plan`` (the returned finalist reuses
    the cell's own meta-test), as selection trained them."""
    returned = next((r for r in records if r.get("returned")), None)
    lr = config.meta_test.optimizer.lr
    return [finalist_loss(Finalist.from_record(r), lr) for _, r, _ in plan if r is not returned]


#: The file beside a cell's ``meta_test.json`` that holds what an online loss adapted.
ONLINE_TRACE = "online_trace.json"


def online_row_files(key: str) -> tuple[str, str]:
    """The files beside ``meta_test.json`` for an extra row whose finalist adapted online:
    what adapted (as :data:`ONLINE_TRACE`) and the finalist's loss document (its initial
    weights), so a report can draw a finalist that selection did not return."""
    return f"online_trace_{key}.json", f"online_loss_{key}.json"


def _keep_trace(cell: Path, name: str, online: dict[str, Any]) -> dict[str, Any]:
    """Write what adapted online beside the cell's record; the record's pointer to it."""
    write_json_atomic(cell / name, online)
    return {"adapts": online["adapts"], "trace": name}


#: The experiment's cache of training runs (shared tuned baselines), beside the method folders.
CACHE = "cache"


def _finished(hit: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a cache entry is a finished meta-test."""
    return isinstance(hit, dict) and "tested" in hit


def _tested(tested: TrainResult) -> dict[str, Any]:
    """A meta-test as a record: test and validation metrics and the diagnostics."""
    return {
        "test_metric": tested.test_metric,
        "val_metric": tested.val_metric,
        "diverged": tested.diverged,
        "reason": tested.reason,
        "metric": tested.metric,
        "meta_test_seconds": round(tested.seconds, 2),
        "details": tested.details,
    }


class _CachedMetaTest:
    """Meta-testing for one cell, each finished meta-test kept in the experiment's cache.

    A zoo cell meta-tests every tuned member one after another (on LeNet-5, half an
    hour of rows), and ``meta_test.json`` is written once, at the end. Keyed by the
    cell (task, model, seed, the whole config, torch's thread count) and the loss
    (its document and training advice), each meta-test is stored as it finishes, so
    a cell killed among its rows reruns only the rows that had not finished.
    """

    def __init__(
        self, cache: TrainingCache, cell_key: dict[str, Any], task: Any, model: str, config: Any,
        seed: int,
    ) -> None:  # fmt: skip
        self.cache, self.cell_key = cache, cell_key
        self.task, self.model, self.config, self.seed = task, model, config, seed

    def key(self, loss: Any) -> dict[str, Any] | None:
        """The cache key of meta-testing ``loss`` in this cell (None: not cacheable)."""
        if isinstance(loss, str):
            document: Any = loss
        elif callable(getattr(loss, "to_dict", None)):
            document = loss.to_dict()
        else:
            return None
        advice = advice_of(loss)
        return {"meta_test": self.cell_key, "loss": document,
                "training": None if advice is None else advice.as_dict()}  # fmt: skip

    def prefetch(
        self, losses: Sequence[Any], announce: Callable[[int], None] | None = None
    ) -> None:
        """Meta-test the ``losses`` not in the cache yet side by side, on the config's
        executor (the process pool's workers, or Ray's), storing each as it finishes.

        The calls that follow then read them from the cache. A meta-test in the calling
        process uses one core; a zoo cell has a dozen, and a learned method's cell two or
        three (:func:`run_cell` asks for this when selection's training runs say a
        meta-test takes at least :data:`SIDE_BY_SIDE_SECONDS`). The workers train with
        the thread count the calling process would
        (:func:`~evomal.methods.meta_test.selection_threads`), so the records are the
        same; a serial executor leaves them to the calls.
        """
        from evomal.execution.context import ContextSpec
        from evomal.methods.meta_test import MetaTestJob, meta_test_stage
        from evomal.search import make_executor
        from evomal.tasks.models.source import resolve_model

        if self.config.execution.executor in ("serial", "auto"):
            return
        missing: dict[str, tuple[dict[str, Any], Any]] = {}
        for loss in losses:
            key = self.key(loss)
            if key is not None and not _finished(self.cache.get(key)):
                missing.setdefault(json.dumps(key, sort_keys=True, default=str), (key, loss))
        todo = list(missing.values())
        if len(todo) < 2:
            return
        if announce is not None:
            announce(len(todo))
        executor = make_executor(self.config)
        model = resolve_model(self.model)
        executor.start(
            ContextSpec((self.task,), model, self.config, dict(self.config.model_options))
        )
        try:
            step = max(1, executor.workers)
            for start in range(0, len(todo), step):  # a kill loses at most one round
                chunk = todo[start : start + step]
                jobs = [MetaTestJob.of(loss, self.seed) for _, loss in chunk]
                for (key, _), tested in zip(
                    chunk, executor.map(meta_test_stage, jobs), strict=True
                ):
                    self._store(key, tested)
        finally:
            executor.close()

    def __call__(self, loss: Any) -> tuple[dict[str, Any], Any]:
        """The meta-test of ``loss`` as a record, and what adapted online (or None)."""
        key = self.key(loss)
        hit = None if key is None else self.cache.get(key)
        if _finished(hit):
            return hit["tested"], hit.get("online")
        tested = meta_test(loss, self.task, self.model, self.config, seed=self.seed)
        return self._store(key, tested)

    def _store(self, key: dict[str, Any] | None, tested: TrainResult) -> tuple[dict[str, Any], Any]:
        """A finished meta-test as a record and its online trace, kept in the cache."""
        record = _tested(tested)
        online = None if tested.online is None else tested.online.as_record()
        if key is not None:
            self.cache.put(key, {"tested": record, "online": online})
        return record, online


def _row_plan(
    method: str, records: Sequence[FinalistRecord]
) -> list[tuple[str, FinalistRecord, str]]:
    """The extra rows a cell adds beside its method's, as (row key, finalist record, label):
    the zoo's tuned members (and its task loss at the preset's lr, when tuning chose another
    lr), or a learned method's best learned finalist (and, with online trees beside the
    fixed ones, its best online finalist)."""
    if method == "zoo":
        plan = []
        for record in records:
            finalist = Finalist.from_record(record)
            key = "ce" if finalist.is_task_loss else str(finalist.family)
            plan.append((key, record, record["label"]))
        if (plain := _task_loss_at_preset_lr(records)) is not None:
            plan.append(("ce_preset", plain, "task loss at the preset's lr"))
        return plan
    # The best *learned* finalist: a learned loss that equals no seed and no zoo member
    # up to a positive scale. With online trees beside the fixed ones (online.enabled), the
    # best fixed one and the best adapting one each get a row.
    learned = [
        (value, r)
        for r in records
        if r.get("role", "learned") == "learned"
        and (value := r.get("val_metric")) is not None
        and r.get("equals") is None
    ]
    plan = []
    fixed = [(v, r) for v, r in learned if "online" not in r["document"]]
    if fixed and len(fixed) < len(learned):  # both kinds: the online tree has its own row
        online = min((p for p in learned if "online" in p[1]["document"]), key=lambda p: p[0])[1]
        plan.append(("best_online", online, f"best online: {online['label']}"))
        learned = fixed
    if learned:
        best = min(learned, key=lambda pair: pair[0])[1]
        plan.append(("best_learned", best, f"best learned: {best['label']}"))
    return plan


def _extra_rows(
    method: str, result: Any, main: dict[str, Any], tester: _CachedMetaTest, config: Any,
    seed: int, say: Progress, cell: Path, plan: list[tuple[str, FinalistRecord, str]],
) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of ``plan`` (:func:`_row_plan`), each meta-tested as selection scored it (its
    chosen lr factor, its early stopping); the finalist that was returned reuses the main
    meta-test. A finalist that adapted online keeps what adapted beside the cell
    (:func:`online_row_files`), as the returned loss does, so its trajectory can be drawn
    even when selection returned another loss.

    A row's ``val_metric`` is its own meta-test's validation metric, for every row alike
    (the table's "by validation" choices compare rows by it); ``selection_val_metric`` is
    the selection's mean over its seeds at the chosen lr factor.
    """
    records: list[FinalistRecord] = result.selection or []
    lr = config.meta_test.optimizer.lr
    returned = next((r for r in records if r.get("returned")), None)

    def row(key: str, finalist_record: FinalistRecord, label: str) -> dict[str, Any]:
        finalist = Finalist.from_record(finalist_record)
        entry = {"row": key, "label": label, "lr_factor": finalist.lr_factor,
                 "selection_val_metric": finalist.val_metric, "family": finalist.family,
                 "equals": finalist.equals, "learned": finalist.is_new}  # fmt: skip
        if finalist_record is returned:
            kept = ("test_metric", "val_metric", "diverged", "reason", "details")
            entry.update({k: main.get(k) for k in kept})
            if "online" in main:
                entry["online"] = {**main["online"], "loss": "search/best_loss.json"}
            return entry
        say(f"{method} seed {seed}: meta-testing {label}")
        tested, online = tester(finalist_loss(finalist, lr))
        entry.update(tested)
        if online is not None:
            trace_file, loss_file = online_row_files(key)
            write_json_atomic(cell / loss_file, finalist_record["document"])
            entry["online"] = {**_keep_trace(cell, trace_file, online), "loss": loss_file}
        return entry

    rows = [row(key, record, label) for key, record, label in plan]
    if method == "zoo" and rows and all(r["row"] != "ce_preset" for r in rows):
        rows.append({**rows[0], "row": "ce_preset"})  # the tuned task loss is at the preset's lr
    return rows


def _task_loss_at_preset_lr(records: Sequence[FinalistRecord]) -> FinalistRecord | None:
    """A zoo cell's task loss (its first finalist) at the preset's lr, when its tuned lr
    factor is another (None when it is 1, or there is no finalist)."""
    if not records or Finalist.from_record(records[0]).lr_factor == 1.0:
        return None
    seeds = [s for s in records[0]["seeds"] if s.get("lr_factor", 1.0) == 1.0]
    return {**records[0], "seeds": seeds}
