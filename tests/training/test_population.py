"""Population batching against one-by-one training: same results to float tolerance.

Everything runs in float64. Batched kernels sum in another order than
single-model ones; in float32 that round-off (about 1e-7 relative) grows
over tens of SGD steps with momentum into differences that depend on the
CPU's kernels, and a validation error near a decision boundary can flip. In
float64 the same growth stays near 1e-12, so tight tolerances test that the
two paths compute the same thing on any machine.
"""

import numpy as np
import pytest
import torch

from evomal import LearnedLoss
from evomal.losses import NeuralLoss, TaylorLoss
from evomal.losses.neural import NeuralLossFunction
from evomal.tasks import Task
from evomal.tasks.models import build_model
from evomal.training import SGDConfig, train
from evomal.training.metrics import stacked_task_loss, task_loss
from evomal.training.population import train_population

EXPRESSIONS = [
    "mul(-1, mul(y, log(fx)))",
    "square(sub(fx, y))",
    "abs(sub(fx, y))",
    "sub(square(fx), mul(y, fx))",
    "mul(-1, mul(y, tanh(fx)))",
]


pytestmark = pytest.mark.usefixtures("float64")


def _task(kind="classification", n_out=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (
        (x @ rng.normal(size=(8, n_out))).argmax(1)
        if kind == "classification"
        else x[:, 0] + x[:, 1]
    )
    return Task.from_tensors("toy", kind, x, y, x[:50], y[:50])


def _serial(model_name, losses, task, steps, config, **kwargs):
    return [
        train(
            build_model(model_name, task.input_shape, task.n_outputs, seed=0, **kwargs),
            loss,
            task,
            steps,
            config,
            batch_size=32,
            seed=0,
        )
        for loss in losses
    ]


def _batched(model_name, losses, task, steps, config, **kwargs):
    models = [
        build_model(model_name, task.input_shape, task.n_outputs, seed=0, **kwargs) for _ in losses
    ]
    return train_population(models, losses, task, steps, config, batch_size=32, seed=0)


@pytest.mark.parametrize(
    "config",
    [
        SGDConfig(lr=0.1, momentum=0.9),
        SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, milestones=(20,)),
    ],
)
def test_batched_equals_one_by_one_for_tree_losses(config, tree_evaluation):
    task = _task()
    losses = [
        LearnedLoss(
            e,
            phi=np.linspace(0.9, 1.1, LearnedLoss.from_string(e).phi.numel()),
            scale=1.0 + 0.25 * i,  # scale-normalised losses carry a factor
        )
        for i, e in enumerate(EXPRESSIONS)
    ]
    serial = _serial("mlp", losses, task, 40, config, hidden=(16,))
    batched = _batched("mlp", losses, task, 40, config, hidden=(16,))
    for s, b in zip(serial, batched, strict=True):
        np.testing.assert_allclose(b.loss_history, s.loss_history, rtol=1e-10, atol=1e-12)
        assert b.val_metric == s.val_metric


def test_batched_equals_one_by_one_for_mixed_loss_kinds_and_batch_norm(tree_evaluation):
    task = Task.from_tensors(
        "img",
        "classification",
        np.random.default_rng(1).random((120, 1, 12, 12), dtype=np.float32),
        np.arange(120) % 3,
        np.random.default_rng(2).random((20, 1, 12, 12), dtype=np.float32),
        np.arange(20) % 3,
        standardise="none",
    )
    losses = [
        LearnedLoss.cross_entropy(),
        TaylorLoss(np.linspace(-0.5, 0.5, 8)),
        NeuralLoss(NeuralLossFunction().initial_params(0)),
    ]
    config = SGDConfig(lr=0.05, momentum=0.9)
    kwargs = {"width": 0.0625}
    serial = _serial("resnet18", losses, task, 6, config, **kwargs)
    batched = _batched("resnet18", losses, task, 6, config, **kwargs)
    for s, b in zip(serial, batched, strict=True):
        np.testing.assert_allclose(b.loss_history, s.loss_history, rtol=1e-9, atol=1e-11)


def test_a_diverging_candidate_does_not_disturb_the_others():
    task = _task()
    good = LearnedLoss.cross_entropy()
    calls = {"n": 0}

    def poisoned(y_pred, y_true):
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(y_pred, y_true)
        return value * float("nan") if calls["n"] >= 30 else value

    config = SGDConfig(lr=0.5)
    batched = train_population(
        [build_model("linear", task.input_shape, task.n_outputs, seed=0) for _ in range(3)],
        [good, poisoned, good],
        task,
        60,
        config,
        batch_size=32,
        seed=0,
        check_every=20,
    )
    alone = _serial("linear", [good], task, 60, config)[0]
    assert batched[1].diverged
    assert batched[1].reason == "non-finite training loss at step 29"
    assert not batched[0].diverged and not batched[2].diverged
    np.testing.assert_allclose(batched[0].loss_history, alone.loss_history, rtol=1e-10, atol=1e-12)


def test_regression_population():
    task = _task("regression")
    losses = [LearnedLoss.mse(), LearnedLoss.from_string("abs(sub(fx, y))", task="regression")]
    config = SGDConfig(lr=0.05)
    for s, b in zip(
        _serial("linear", losses, task, 30, config),
        _batched("linear", losses, task, 30, config),
        strict=True,
    ):
        np.testing.assert_allclose(b.loss_history, s.loss_history, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "n_out"), [("classification", 5), ("classification", 1), ("regression", 2)]
)
def test_stacked_task_loss_matches_per_slice(kind, n_out):
    out = torch.randn(3, 16, n_out)
    y = (
        torch.randint(0, max(n_out, 2), (16,))
        if kind == "classification"
        else torch.randn(16, n_out)
    )
    expected = torch.stack([task_loss(kind, out[k], y) for k in range(3)])
    torch.testing.assert_close(stacked_task_loss(kind, out, y), expected)
