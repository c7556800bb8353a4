"""``--method zoo`` and ``selection.baselines=zoo``: tuned baselines as the yardstick."""

import json

import pytest

import evomal.methods.finalists as finalists_module
from evomal.config import build_config
from evomal.events import FinalistEvent
from evomal.losses import load_loss
from evomal.losses.document import TrainingAdvice
from evomal.losses.zoo import ZooLoss
from evomal.methods.finalists import BASELINE, Finalist, FinalistRun
from evomal.methods.meta_test import meta_test, training_settings
from evomal.methods.selection import SelectionOutcome, choose, finalist_advice
from evomal.methods.zoo import winning_params, zoo_families
from evomal.search import resume, search
from tests.toy import linear_classification

ZOO = [
    "method=zoo",
    "training.lr=0.1",
    "training.batch_size=32",
    "meta_test.steps=60",
    "selection.seeds=2",
    "zoo.families=[ce, gce, mae, ce_es]",
    "zoo.grids={gce: [[0.5], [0.7]]}",
    "zoo.lr_factors=[0.5, 1]",
    "meta_test.early_stopping.every=20",
]


def _task():
    return linear_classification(seed=4, n=300, features=6, classes=3, n_test=60).with_label_noise(
        0.3
    )


def test_the_zoo_returns_its_best_finalist_on_validation_with_its_lr(tmp_path):
    config = build_config(None, ZOO)
    result = search(_task(), "linear", config, out=tmp_path / "zoo")
    records = result.selection
    assert [r["family"] for r in records[1:]] == ["gce", "mae", "ce_es"]
    assert records[3]["label"] == "cross-entropy + early stopping"
    assert records[3]["early_stopping"] == 20
    assert records[0]["task_loss"] and all(r["role"] == BASELINE for r in records[1:])
    values = [r["val_metric"] for r in records]
    winner = min(range(len(values)), key=lambda i: (values[i], i))
    assert records[winner]["returned"]
    chosen = Finalist.from_record(records[winner])
    # Each finalist trained at both factors from both seeds, scored at its best factor.
    for record in records:
        finalist = Finalist.from_record(record)
        assert sorted((r.seed, r.lr_factor) for r in finalist.runs) == [
            (0, 0.5),
            (0, 1.0),
            (1, 0.5),
            (1, 1.0),
        ]
        assert finalist.val_metric == min(finalist.mean_at(0.5), finalist.mean_at(1.0))
    saved = json.loads((tmp_path / "zoo" / "best_loss.json").read_text())
    if chosen.lr_factor != 1.0 or chosen.early_stopping is not None:
        assert saved["training"]["lr_factor"] == chosen.lr_factor
        assert saved["training"]["lr"] == pytest.approx(0.1 * chosen.lr_factor)
    grid = json.loads((tmp_path / "zoo" / "zoo_grid.json").read_text())["cells"]
    assert sorted((c["family"], c["params"][0], c["lr_factor"]) for c in grid) == [
        ("gce", 0.5, 0.5),
        ("gce", 0.5, 1.0),
        ("gce", 0.7, 0.5),
        ("gce", 0.7, 1.0),
    ]


def test_the_grid_winner_is_the_lowest_mean_with_ties_to_the_default_then_factor_one():
    config = build_config(None, ["zoo.grids={gce: [[0.5], [0.7], [0.3]]}"])

    def cell(q, factor, value):
        return {"family": "gce", "params": [q], "lr_factor": factor, "val_metric": value}

    assert winning_params("gce", [cell(0.5, 1, 0.3), cell(0.3, 1, 0.2)], config) == (0.3,)
    tied = [cell(0.5, 1.0, 0.2), cell(0.7, 3.0, 0.2), cell(0.3, 1.0, 0.2)]
    assert winning_params("gce", tied, config) == (0.7,)  # the family's default, 0.7
    assert winning_params("gce", [cell(0.5, 3.0, 0.2), cell(0.3, 1.0, 0.2)], config) == (0.3,)


def test_auto_families_follow_the_task_and_its_metric():
    config = build_config(None, [])
    task = _task()
    assert "ce_es" in zoo_families(config, task)
    assert "logit_adjust" not in zoo_families(config, task)
    assert "logit_adjust" in zoo_families(config, task.with_metric("balanced_error"))
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        zoo_families(build_config(None, ["zoo.families=[nope]"]), task)


def _finalist(label, runs, role="learned"):
    made = Finalist(label, {}, None, role=role)
    made.runs = [FinalistRun(seed, value, lr_factor=factor) for seed, factor, value in runs]
    return made


def test_a_learned_loss_must_beat_the_best_baseline_not_just_the_task_loss():
    task = _finalist("ce", [(0, 1.0, 0.50), (1, 1.0, 0.52)], role="task")
    gce = _finalist("gce", [(0, 1.0, 0.40), (1, 1.0, 0.41)], role=BASELINE)
    learned = _finalist("tree", [(0, 1.0, 0.45), (1, 1.0, 0.44)])
    assert choose([task, gce, learned]) == 1  # beats cross-entropy, not the tuned gce
    better = _finalist("tree", [(0, 1.0, 0.30), (1, 1.0, 0.31)])
    assert choose([task, gce, better]) == 2
    outcome = SelectionOutcome([task, gce, learned], 1, "classification", 0.0, 0.05)
    assert outcome.message("cross-entropy") == (
        "no learned loss beat the tuned baselines: best learned tree, 0.445; best baseline "
        "gce, 0.405; returning gce"
    )


