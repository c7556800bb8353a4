"""The final selection stage: full-schedule training on validation decides the loss returned."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evomal.config import build_config
from evomal.events import FinalistEvent
from evomal.losses import LearnedLoss, load_loss
from evomal.methods.meta_test import meta_test
from evomal.methods.selection import (
    Candidate,
    Finalist,
    FinalistRun,
    choose,
    downsample,
    paired_difference,
    top_distinct,
)
from evomal.search import resume, search
from tests.toy import linear_classification

TINY = [
    "gp.population_size=6",
    "gp.generations=2",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=100",
    "training.lr=0.1",
    "training.batch_size=32",
    "meta_test.steps=60",
    "selection.k=3",
]


def _task():
    return linear_classification(seed=4, n=300, features=6, classes=3, n_test=60)


def _candidate(label, fitness, key):
    return Candidate(label, {"kind": "symbolic"}, fitness, key)


def test_top_distinct_keeps_the_best_of_each_key_in_fitness_order():
    pool = [
        _candidate("a", 0.3, "k1"),
        _candidate("b", 0.1, "k2"),
        _candidate("c", 0.2, "k1"),
        _candidate("d", float("nan"), "k3"),
        _candidate("e", 0.4, "k4"),
    ]
    assert [c.label for c in top_distinct(pool, 5)] == ["b", "c", "e"]
    assert [c.label for c in top_distinct(pool, 2)] == ["b", "c"]
    assert top_distinct(pool, 0) == []


def _finalist(*values, task_loss=False):
    return Finalist("x", {}, None, task_loss, [FinalistRun(s, v) for s, v in enumerate(values)])


def test_choose_prefers_the_lowest_validation_and_the_task_loss_on_ties():
    for margin in (0.0, 1.0):  # with one seed the margin changes nothing
        assert (
            choose([_finalist(0.3, task_loss=True), _finalist(0.2), _finalist(0.25)], margin) == 1
        )
        assert (
            choose([_finalist(0.2, task_loss=True), _finalist(0.2), _finalist(0.25)], margin) == 0
        )
        assert (
            choose([_finalist(0.2, task_loss=True), _finalist(None), _finalist(0.3)], margin) == 0
        )
        assert (
            choose([_finalist(None, task_loss=True), _finalist(None), _finalist(0.9)], margin) == 2
        )
        assert choose([_finalist(None, task_loss=True), _finalist(None)], margin) == 0


def test_a_learned_loss_must_beat_the_task_loss_by_more_than_the_paired_noise():
    task = _finalist(0.30, 0.32, 0.34, task_loss=True)
    noisy = _finalist(0.27, 0.33, 0.33)  # mean -0.01, differences -0.03, +0.01, -0.01
    steady = _finalist(0.29, 0.315, 0.33)  # mean -0.0083, differences -0.01, -0.005, -0.01
    mean, se = paired_difference(noisy, task)
    assert mean == pytest.approx(-0.01) and se == pytest.approx(0.02 / 3**0.5)  # sd 0.02
    assert choose([task, noisy], 0.0) == 1  # the plain minimum
    assert choose([task, noisy], 1.0) == 0  # within one standard error: keep the task loss
    assert choose([task, noisy, steady], 1.0) == 2  # a smaller but consistent win qualifies
    worse = _finalist(0.31, 0.33, 0.35)
    assert choose([task, worse], 0.0) == 0


def _per_sample_finalist(errors_by_seed, task_loss=False):
    runs = [
        FinalistRun(s, float(np.mean(e)), val_samples=[float(v) for v in e])
        for s, e in enumerate(errors_by_seed)
    ]
    return Finalist("x", {}, None, task_loss, runs)


def test_with_one_seed_the_margin_counts_the_noise_of_the_validation_samples():
    """Oracle: the standard error is numpy's for the per-sample paired difference, and a win
    smaller than it keeps the task loss even with a single seed."""
    rng = np.random.default_rng(0)
    n = 2000
    task_errors = (rng.random(n) < 0.05).astype(float)
    close = task_errors.copy()  # 35 samples fixed, 30 broken: 5 fewer errors in 2,000
    fixed = rng.choice(np.flatnonzero(task_errors == 1), 40, replace=False)
    broken = rng.choice(np.flatnonzero(task_errors == 0), 30, replace=False)
    close[fixed[:35]], close[broken] = 0.0, 1.0
    clear = task_errors.copy()  # 40 fixed, nothing broken
    clear[fixed] = 0.0
    task = _per_sample_finalist([task_errors], task_loss=True)
    mean, se = paired_difference(_per_sample_finalist([close]), task)
    d = close - task_errors
    assert mean == pytest.approx(d.mean()) and mean == pytest.approx(-5 / n)
    assert se == pytest.approx(d.std(ddof=1) / np.sqrt(n))
    assert choose([task, _per_sample_finalist([close])], 0.0) == 1  # the plain minimum
    assert choose([task, _per_sample_finalist([close])], 1.0) == 0  # 5 net of 65 (se ~ 8)
    assert choose([task, _per_sample_finalist([clear])], 1.0) == 1  # 40 net of 40 (se ~ 6)


def test_seed_and_sample_noise_combine_as_independent_variances():
    rng = np.random.default_rng(1)
    task_runs = [(rng.random(500) < 0.1).astype(float) for _ in range(3)]
    mine_runs = [(rng.random(500) < 0.09).astype(float) for _ in range(3)]
    mean, se = paired_difference(
        _per_sample_finalist(mine_runs), _per_sample_finalist(task_runs, task_loss=True)
    )
    per_seed = np.array([m.mean() - t.mean() for m, t in zip(mine_runs, task_runs, strict=True)])
    per_sample = np.mean([m - t for m, t in zip(mine_runs, task_runs, strict=True)], axis=0)
    seed_se = per_seed.std(ddof=1) / np.sqrt(3)
    sample_se = per_sample.std(ddof=1) / np.sqrt(500)
    assert mean == pytest.approx(per_seed.mean())
    assert se == pytest.approx(np.hypot(seed_se, sample_se))


@given(
    st.lists(
        st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=40).map(tuple),
        min_size=2,
        max_size=8,
    ),
    st.integers(1, 3),
)
def test_the_combined_standard_error_bounds_each_source(rows, seeds):
    """Property: per-sample vectors only add noise to the per-seed estimate, never remove it."""
    n = min(len(r) for r in rows)
    vectors = [list(r[:n]) for r in rows]
    task = [vectors[i % len(vectors)] for i in range(seeds)]
    mine = [vectors[(i + 1) % len(vectors)] for i in range(seeds)]
    with_samples = paired_difference(
        _per_sample_finalist(mine), _per_sample_finalist(task, task_loss=True)
    )
    without = paired_difference(
        _finalist(*[float(np.mean(v)) for v in mine]),
        _finalist(*[float(np.mean(v)) for v in task], task_loss=True),
    )
    assert with_samples is not None and without is not None
    assert with_samples[0] == pytest.approx(without[0])
    assert with_samples[1] >= without[1] - 1e-12


def test_per_sample_metrics_survive_a_record_round_trip():
    run = FinalistRun(2, 0.5, val_samples=[0.0, 1.0, 0.0, 1.0])
    finalist = Finalist("x", {}, 0.1, False, [run])
    (back,) = Finalist.from_record(json.loads(json.dumps(finalist.record(1)))).runs
    assert back.val_samples == run.val_samples
    assert finalist.record(1)["seeds"][0]["val_samples"] == {
        "n": 4,
        "index": [1, 3],
        "value": [1.0, 1.0],
    }
    old = finalist.record(1)
    del old["seeds"][0]["val_samples"]  # a record written before per-sample metrics
    assert Finalist.from_record(old).runs[0].val_samples is None


def test_the_message_says_why_the_task_loss_was_kept():
    from evomal.methods.selection import SelectionOutcome

    task = Finalist(
        "ce (task loss)",
        {},
        None,
        True,
        [FinalistRun(s, v) for s, v in enumerate((0.30, 0.32, 0.34))],
    )
    noisy = Finalist(
        "noisy", {}, 0.4, False, [FinalistRun(s, v) for s, v in enumerate((0.27, 0.33, 0.33))]
    )
    outcome = SelectionOutcome([task, noisy], choose([task, noisy], 1.0), "classification", 1.0)
    message = outcome.message("cross-entropy")
    assert message.startswith("no learned loss beat cross-entropy on validation by more than 1")
    assert "best learned noisy at 0.31, cross-entropy 0.32" in message
    records = outcome.records
    assert records[1]["val_diff"] == pytest.approx(-0.01) and records[1]["val_diff_se"] > 0


def test_a_finalist_with_a_failed_seed_has_no_validation_metric():
    finalist = Finalist("x", {}, None, False, [FinalistRun(0, 0.1), FinalistRun(1, None, "bad")])
    assert finalist.val_metric is None
    assert Finalist(
        "x", {}, None, False, [FinalistRun(0, 0.1), FinalistRun(1, 0.3)]
    ).val_metric == (pytest.approx(0.2))


def test_downsample_averages_windows():
    assert downsample([1.0, 3.0, 5.0, 7.0], points=2) == [(2, 2.0), (4, 6.0)]
    assert downsample([], points=3) == []
    assert len(downsample([0.0] * 1000, points=100)) == 100


@pytest.mark.parametrize(
    "execution",
    [[], ["execution.executor=process", "execution.workers=2"]],
    ids=["serial", "process"],
)
def test_selection_metrics_are_exactly_the_meta_tests_validation(tmp_path, execution):
    """Oracle: a finalist's validation metric from seed s is the meta-test's own validation
    metric from seed s (same loop, same seed), so selection and meta-testing agree, also
    when the finalists trained in the process executor's workers (the meta-test then uses
    their thread count). (Batching, an option, would change float rounding: next test.)"""
    config = build_config(None, [*TINY, "seed=3", *execution])
    task = _task()
    result = search(task, "linear", config, out=tmp_path / "run")
    assert result.selection is not None and len(result.selection) >= 2
    for record in result.selection:
        loss = "task" if record["task_loss"] else load_loss_document(record["document"])
        tested = meta_test(loss, task, "linear", config, seed=3)
        assert record["val_metric"] == tested.val_metric
        (run,) = record["seeds"]
        assert run["seed"] == 3 and run["val_curve"][-1] == [60, tested.val_metric]
        assert len(run["loss_curve"]) == 60
        # The per-sample record, two ways: its mean is the validation metric.
        samples = run["val_samples"]
        assert samples["n"] == len(task.val) and set(samples["value"]) <= {1.0}
        assert len(samples["index"]) / samples["n"] == pytest.approx(tested.val_metric, abs=1e-6)


def test_batched_selection_equals_one_by_one(tmp_path, monkeypatch):
    """Oracle: finalists trained together give each finalist's one-by-one result (same
    seeds, same batches) up to float rounding, and the same loss is chosen."""
    import evomal.methods.finalists as finalists

    calls = []
    real = finalists.train_population

    def spy(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(finalists, "train_population", spy)
    base = [*TINY, "seed=3", "selection.seeds=2", "execution.batch_candidates=8"]
    assert not build_config(None, base).selection.batched  # off by default
    task = _task()
    alone = search(task, "linear", build_config(None, [*base, "selection.batched=false"]))
    assert calls == []
    together = search(task, "linear", build_config(None, [*base, "selection.batched=true"]))
    assert calls and max(calls) == len(together.selection)  # every finalist of a seed at once
    assert [r["label"] for r in together.selection] == [r["label"] for r in alone.selection]
    one_sample = 1 / len(task.val)
    for a, b in zip(alone.selection, together.selection, strict=True):
        for run_a, run_b in zip(a["seeds"], b["seeds"], strict=True):
            assert run_a["seed"] == run_b["seed"]
            assert run_b["val_metric"] == pytest.approx(run_a["val_metric"], abs=one_sample)
            curve_a = [v for _, v in run_a["loss_curve"]]
            curve_b = [v for _, v in run_b["loss_curve"]]
            np.testing.assert_allclose(curve_b, curve_a, rtol=1e-4, atol=1e-6)
    assert together.best.expression == alone.best.expression


def load_loss_document(document):
    from evomal.losses.io import loss_from_dict

    return loss_from_dict(document)


def test_selection_over_several_seeds_averages_them(tmp_path):
    config = build_config(None, [*TINY, "selection.seeds=2", "seed=1"])
    result = search(_task(), "linear", config)
    for record in result.selection:
        runs = record["seeds"]
        assert [r["seed"] for r in runs] == [1, 2]
        assert record["val_metric"] == pytest.approx(np.mean([r["val_metric"] for r in runs]))


def test_when_the_task_loss_wins_it_is_returned_and_said_so(tmp_path):
    """The only learned finalist is cross-entropy plus a constant: it trains exactly as
    cross-entropy does, so it ties, and the task loss wins the tie."""
    config = build_config(None, [*TINY, "selection.k=1"])
    from evomal.execution.base import SerialExecutor
    from evomal.methods.base import MethodRun, SearchResult
    from evomal.tasks.models.source import resolve_model

    twin = LearnedLoss("add(mul(-1, mul(y, log(fx))), 1)")
    run = MethodRun(
        method="evomal",
        task=_task().without_test(),
        model=resolve_model("linear"),
        config=config,
        executor=SerialExecutor(),
    )
    found = SearchResult(
        method="evomal",
        best=twin,
        best_fitness=0.5,
        history=[],
        run_dir=None,
        message="found",
        candidates=[Candidate(twin.expression, twin.to_dict(), 0.5, "twin")],
    )
    result = run.finish(found)
    assert result.task_loss
    assert result.best.expression == "mul(-1, mul(y, log(fx)))"
    assert result.message.startswith("no learned loss beat cross-entropy on validation")
    assert "best learned add(mul(-1, mul(y, log(fx))), 1)" in result.message


@pytest.mark.parametrize("batched", [False, True])
def test_a_run_killed_during_selection_resumes_to_the_same_result(tmp_path, batched):
    """The run is checkpointed after each group of finalists trained together: one by one,
    after every finalist; batched, after all of them here. A kill at a finalist's event
    (recorded, its group not yet checkpointed) makes the resume retrain that group only."""
    config = build_config(None, [*TINY, f"selection.batched={str(batched).lower()}"])
    full = search(_task(), "linear", config, out=tmp_path / "full")
    kill_at = 2 if batched else 3  # one by one: finalists 0 and 1 are checkpointed
    seen = []

    def kill(event):
        if isinstance(event, FinalistEvent):
            seen.append(event.index)
            if len(seen) == kill_at:
                raise KeyboardInterrupt  # as a kill after the event was recorded

    with pytest.raises(KeyboardInterrupt):
        search(_task(), "linear", config, out=tmp_path / "part", listener=kill)
    assert not (tmp_path / "part" / "result.json").exists()
    partial = json.loads((tmp_path / "part" / "selection.json").read_text())
    assert len(partial["finalists"]) == (len(full.selection) if batched else 3)
    trained_again = []
    resumed = resume(
        tmp_path / "part",
        task=_task(),
        listener=lambda e: trained_again.append(e.index) if isinstance(e, FinalistEvent) else None,
    )
    first = 0 if batched else 2
    assert trained_again == list(range(first, len(full.selection)))
    assert _untimed(resumed.selection) == _untimed(full.selection)
    assert resumed.best.to_dict() == full.best.to_dict()
    assert resumed.task_loss == full.task_loss
    saved = [json.loads((tmp_path / d / "selection.json").read_text()) for d in ("part", "full")]
    assert _untimed(saved[0]["finalists"]) == _untimed(saved[1]["finalists"])
    best = [json.loads((tmp_path / d / "best_loss.json").read_text()) for d in ("part", "full")]
    assert best[0] == best[1]


def _untimed(records):
    """Finalist records without their wall-clock seconds (the only thing a rerun changes)."""
    return [
        {**r, "seeds": [{k: v for k, v in s.items() if k != "seconds"} for s in r["seeds"]]}
        for r in records
    ]


def test_run_directory_holds_selection_json_and_finalist_files(tmp_path):
    result = search(_task(), "linear", build_config(None, TINY), out=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert saved["finalists"] == json.loads(json.dumps(result.selection))
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["selection"] == saved["finalists"]
    assert summary["task_loss"] == result.task_loss
    for record in result.selection:
        loss = load_loss(tmp_path / "run" / "finalists" / f"{record['rank']:02d}.json")
        assert loss.to_dict(None) == load_loss_document(record["document"]).to_dict(None)


def test_selection_off_returns_the_search_best():
    result = search(_task(), "linear", build_config(None, [*TINY, "selection.k=0"]))
    assert result.selection is None and not result.task_loss
    assert result.best_fitness is not None


SELECTING = ["zoo", "ml3", "hypergrad", "adalfl", "taylorglo", "glo", "gplfl", "evomal"]


@pytest.mark.parametrize("method", SELECTING)
def test_a_run_killed_during_selection_keeps_each_search_event_once(method, tmp_path):
    """A kill after the first finalist's checkpoint resumes into selection without scoring
    the search's candidates again: ``events.jsonl`` and ``generations.jsonl`` end as the
    uninterrupted run's, line for line (timings aside). The benchmark ``kill_soak.py`` found
    hypergrad writing its one candidate twice: its score was never checkpointed."""
    sets = [*TINY, f"method={method}", "selection.batched=false", "ml3.steps=3",
            "cmaes.generations=2", "cmaes.population_size=4", "selection.steps=60",
            "zoo.families=[ce, ce_es, mae]"]  # fmt: skip
    config = build_config(None, sets)
    full = search(_task(), "linear", config, out=tmp_path / "full")
    assert len(full.selection) >= 2, "the kill below needs a second finalist"
    seen = []

    def kill(event):
        if isinstance(event, FinalistEvent):
            seen.append(event.index)
            if len(seen) == 2:  # finalist 0 is checkpointed, finalist 1 is not
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(_task(), "linear", config, out=tmp_path / "part", listener=kill)
    resumed = resume(tmp_path / "part", task=_task())
    assert resumed.best.to_dict() == full.best.to_dict()
    for name in ("events.jsonl", "generations.jsonl"):
        lines = [_untimed_lines(tmp_path / d / name) for d in ("part", "full")]
        assert lines[0] == lines[1], name


def _untimed_lines(path):
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("seconds", "wall_seconds")}
        for line in path.read_text().splitlines()
    ]
