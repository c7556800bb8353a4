"""The command line: commands run, and user errors are one clear line with exit code 2."""

import json

import pytest
import torch
from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.cli import app

runner = CliRunner()


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output
    assert runner.invoke(app, ["--version"]).output.startswith("evomal ")


def test_demo_runs():
    result = runner.invoke(app, ["demo", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "F.cross_entropy" in result.output and "phi" in result.output


def test_show_valid_and_invalid_files(tmp_path):
    good = tmp_path / "good.json"
    LearnedLoss.from_string("mul(y, log(fx))", phi=[2.0, 1.0, 1.0]).save(good)
    result = runner.invoke(app, ["show", str(good)])
    assert result.exit_code == 0 and "mul(y, log(fx))" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"format": "evomal-loss", "version": 1, "kind": "symbolic", "expression": "mul(y,'
    )
    result = runner.invoke(app, ["show", str(bad)])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    assert bad.read_text().endswith("mul(y,")  # nothing on disk was touched


TINY = [
    "--set",
    "gp.population_size=4",
    "--set",
    "gp.generations=2",
    "--set",
    "local_search.steps=2",
    "--set",
    "fitness.steps=20",
    "--set",
    "filters.rejection_steps=100",
    "--set",
    "meta_test.steps=30",
]


def test_train_prints_the_test_metric():
    result = runner.invoke(app, ["train", "--task", "digits", "--model", "linear", "--steps", "40"])
    assert result.exit_code == 0, result.output
    assert "test error rate" in result.output


def test_train_with_a_saved_loss_and_a_bad_loss(tmp_path):
    path = tmp_path / "loss.json"
    LearnedLoss.cross_entropy().save(path)
    ok = runner.invoke(
        app, ["train", "--task", "wine", "--model", "linear", "--steps", "20", "--loss", str(path)]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["train", "--task", "wine", "--loss", str(tmp_path / "nope.json")])
    assert bad.exit_code == 2
    assert "neither ce, mse, task, an existing loss file" in bad.output
    mismatch = runner.invoke(
        app, ["train", "--task", "diabetes", "--loss", str(path), "--steps", "5"]
    )
    assert mismatch.exit_code == 2
    assert "learned for classification" in mismatch.output


def test_search_then_meta_test_against_the_baseline(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["search", "--task", "digits", "--model", "linear", *TINY, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Selection: finalists" in result.output
    assert "Meta-test" in result.output
    assert "validation error rate" in result.output and "test error rate" in result.output
    assert "cross-entropy" in result.output
    assert "returned:" in result.output
    assert (out / "checkpoint.json").exists() and (out / "selection.json").exists()


ZOO_TINY = [
    "--set",
    "meta_test.steps=40",
    "--set",
    "zoo.families=[ce, gce, mae]",
    "--set",
    "zoo.grids={gce: [[0.5], [0.7]]}",
    "--set",
    "zoo.lr_factors=[0.5, 1]",
]


def test_the_zoo_and_a_search_against_it_from_the_command_line(tmp_path):
    noisy = ["--task", "wine", "--model", "linear", "--set", "data.label_noise=0.3"]
    result = runner.invoke(
        app, ["search", "--method", "zoo", *noisy, *ZOO_TINY, "--out", str(tmp_path / "zoo")]
    )
    assert result.exit_code == 0, result.output
    assert "realised flip rate" in result.output
    assert "Selection: finalists" in result.output and "baseline" in result.output
    assert (tmp_path / "zoo" / "zoo_grid.json").exists()
    search = ["search", *noisy, *TINY, *ZOO_TINY, "--set", "selection.baselines=zoo"]
    result = runner.invoke(app, [*search, "--out", str(tmp_path / "evo")])
    assert result.exit_code == 0, result.output
    assert "returned:" in result.output
    summary = json.loads((tmp_path / "evo" / "result.json").read_text())
    if summary["learned"]:
        assert "learned: the returned loss equals no seed" in result.output
    elif summary["baseline"]:
        assert f"not learned: the returned loss is the baseline {summary['baseline']}" in (
            " ".join(result.output.split())
        )
    returned = str(tmp_path / "evo" / "best_loss.json")
    tested = runner.invoke(
        app, ["test", "--loss", returned, *noisy, "--seeds", "0", "--set", "meta_test.steps=40"]
    )
    assert tested.exit_code == 0, tested.output
    assert "training: 40 steps, lr" in tested.output and "memorised" in tested.output


def test_unknown_set_key_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["search", "--set", "gp.populaton_size=3", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown config key" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["training.momentum=1.5", "meta_test.optimizer.gamma=0"])
def test_a_bad_optimiser_value_stops_the_search_before_it_starts(tmp_path, bad):
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "--set", bad, "--out", str(out)])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_resume_a_stopped_run_from_the_cli(tmp_path):
    from evomal.config import build_config
    from evomal.search import search
    from evomal.tasks import get_task

    config = build_config("quick", [arg for arg in TINY if arg != "--set"])
    out = tmp_path / "run"
    spec = {"task": "digits", "model": "linear", "data_dir": None}
    search(get_task("digits"), "linear", config, out=out, spec=spec, max_generations=1)
    result = runner.invoke(app, ["resume", str(out), "--no-meta-test"])
    assert result.exit_code == 0, result.output
    assert (out / "result.json").exists()
    missing = runner.invoke(app, ["resume", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert "not an evomal run directory" in missing.output or "does not exist" in missing.output


def test_listing_commands_and_data_get_errors():
    assert runner.invoke(app, ["tasks"]).exit_code == 0
    models = runner.invoke(app, ["models"])
    assert models.exit_code == 0
    assert "resnet18" in models.output
    result = runner.invoke(app, ["data", "get", "cifar10"])
    assert result.exit_code == 2
    assert "knows mnist only" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_search_on_cuda_without_cuda_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--task", "wine", "--model", "linear", "--device", "cuda"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "no usable CUDA" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    trained = runner.invoke(app, ["train", "--task", "wine", "--device", "cuda", "--steps", "2"])
    assert trained.exit_code == 2
    assert "no usable CUDA" in trained.output


@pytest.mark.parametrize("kind", ["taylor", "neural"])
def test_show_and_train_accept_every_kind_of_loss_file(tmp_path, kind):
    """`show`, `train` and `test` read loss files through one loader (issue 11 bug)."""
    import numpy as np

    from evomal.losses import NeuralLoss, TaylorLoss
    from evomal.losses.neural import NeuralLossFunction

    if kind == "taylor":
        loss = TaylorLoss(np.linspace(-0.1, 0.1, 8))
    else:
        loss = NeuralLoss(NeuralLossFunction().initial_params(0))
    path = tmp_path / f"{kind}.json"
    loss.save(path)
    shown = runner.invoke(app, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert type(loss).__name__ in shown.output
    trained = runner.invoke(
        app, ["train", "--task", "wine", "--model", "linear", "--steps", "5", "--loss", str(path)]
    )
    assert trained.exit_code == 0, trained.output
    assert "test error rate" in trained.output


def test_out_pointing_at_a_file_is_one_line_and_leaves_the_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    result = runner.invoke(
        app, ["search", "--task", "wine", "--model", "linear", "--out", str(target)]
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "is a file, not a directory" in result.output
    assert target.read_text() == "my notes"


@pytest.mark.parametrize(
    ("key", "closest"),
    [("gp.populaton_size", "gp.population_size"), ("gp.no_such_key", "gp."),
     ("fitness.stpes", "fitness.steps"), ("selction", "selection")],
)  # fmt: skip
def test_an_unknown_key_names_the_closest_one_on_one_line(tmp_path, key, closest):
    result = runner.invoke(app, ["search", "--set", f"{key}=3", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert f"unknown config key {key}; did you mean {closest}" in result.output


def test_a_missing_idx_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", "--task", f"idx:{tmp_path / 'none'}"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "no folder" in result.output


def test_every_analysis_command_takes_the_shared_options_from_one_place():
    """data-utilisation, training-speed, robustness, lr-sweep and landscape are built by
    analysis_command from ANALYSIS_OPTIONS (landscape with its own --seed)."""
    import inspect

    from evomal import cli

    shared = {p.name for p in cli.ANALYSIS_OPTIONS}
    commands = {
        "data_utilisation_command": shared,
        "training_speed_command": shared,
        "robustness": shared,
        "lr_sweep_command": shared,
        "landscape": (shared - {"seeds"}) | {"seed"},
    }
    for name, expected in commands.items():
        params = inspect.signature(getattr(cli, name)).parameters
        assert expected <= set(params), name
        for option in cli.ANALYSIS_OPTIONS:
            if option.name in params:
                assert params[option.name].default is option.default, (name, option.name)


def test_test_with_out_resumes_its_seeds_and_refuses_another_loss(tmp_path):
    """`evomal test --out` rewrites its record after each seed; the same command again reads
    the finished seeds back, and a different loss with the same --out is one line, file kept."""
    out = tmp_path / "ce.json"
    base = ["test", "--task", "wine", "--model", "linear", "--set", "meta_test.steps=30",
            "--out", str(out)]  # fmt: skip
    first = runner.invoke(app, [*base, "--loss", "ce", "--seeds", "0-1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, [*base, "--loss", "ce", "--seeds", "0-2"])
    assert again.exit_code == 0, again.output
    assert again.output.count("read back from") == 2 and "seed 2: test error rate" in again.output
    record = json.loads(out.read_text())
    assert [run["seed"] for run in record["runs"]] == [0, 1, 2] and record["complete"]
    before = out.read_text()
    other = runner.invoke(app, [*base, "--loss", "gce:0.7", "--seeds", "0"])
    assert other.exit_code == 2 and "another loss" in other.output
    assert "Traceback" not in other.output and out.read_text() == before