def test_a_loss_that_wins_only_through_its_lr_is_said_to():
    task = _finalist("ce", [(0, 1.0, 0.50), (1, 1.0, 0.50)], role="task")
    learned = _finalist("tree", [(0, 1.0, 0.50), (1, 1.0, 0.50), (0, 3.0, 0.40), (1, 3.0, 0.41)])
    outcome = SelectionOutcome(
        [task, learned], choose([task, learned]), "classification", 0.0, 0.05
    )
    assert outcome.winner == 1 and learned.lr_factor == 3.0
    assert outcome.won_through_lr()
    assert "won through its learning rate" in outcome.message("cross-entropy")
    assert finalist_advice(learned, 0.05) == TrainingAdvice(3.0, pytest.approx(0.15), None)
    strong = _finalist("tree", [(0, 1.0, 0.30), (1, 1.0, 0.31), (0, 3.0, 0.20), (1, 3.0, 0.21)])
    outcome = SelectionOutcome([task, strong], choose([task, strong]), "classification", 0.0)
    assert outcome.winner == 1 and not outcome.won_through_lr()


def test_a_recorded_lr_factor_applies_to_the_target_config_unless_the_lr_is_set():
    config = build_config("quick", ["meta_test.optimizer.lr=0.02"])
    loss = ZooLoss("gce", [0.7])
    loss.training_advice = TrainingAdvice(3.0, 0.15, 100)
    optimizer, every = training_settings(loss, config)
    assert optimizer.lr == pytest.approx(0.06) and every == 100
    optimizer, _ = training_settings(loss, config, apply_advice=False)
    assert optimizer.lr == pytest.approx(0.02)


def test_the_returned_loss_file_round_trips_its_training_advice(tmp_path, monkeypatch):
    loss = ZooLoss("gce", [0.5])
    loss.training_advice = TrainingAdvice(0.5, 0.05, None)
    loss.save(tmp_path / "loss.json")
    again = load_loss(tmp_path / "loss.json")
    assert again.training_advice == loss.training_advice
    task = linear_classification(seed=1, n=200, features=4, classes=3, n_test=40)
    config = build_config(None, ["meta_test.steps=20", "training.lr=0.1"])
    seen = []
    import evomal.methods.meta_test as meta_test_module

    real = meta_test_module.train

    def spy(model, the_loss, the_task, steps, optimizer, **kwargs):
        seen.append(optimizer.lr)
        return real(model, the_loss, the_task, steps, optimizer, **kwargs)

    monkeypatch.setattr(meta_test_module, "train", spy)
    meta_test(again, task, "linear", config, seed=0)
    assert seen == [pytest.approx(0.05)]


def test_search_against_the_zoo_shares_the_baselines_runs_through_the_cache(tmp_path, monkeypatch):
    trained = []
    real = finalists_module.train_finalist

    def count(ctx, job):
        trained.append(job)
        return real(ctx, job)

    monkeypatch.setattr(finalists_module, "train_finalist", count)
    import evomal.methods.selection as selection

    monkeypatch.setattr(selection, "train_finalist", count)
    cache = tmp_path / "cache"
    zoo = search(_task(), "linear", build_config(None, ZOO), out=tmp_path / "zoo", cache=cache)
    first = len(trained)
    assert first > 0
    learned = [*ZOO[1:], "method=evomal", "gp.population_size=4", "gp.generations=2",
               "local_search.steps=2", "fitness.steps=20", "filters.rejection_steps=100",
               "selection.k=2", "selection.baselines=zoo"]  # fmt: skip
    trained.clear()
    result = search(_task(), "linear", build_config(None, learned), out=tmp_path / "evo",
                    cache=cache)  # fmt: skip
    # Only the learned finalists trained: every baseline run came from the zoo's cache.
    assert trained and all(job.document is not None for job in trained)
    assert {j.document.get("kind") for j in trained} <= {"symbolic"}
    baselines = [r for r in result.selection if r["role"] != "learned"]
    assert [r["label"] for r in baselines] == [r["label"] for r in zoo.selection]
    assert [r["val_metric"] for r in baselines] == [r["val_metric"] for r in zoo.selection]


def test_a_zoo_run_killed_during_its_finalists_resumes_to_the_same_result(tmp_path):
    config = build_config(None, ZOO)
    full = search(_task(), "linear", config, out=tmp_path / "full")
    seen = []

    def kill_after_two(event):
        if isinstance(event, FinalistEvent):
            seen.append(event.index)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(_task(), "linear", config, out=tmp_path / "part", listener=kill_after_two)
    resumed = resume(tmp_path / "part", task=_task())

    def untimed(records):
        return [{**r, "seeds": [{k: v for k, v in s.items() if k != "seconds"}
                                for s in r["seeds"]]} for r in records]  # fmt: skip

    assert untimed(resumed.selection) == untimed(full.selection)
    assert resumed.best.to_dict() == full.best.to_dict()
