"""``execution.executor: auto`` (the quick preset's): the process executor when `evomal search`
runs on a machine with more than one core, serial from Python and on one core."""

import json
import os

import pytest
from torch import nn
from typer.testing import CliRunner

from evomal import build_config
from evomal.cli import app
from evomal.errors import ConfigError, ModelError
from evomal.execution.base import SerialExecutor
from evomal.search import command_line_executor, make_executor
from evomal.tasks.models.source import resolve_model

runner = CliRunner()

TINY = [
    "--set",
    "gp.population_size=4",
    "--set",
    "gp.generations=1",
    "--set",
    "local_search.steps=2",
    "--set",
    "fitness.steps=20",
    "--set",
    "filters.rejection_steps=50",
    "--set",
    "selection.k=1",
    "--set",
    "meta_test.steps=30",
]


def test_the_quick_preset_asks_for_auto_and_the_others_stay_serial():
    assert build_config("quick").execution.executor == "auto"
    assert build_config("mnist_lenet5").execution.executor == "serial"
    assert build_config("reference_mnist").execution.executor == "serial"


def test_auto_settles_on_process_with_several_cores_and_serial_on_one():
    config = build_config("quick")
    assert command_line_executor(config, cores=2).execution.executor == "process"
    assert command_line_executor(config, cores=1).execution.executor == "serial"
    chosen = build_config("quick", ["execution.executor=serial"])
    assert command_line_executor(chosen, cores=8) is chosen  # an explicit choice stays


def test_auto_runs_serially_from_python_and_accepts_a_model_from_main():
    config = build_config("quick")
    assert isinstance(make_executor(config), SerialExecutor)
    unportable = resolve_model(lambda shape, n, seed: nn.Linear(shape[0], n))
    unportable.require_portable("auto")  # serial from Python: no import path needed
    with pytest.raises(ModelError, match="cannot rebuild"):
        unportable.require_portable("process")


def test_an_unknown_executor_names_the_choices():
    with pytest.raises(ConfigError, match="serial, process, ray, auto"):
        build_config("quick", ["execution.executor=threads"])


@pytest.mark.parametrize(("cores", "expected"), [(1, "serial"), (2, "process")])
def test_evomal_search_records_the_executor_it_ran(tmp_path, monkeypatch, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    out = tmp_path / "run"
    args = ["search", "--task", "wine", "--model", "linear", *TINY, "--out", str(out)]
    result = runner.invoke(app, [*args, "--no-meta-test"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["execution"]["executor"] == expected  # so a resume repeats it
    assert (out / "result.json").exists()
