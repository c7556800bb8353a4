"""Successive-halving rungs (``Prune``): against plain runs and the population."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evomal import LearnedLoss
from evomal.errors import ConfigError
from evomal.tasks.models import build_model
from evomal.training import SGDConfig, train
from evomal.training.loop import Prune
from evomal.training.population import train_population
from tests.training.test_population import EXPRESSIONS, _task

pytestmark = pytest.mark.usefixtures("float64")

CONFIG = SGDConfig(lr=0.1, momentum=0.9)


def _model(task):
    return build_model("mlp", task.input_shape, task.n_outputs, seed=0, hidden=(16,))


def _train(task, loss, steps, prune=None, check_every=100):
    return train(
        _model(task),
        loss,
        task,
        steps,
        CONFIG,
        batch_size=32,
        seed=0,
        prune=prune,
        check_every=check_every,
    )


def _losses():
    return [
        LearnedLoss(e, phi=np.linspace(0.9, 1.1, LearnedLoss.from_string(e).phi.numel()))
        for e in EXPRESSIONS
    ]


def test_a_run_below_the_threshold_is_the_plain_run_with_its_rung_recorded():
    task = _task()
    loss = LearnedLoss.cross_entropy()
    plain = _train(task, loss, 40)
    rung = _train(task, loss, 20)
    kept = _train(task, loss, 40, Prune(20))
    assert not kept.pruned and kept.steps_done == 40
    assert kept.loss_history == plain.loss_history and kept.val_metric == plain.val_metric
    # the metric at the prune step is the one a 20-step run ends with
    assert Prune(20).metric_at(kept.val_history) == rung.val_metric


@pytest.mark.parametrize("check_every", [7, 100])
def test_a_run_above_the_threshold_stops_there_with_that_steps_metric(check_every):
    task = _task()
    loss = LearnedLoss.cross_entropy()
    rung = _train(task, loss, 20)
    stopped = _train(task, loss, 40, Prune(20, above=-1.0), check_every=check_every)
    assert stopped.pruned and not stopped.diverged
    assert stopped.steps_done == 20 and len(stopped.loss_history) == 20
    assert stopped.loss_history == rung.loss_history
    assert stopped.val_metric == rung.val_metric


def test_a_run_that_diverged_before_the_prune_step_is_diverged_not_pruned():
    task = _task()

    def poisoned(y_pred, y_true):
        return torch.nn.functional.cross_entropy(y_pred, y_true) * float("nan")

    result = _train(task, poisoned, 40, Prune(20, -1.0))
    assert result.diverged and not result.pruned and result.val_metric is None


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(quantile=st.floats(0.0, 1.0), step=st.integers(1, 29))
def test_population_prunes_exactly_as_one_by_one(tree_evaluation, quantile, step):
    task = _task()
    losses = _losses()
    reference = [_train(task, loss, step).val_metric for loss in losses]
    above = float(np.quantile(reference, quantile))  # some members above, some not
    prune = Prune(step, above)
    alone = [_train(task, loss, 30, prune, check_every=10) for loss in losses]
    together = train_population(
        [_model(task) for _ in losses],
        losses,
        task,
        30,
        CONFIG,
        batch_size=32,
        seed=0,
        check_every=10,
        prune=prune,
    )
    for a, b in zip(alone, together, strict=True):
        assert b.pruned == a.pruned
        assert b.diverged == a.diverged
        assert a.pruned == (
            a.val_metric is not None and a.val_metric > above and a.steps_done == step
        )
        if a.val_metric is None:
            assert b.val_metric is None
        else:
            assert math.isclose(b.val_metric, a.val_metric, rel_tol=1e-9, abs_tol=1e-12)


def test_prune_step_must_be_positive():
    with pytest.raises(ConfigError, match="prune step"):
        Prune(0)


def test_a_run_that_ends_at_the_prune_step_is_judged_there():
    task = _task()
    loss = LearnedLoss.cross_entropy()
    plain = _train(task, loss, 20)
    kept = _train(task, loss, 20, Prune(20, above=1.0))
    stopped = _train(task, loss, 20, Prune(20, above=-1.0))
    assert not kept.pruned and stopped.pruned
    assert kept.val_metric == stopped.val_metric == plain.val_metric
    assert kept.loss_history == plain.loss_history
