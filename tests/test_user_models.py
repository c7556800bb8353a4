"""A user's own model: builders, import paths and nn.Module templates, end to end (issue 11)."""

import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import evomal
from evomal.cli import app
from evomal.config import build_config
from evomal.execution.process import cpu_worker_threads
from evomal.methods.meta_test import meta_test
from evomal.runs.store import RunStore
from evomal.tasks import Task, get_task
from evomal.tasks.models.source import (
    USER_MODELS,
    ModelRef,
    register_model,
    reinitialised,
    resolve_model,
)
from tests import user_models
from tests.toy import linear_classification

TINY = [
    "gp.population_size=4",
    "gp.generations=2",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=50",
    "training.lr=0.1",
    "training.batch_size=32",
    "selection.k=1",
    "selection.steps=30",
    "meta_test.steps=30",
]


def image_task() -> Task:
    """Digits-sized images (1, 8, 8), labelled by a linear map: a task a CNN can run on."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(240, 1, 8, 8))
    y = (x.reshape(240, -1) @ rng.normal(size=(64, 3))).argmax(1)
    return Task.from_tensors("images", "classification", x, y, x[:40], y[:40])


def flat_task() -> Task:
    return linear_classification(seed=4, n=240, features=6, classes=3, n_test=40)


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)


# -- resolving and building ---------------------------------------------------------


def test_a_builder_and_its_import_path_build_the_same_weights_for_a_seed():
    by_function = resolve_model(user_models.build_cnn)
    by_path = resolve_model("tests.user_models:build_cnn")
    assert by_function.path == by_path.path == "tests.user_models:build_cnn"
    for seed in (0, 3):
        assert_same_state(
            by_function.build((1, 8, 8), 3, seed=seed), by_path.build((1, 8, 8), 3, seed=seed)
        )
    first, other = by_path.build((1, 8, 8), 3, seed=0), by_path.build((1, 8, 8), 3, seed=1)
    assert not torch.equal(first.conv.weight, other.conv.weight)


def test_a_template_reinitialised_for_a_seed_equals_a_fresh_build_from_that_seed():
    """Oracle: reset_parameters on a copy draws exactly what construction draws."""
    template = user_models.SmallCNN((1, 8, 8), 3)
    template.conv.weight.data.fill_(7.0)  # trained or edited weights must not leak
    ref = resolve_model(template)
    assert ref.path is None and ref.portable
    for seed in (0, 11):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = user_models.SmallCNN((1, 8, 8), 3)
        assert_same_state(ref.build((1, 8, 8), 3, seed=seed), fresh)
    assert torch.all(template.conv.weight == 7.0)  # the template itself is untouched


def test_a_layer_that_cannot_be_reset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"layer <root> \(NoReset\).*reset_parameters"):
        resolve_model(user_models.NoReset(6, 3))
    with pytest.raises(ValueError, match="reset_parameters"):
        reinitialised(torch.nn.Sequential(user_models.NoReset(6, 3)))


def test_register_model_adds_a_name_and_refuses_built_in_ones():
    register_model("test_user_mlp", user_models.build_mlp)
    try:
        ref = resolve_model("test_user_mlp")
        assert ref.name == "test_user_mlp" and ref.path == "tests.user_models:build_mlp"
        assert ref.record == "tests.user_models:build_mlp"
        assert isinstance(ref.build((6,), 3, seed=0), torch.nn.Sequential)
    finally:
        del USER_MODELS["test_user_mlp"]
    with pytest.raises(ValueError, match="built-in"):
        register_model("mlp", user_models.build_mlp)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_model", "unknown model"),
        ("tests.no_such_module:build", "cannot import model module"),
        ("tests.user_models:nothing_here", "has no 'nothing_here'"),
        ("tests.user_models", "unknown model"),
        (42, "model must be one of"),
    ],
)
def test_bad_model_specs_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_model(spec)


def test_refs_with_a_path_pickle_as_the_path():
    import pickle

    ref = pickle.loads(pickle.dumps(resolve_model(user_models.build_mlp)))
    assert isinstance(ref, ModelRef) and ref.builder is user_models.build_mlp
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda has no path
        pickle.dumps(resolve_model(lambda shape, n, seed: torch.nn.Linear(6, n)))


# -- checked before anything is written ---------------------------------------------------


def test_a_model_that_breaks_functional_call_is_refused_before_the_run_is_created(tmp_path):
    config = build_config(None, TINY)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="functional_call"):
        evomal.search(flat_task(), user_models.ParameterTypeCheck(6, 3), config, out=out)
    assert not out.exists()


def test_a_model_with_the_wrong_output_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"outputs of shape \(2, 5\).*\[batch, 3\]"):
        evomal.search(flat_task(), torch.nn.Linear(6, 5), build_config(None, TINY))


def test_a_lambda_runs_serially_but_is_refused_by_the_process_executor(tmp_path):
    def build(shape, n_outputs, seed):
        return torch.nn.Linear(shape[0], n_outputs)

    config = build_config(None, [*TINY, "selection.k=0"])
    result = evomal.search(flat_task(), build, config)
    assert result.best is not None
    process = build_config(None, [*TINY, "execution.executor=process", "execution.workers=1"])
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"cannot be imported by path.*process executor"):
        evomal.search(flat_task(), build, process, out=out)
    assert not out.exists()


def test_a_model_that_cannot_be_vmapped_is_evaluated_one_by_one_and_says_so():
    config = build_config(None, [*TINY, "selection.k=0", "execution.batch_candidates=4"])
    with pytest.warns(UserWarning, match="cannot run under torch.func.vmap.*one by one"):
        result = evomal.search(flat_task(), user_models.ItemInForward(6, 3), config)
    assert result.best is not None and result.best_fitness is not None
    assert result.verdicts.get("failed", 0) == 0


# -- end to end: search, resume, process executor, meta-test, show ---------------------------


@pytest.mark.parametrize(
    ("model", "task"),
    [(user_models.SmallCNN((1, 8, 8), 3), image_task), (user_models.build_mlp, flat_task)],
    ids=["cnn-template", "mlp-builder"],
)
def test_a_user_model_is_searched_resumed_and_meta_tested(model, task, tmp_path):
    config = build_config(None, TINY)
    out = tmp_path / "run"
    stopped = evomal.search(task(), model, config, out=out, max_generations=1)
    assert not stopped.finished
    resumed = evomal.resume(out, task(), model=model)
    assert resumed.finished and resumed.best is not None
    uninterrupted = evomal.search(task(), model, config)
    assert resumed.best.to_dict() == uninterrupted.best.to_dict()
    tested = meta_test(resumed.best, task(), model, config, seed=0)
    assert 0.0 <= tested.test_metric <= 1.0


@pytest.mark.parametrize(
    ("model", "task"),
    [("tests.user_models:build_cnn", image_task), (user_models.build_mlp, flat_task)],
    ids=["cnn-path", "mlp-function"],
)
def test_a_user_model_runs_with_the_process_executor(model, task):
    serial = build_config(None, [*TINY, "selection.k=0"])
    process = build_config(
        None, [*TINY, "selection.k=0", "execution.executor=process", "execution.workers=1"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both models can be vmapped: no warning
        in_workers = evomal.search(task(), model, process)
    # Here with the worker's torch threads, so that both round alike (a convolution's sums
    # depend on the thread count).
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_worker_threads(1))
    try:
        here = evomal.search(task(), model, serial)
    finally:
        torch.set_num_threads(threads)
    # Same search, same choices. The local search moves phi by a few 1e-3 in these steps,
    # and the two runs agree far below that, so a worker that trained phi any differently
    # is caught.
    assert in_workers.best.expression == here.best.expression
    moved = (here.best.phi.detach() - 1).abs().max().item()
    assert moved > 1e-3
    np.testing.assert_allclose(
        in_workers.best.phi.detach(), here.best.phi.detach(), rtol=0, atol=moved * 1e-3
    )
    assert in_workers.best_fitness == pytest.approx(here.best_fitness, abs=1e-6)


def test_a_run_with_a_template_must_be_given_the_model_again_to_resume(tmp_path):
    config = build_config(None, TINY)
    out = tmp_path / "run"
    evomal.search(flat_task(), user_models.ItemInForward(6, 3), config, out=out, max_generations=1)
    with pytest.raises(ValueError, match=r"pass it again: evomal.resume\(run_dir, model=...\)"):
        evomal.resume(out, flat_task())
    assert RunStore(out).load_checkpoint() is not None  # nothing on disk was lost


def test_the_cli_searches_resumes_tests_and_shows_a_model_given_by_import_path(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    settings = [arg for pair in (("--set", s) for s in TINY) for arg in pair]
    model = ["--task", "wine", "--model", "tests.user_models:build_mlp"]
    searched = runner.invoke(
        app, ["search", *model, *settings, "--no-meta-test", "--out", str(out)]
    )
    assert searched.exit_code == 0, searched.output
    assert RunStore(out).load_spec()["model"] == "tests.user_models:build_mlp"
    stopped = tmp_path / "stopped"
    config = build_config(None, TINY)
    task = get_task("wine")
    evomal.search(task, "tests.user_models:build_mlp", config, out=stopped, max_generations=1)
    resumed = runner.invoke(app, ["resume", str(stopped), "--no-meta-test"])
    assert resumed.exit_code == 0, resumed.output
    assert (stopped / "result.json").exists()
    tested = runner.invoke(
        app,
        [
            "test",
            "--loss",
            str(out / "best_loss.json"),
            *model,
            "--seeds",
            "0",
            "--set",
            "meta_test.steps=30",
        ],
    )
    assert tested.exit_code == 0, tested.output
    assert "test error rate" in tested.output
    shown = runner.invoke(app, ["show", str(out / "best_loss.json")])
    assert shown.exit_code == 0, shown.output
    bad = runner.invoke(app, ["search", "--task", "wine", "--model", "tests.user_models:nope"])
    assert bad.exit_code == 2 and "has no 'nope'" in bad.output
