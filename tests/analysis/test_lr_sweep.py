"""The learning-rate sweep: resumable cells, and the scale/learning-rate equivalence as oracle."""

import json

import pytest
from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.analysis.cells import format_spread, losses_to_compare, mean_std
from evomal.analysis.lr_sweep import SweepPoint, best_per_loss, lr_sweep, parse_lrs, sweep_figure
from evomal.cli import app
from evomal.config import build_config
from evomal.runs.tasks import task_for
from tests.images import assert_real_image

SCHEDULE = ["meta_test.steps=40", "training.batch_size=32", "training.weight_decay=0",
            "training.momentum=0.9"]  # fmt: skip


def test_twice_the_loss_at_lr_equals_the_loss_at_twice_lr(tmp_path, float64):
    """Oracle: SGD (momentum included, no weight decay) on 2*CE at lr is CE at 2*lr."""
    doubled = LearnedLoss.from_string("mul(-1, mul(y, log(fx)))", task="classification")
    doubled.set_scale(2.0)
    doubled.save(tmp_path / "double_ce.json")
    config = build_config("quick", SCHEDULE)
    losses = losses_to_compare([tmp_path / "double_ce.json"], "classification")
    assert [s.label for s in losses] == ["cross-entropy", "double_ce"]
    points = lr_sweep(
        losses, lambda seed: task_for("wine", config, seed=seed), "linear", config,
        [0.05, 0.1], [0, 1], tmp_path / "sweep",
    )  # fmt: skip
    at = {(p.loss, p.lr): p for p in points}
    assert at[("double_ce", 0.05)].values == pytest.approx(at[("cross-entropy", 0.1)].values)
    assert len(points) == 4 and all(len(p.values) == 2 for p in points)
    summary = json.loads((tmp_path / "sweep" / "lr_sweep.json").read_text())
    assert set(summary["best"]) == {"cross-entropy", "double_ce"}
    assert_real_image(tmp_path / "sweep" / "lr_sweep.png")
    assert "| loss | lr 0.05 | lr 0.1 |" in (tmp_path / "sweep" / "lr_sweep.md").read_text()


def test_finished_cells_are_not_trained_again(tmp_path):
    config = build_config("quick", SCHEDULE)
    calls = []

    def task(seed):
        calls.append(seed)
        return task_for("wine", config, seed=seed)

    losses = losses_to_compare([], "classification")
    first = lr_sweep(losses, task, "linear", config, [0.1], [0], tmp_path)
    cell = next((tmp_path / "cells").rglob("seed-0.json"))
    stamp = cell.stat().st_mtime_ns
    again = lr_sweep(losses, task, "linear", config, [0.1], [0], tmp_path)
    assert cell.stat().st_mtime_ns == stamp and again == first


def test_best_per_loss_picks_each_loss_at_its_own_best_rate():
    from evomal.analysis.lr_sweep import SweepPoint

    points = [
        SweepPoint("a", 0.1, (0.3,), 0.3, 0.0, 0),
        SweepPoint("a", 0.3, (0.2,), 0.2, 0.0, 0),
        SweepPoint("b", 0.1, (0.25,), 0.25, 0.0, 0),
        SweepPoint("b", 0.3, (None,), None, None, 1),
    ]
    best = best_per_loss(points)
    assert (best["a"].lr, best["b"].lr) == (0.3, 0.1)


@pytest.mark.parametrize(("text", "message"), [("", "positive"), ("0.1,-1", "positive"),
                                                ("a,b", "comma-separated")])  # fmt: skip
def test_bad_learning_rate_lists_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_lrs(text)


def test_the_cli_sweeps_and_refuses_a_loss_of_the_wrong_kind(tmp_path):
    runner = CliRunner()
    path = tmp_path / "ce.json"
    LearnedLoss.cross_entropy().save(path)
    args = ["lr-sweep", "--loss", str(path), "--task", "wine", "--model", "linear",
            "--lrs", "0.1", "--seeds", "0", "--out", str(tmp_path / "out")]  # fmt: skip
    settings = [a for s in SCHEDULE for a in ("--set", s)]
    result = runner.invoke(app, [*args, *settings])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "lr_sweep.md").exists()
    mse = tmp_path / "mse.json"
    LearnedLoss.mse().save(mse)
    wrong = runner.invoke(app, ["lr-sweep", "--loss", str(mse), *args[3:]])
    assert wrong.exit_code == 2 and "learned for regression" in wrong.output


def test_one_seed_has_no_spread_rather_than_a_zero_one():
    """A single run prints its value alone: "± 0.0000" would claim a measured absence of noise."""
    assert mean_std([0.25]) == (0.25, None, 0)
    assert mean_std([0.25, None, float("nan")]) == (0.25, None, 2)
    mean, std, missing = mean_std([0.2, 0.4, None])
    assert (mean, missing) == (pytest.approx(0.3), 1) and std == pytest.approx(0.1414213562)
    assert format_spread(0.25, None) == "0.2500 (1 run)"
    assert format_spread(0.3, 0.1414213562) == "0.3000 ± 0.1414"
    assert format_spread(None, None) == "diverged"


def test_a_one_seed_sweep_table_shows_no_zero_spread(tmp_path):
    config = build_config("quick", SCHEDULE)
    losses = losses_to_compare([], "classification")
    lr_sweep(losses, lambda seed: task_for("wine", config, seed=seed), "linear", config,
             [0.1], [0], tmp_path)  # fmt: skip
    table = (tmp_path / "lr_sweep.md").read_text()
    assert "± 0.0000" not in table and "(1 run)" in table
    assert (
        json.loads((tmp_path / "lr_sweep.json").read_text())["best"]["cross-entropy"]["std"] is None
    )


def test_the_plot_uses_a_log_metric_axis_unless_a_mean_is_zero():
    """A diverged rate (0.8) beside converged ones (0.008) must not flatten them: log axis."""
    spread = [SweepPoint("cross-entropy", 0.01, (0.02,), 0.02, None, 0),
              SweepPoint("learned", 0.01, (0.008,), 0.008, None, 0),
              SweepPoint("learned", 0.1, (0.8,), 0.8, None, 0),
              SweepPoint("learned", 0.3, (None,), None, None, 1)]  # fmt: skip
    assert sweep_figure(spread).axes[0].get_yscale() == "log"
    perfect = [*spread, SweepPoint("cross-entropy", 0.1, (0.0,), 0.0, None, 0)]
    assert sweep_figure(perfect).axes[0].get_yscale() == "linear"
