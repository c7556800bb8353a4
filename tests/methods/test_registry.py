"""A method registered only here goes through search, selection, experiment and report, and
the command line names it: adding a method is its own function plus a registry entry."""

import pytest

from evomal.config import build_config
from evomal.events import (
    EVALUATED,
    FAILED,
    CandidateEvent,
    GenerationEvent,
    GenerationSummary,
    Outcome,
    Scored,
)
from evomal.experiment import ExperimentSpec, run_experiment
from evomal.losses import LearnedLoss
from evomal.methods.base import MethodRun, SearchResult
from evomal.methods.registry import MethodSpec, method_names, register, unregister
from evomal.methods.selection import Candidate
from evomal.methods.stages import FitnessJob, fitness
from evomal.report.build import build_report
from evomal.report.sources import load_cells
from evomal.report.tables import markdown_table, method_rows
from evomal.search import search
from tests.toy import linear_classification

TINY = ("fitness.steps=20", "meta_test.steps=40", "selection.k=1", "training.lr=0.1")


def run_constant(run: MethodRun) -> SearchResult:
    """Proposes one loss, MAE as a tree, scores it like any candidate and returns it."""
    loss = LearnedLoss("abs(sub(y, fx))")
    run.start_executor()
    (fit,) = run.executor.map(fitness, [FitnessJob(loss.to_dict())])
    verdict = EVALUATED if fit.fitness is not None else FAILED
    outcome = Outcome(expression=loss.expression, key="mae", phi=loss.phi.tolist(),
                      fitness=fit.fitness, verdict=verdict)  # fmt: skip
    run.emit(CandidateEvent(0, 0, outcome))
    record = Scored(document=loss.to_dict(), fitness=fit.fitness, generation=0,
                    label=loss.expression, key="mae")  # fmt: skip
    summary = GenerationSummary.of(0, [verdict], [fit.fitness], fit.fitness, loss.expression)
    run.emit(GenerationEvent(0, summary, record))
    run.checkpoint("constant", {"done": True})
    candidates = [Candidate(loss.expression, loss.to_dict(), fit.fitness, "mae")]
    return run.finish(run.result(best=loss, record=record, history=[summary],
                                 message="MAE, as proposed", candidates=candidates))  # fmt: skip


@pytest.fixture
def constant():
    spec = MethodSpec(name="constant", label="Constant MAE",
                      runner="tests.methods.test_registry:run_constant",
                      summary="nothing: MAE as a tree", generations=lambda config: 1)  # fmt: skip
    register(spec)
    yield "constant"
    unregister("constant")


def test_a_registered_method_is_searched_selected_and_resumable(constant, tmp_path):
    task = linear_classification(seed=2, n=300, features=6, classes=3, n_test=60)
    config = build_config(None, [*TINY, "method=constant"])
    result = search(task, "linear", config, out=tmp_path / "run")
    assert result.method == "constant" and result.verdicts == {"evaluated": 1}
    assert result.selection is not None  # it went through the final selection
    assert [f["label"] for f in result.selection][1] == "abs(sub(y, fx))"
    assert result.best_record is not None and result.best_record.key == "mae"


def test_a_registered_method_runs_in_an_experiment_and_its_report(constant, tmp_path):
    spec = ExperimentSpec(methods=("baseline", "constant"), task="wine", model="linear",
                          seeds=(0,), preset="quick", overrides=TINY)  # fmt: skip
    run_experiment(spec, tmp_path / "exp")
    rows = method_rows(load_cells(tmp_path / "exp"))
    table = markdown_table(rows, "test error rate")
    assert "Constant MAE" in table and "Baseline" in table
    constant_row = next(r for r in rows if r.method == "constant")
    assert constant_row.task_loss_returned is not None  # a method that learns: counted
    _, sections = build_report([tmp_path / "exp"])
    assert any("Constant MAE" in str(section) for section in sections)


def test_the_registry_names_registered_methods_and_refuses_to_drop_built_in_ones(constant):
    assert "constant" in method_names()
    with pytest.raises(ValueError, match="built in"):
        unregister("evomal")


def test_evomal_methods_lists_every_method_with_what_it_learns_and_its_settings(constant):
    from typer.testing import CliRunner

    from evomal.cli import app

    listed = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for name in ("evomal", "taylorglo", "zoo", "constant"):
        assert name in listed.output
    assert "cmaes.*" in listed.output and "MAE as a tree" in listed.output


def test_every_config_section_a_method_names_is_a_section_of_the_config():
    """The registry and the config agree: each method's section exists, and its messages carry
    the section's prefix read off SearchConfig (no hand-kept list of groups)."""
    from dataclasses import fields

    from evomal.config import SearchConfig
    from evomal.errors import ConfigError
    from evomal.methods.registry import REGISTRY

    sections = {f.name for f in fields(SearchConfig)}
    named = {spec.config_section for spec in REGISTRY.values() if spec.config_section}
    assert named and named <= sections
    with pytest.raises(ConfigError, match=r"ml3\.steps must be positive"):
        build_config(None, ["ml3.steps=0"])
    with pytest.raises(ConfigError, match=r"section .nonexistent.*add it there"):
        MethodSpec(name="x", label="X", runner="m:f", summary="-", config_section="nonexistent")
