"""GLO/TaylorGLO claims: data utilisation, training speed, FGSM robustness, with oracles."""

import json

import pytest
import torch
from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.analysis.cells import losses_to_compare
from evomal.analysis.claims import (
    data_utilisation,
    fgsm_accuracy,
    parse_fractions,
    robustness,
    steps_to_reach,
    training_speed,
    training_subset,
)
from evomal.cli import app
from evomal.config import build_config
from evomal.methods.meta_test import meta_test
from evomal.runs.tasks import task_for
from tests.images import assert_real_image

SCHEDULE = ["meta_test.steps=60", "training.batch_size=32"]


@pytest.fixture
def setting():
    config = build_config("quick", SCHEDULE)
    return config, (lambda seed: task_for("wine", config, seed=seed))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1.0])
def test_a_training_subset_is_a_seeded_sample_of_the_training_rows(setting, fraction):
    _, task_for_seed = setting
    task = task_for_seed(0)
    subset = training_subset(task, fraction, seed=3)
    assert len(subset.train) == max(1, round(fraction * len(task.train)))
    rows = {tuple(r.tolist()) for r in task.train.x}
    assert all(tuple(r.tolist()) in rows for r in subset.train.x)
    if fraction == 1.0:
        assert torch.equal(subset.train.x, task.train.x)  # the task itself, row for row
    again = training_subset(task, fraction, seed=3)
    assert torch.equal(again.train.x, subset.train.x)
    assert torch.equal(subset.val.x, task.val.x) and torch.equal(subset.test.x, task.test.x)


def test_all_of_the_data_is_plain_meta_testing(setting, tmp_path):
    """Oracle: the 100% column equals meta-testing on the full task."""
    config, task_for_seed = setting
    losses = losses_to_compare([], "classification")
    table = data_utilisation(losses, task_for_seed, "linear", config, [0.5, 1.0], [0, 1], tmp_path)
    direct = [
        meta_test("task", task_for_seed(s), "linear", config, seed=s).test_metric for s in (0, 1)
    ]
    assert table["cross-entropy"][1.0][0] == pytest.approx(sum(direct) / 2)
    assert_real_image(tmp_path / "data_utilisation.png")
    assert json.loads((tmp_path / "data_utilisation.json").read_text())["cross-entropy"]["1"]


def test_steps_to_reach_and_the_curve_end_at_the_final_validation_metric(setting, tmp_path):
    config, task_for_seed = setting
    assert steps_to_reach([[10, 0.5], [20, 0.2], [30, 0.1]], 0.2) == 20
    assert steps_to_reach([[10, 0.5]], 0.1) is None
    losses = losses_to_compare([], "classification")
    found = training_speed(losses, task_for_seed, "linear", config, 0.5, [0], tmp_path, every=20)
    curve = found["cross-entropy"]["curves"][0]
    assert [s for s, _ in curve] == [20, 40, 60]
    final = meta_test("task", task_for_seed(0), "linear", config, seed=0)
    assert curve[-1][1] == pytest.approx(final.val_metric)
    assert "| cross-entropy |" in (tmp_path / "training_speed.md").read_text()
    assert_real_image(tmp_path / "training_speed.png")


def test_fgsm_matches_the_analytic_attack_on_a_linear_model(setting):
    """Oracle: for logits Wx + b, grad_x CE = W^T (softmax - onehot), so the attack is known."""
    _, task_for_seed = setting
    task = task_for_seed(0)
    model = torch.nn.Linear(task.input_shape[0], task.n_outputs)
    x, y = task.augmentation.eval_batch(task.test.x), task.test.y
    with torch.no_grad():
        grad = (
            torch.softmax(model(x), 1) - torch.nn.functional.one_hot(y, task.n_outputs)
        ) @ model.weight
    epsilons = [0.0, 0.1, 0.5]
    got = fgsm_accuracy(model, task, epsilons)
    for eps, accuracy in zip(epsilons, got, strict=True):
        with torch.no_grad():
            want = float((model(x + eps * grad.sign()).argmax(1) == y).float().mean())
        assert accuracy == pytest.approx(want)


def test_robustness_at_epsilon_zero_is_the_clean_accuracy(setting, tmp_path):
    config, task_for_seed = setting
    path = tmp_path / "ce.json"
    LearnedLoss.cross_entropy().save(path)
    losses = losses_to_compare([path], "classification")
    table = robustness(losses, task_for_seed, "linear", config, [0.0, 0.2], [0], tmp_path)
    clean = 1 - meta_test("task", task_for_seed(0), "linear", config, seed=0).test_metric
    assert table["cross-entropy"][0.0][0] == pytest.approx(clean)
    assert table["ce"][0.0][0] == pytest.approx(clean, abs=1e-6)  # the CE tree trains the same


def test_the_claim_commands_run_and_check_their_input(tmp_path):
    path = tmp_path / "ce.json"
    LearnedLoss.cross_entropy().save(path)
    common = ["--loss", str(path), "--task", "wine", "--model", "linear", "--seeds", "0",
              "--set", "meta_test.steps=30"]  # fmt: skip
    runner = CliRunner()
    for command, extra, output in [
        ("data-utilisation", ["--fractions", "0.5,1"], "data_utilisation.md"),
        ("training-speed", ["--reach", "0.5", "--every", "10"], "training_speed.md"),
        ("robustness", ["--epsilons", "0,0.1"], "robustness.md"),
    ]:
        out = tmp_path / command
        result = runner.invoke(app, [command, *common, *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (out / output).exists()
        assert_real_image(out / output.replace(".md", ".png"))
    bad = runner.invoke(app, ["data-utilisation", *common, "--fractions", "0,2", "--out", "x"])
    assert bad.exit_code == 2 and "(0, 1]" in bad.output
    mse = tmp_path / "mse.json"
    LearnedLoss.mse().save(mse)
    args = ["robustness", "--task", "diabetes", "--model", "linear", "--loss", str(mse)]
    regression = runner.invoke(app, [*args, "--seeds", "0", "--out", str(tmp_path / "r")])
    assert regression.exit_code == 2 and "classification tasks only" in regression.output


def test_parse_fractions_orders_and_checks():
    assert parse_fractions("1,0.1,0.5") == [0.1, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        parse_fractions("0")


@pytest.mark.parametrize("method", ["baseline", "ml3", "taylorglo", "glo", "gplfl", "evomal"])
def test_a_run_directory_of_every_method_is_a_loss_to_analyse(experiment_dir, method, tmp_path):
    run = experiment_dir / method / "seed-0" / "search"
    losses = losses_to_compare([run], "classification")
    assert losses[1].label == f"{method} seed 0" and losses[1].loss is not None
    by_file = losses_to_compare([run / "best_loss.json"], "classification")  # labelled the same
    assert by_file[1].label == losses[1].label
    args = ["lr-sweep", "--loss", str(run), "--task", "wine", "--model", "linear", "--lrs", "0.1",
            "--seeds", "0", "--set", "meta_test.steps=20", "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"| {method} seed 0 |" in (tmp_path / "lr_sweep.md").read_text()
