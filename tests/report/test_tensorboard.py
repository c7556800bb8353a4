"""--tensorboard: the scalars written are the run's own numbers, read back from the event files."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.cli import app

TINY = ["gp.population_size=4", "gp.generations=3", "local_search.steps=2", "fitness.steps=20",
        "selection.k=1", "selection.steps=40", "meta_test.steps=40"]  # fmt: skip


def read(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(events, tag):
    return {e.step: e.value for e in events.Scalars(tag)}


def test_search_writes_the_generations_and_finalists_it_records(tmp_path):
    runner = CliRunner()
    settings = [a for s in TINY for a in ("--set", s)]
    out, logs = tmp_path / "run", tmp_path / "tb"
    args = ["search", "--task", "wine", "--model", "linear", *settings, "--out", str(out)]
    result = runner.invoke(app, [*args, "--no-meta-test", "--tensorboard", str(logs)])
    assert result.exit_code == 0, result.output
    events = read(logs)
    lines = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    best = scalars(events, "search/best_so_far")
    assert best == {g["generation"]: pytest.approx(g["best_so_far"]) for g in lines}
    evaluated = scalars(events, "filters/evaluated")
    assert evaluated == {g["generation"]: g["verdicts"]["evaluated"] for g in lines
                         if "evaluated" in g["verdicts"]}  # fmt: skip
    selection = json.loads((out / "selection.json").read_text())["finalists"]
    val = scalars(events, "selection/val_metric")
    assert sorted(val.values()) == pytest.approx(sorted(f["val_metric"] for f in selection))
    assert "search/best_expression/text_summary" in events.Tags()["tensors"]


def test_train_and_test_write_their_curves(tmp_path):
    runner = CliRunner()
    path = tmp_path / "ce.json"
    LearnedLoss.cross_entropy().save(path)
    logs = tmp_path / "train"
    trained = runner.invoke(app, ["train", "--task", "wine", "--model", "linear", "--steps", "50",
                                  "--loss", str(path), "--tensorboard", str(logs)])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    events = read(logs)
    assert len(events.Scalars("train/train_loss")) == 50
    test_line = next(line for line in trained.output.splitlines() if "test error rate" in line)
    final = events.Scalars("train/test_metric")[0].value
    assert f"{final:.4f}" in test_line
    logs = tmp_path / "test"
    tested = runner.invoke(app, ["test", "--loss", str(path), "--task", "wine", "--model",
                                 "linear", "--seeds", "0,1", "--set", "meta_test.steps=30",
                                 "--tensorboard", str(logs)])  # fmt: skip
    assert tested.exit_code == 0, tested.output
    events = read(logs)
    for seed in (0, 1):
        value = events.Scalars(f"seed-{seed}/test_metric")[0].value
        assert f"seed {seed}: test error rate {value:.4f}" in tested.output
        assert events.Scalars(f"seed-{seed}/val_metric")
