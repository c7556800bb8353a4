"""Online loss learning (AdaLFL's Algorithm 2, hypergradient descent): oracle tests in float64."""

import copy

import pytest
import torch

from evomal.errors import LossFileError
from evomal.losses import LearnedLoss
from evomal.losses.document import OnlineSettings
from evomal.losses.io import load_loss, loss_from_dict
from evomal.meta.base_learner import BaseLearner
from evomal.optim import SGDConfig
from evomal.training import train
from evomal.training.loop import TrainBatches
from evomal.training.metrics import task_loss
from evomal.training.online import (
    LearningRate,
    OnlineHook,
    OnlineTraining,
    online_meta_loss,
    rule_of,
)
from evomal.training.unrolled_sgd import UnrolledSGD
from tests.toy import linear_classification

TREE = "mul(-1, mul(y, log(fx)))"  # cross-entropy as a tree: phi weights its 5 edges
PHI0 = [1.3, 0.8, 1.1, 0.9, 1.2]
CONFIG = SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
CONFIGS = [CONFIG, SGDConfig(lr=0.05)]


def _task():
    return linear_classification(seed=3, n=120, features=4, classes=3, n_test=30)


def _online(adapts="loss", meta_lr=1e-2, every=5, batch="next"):
    loss = LearnedLoss(TREE, phi=PHI0 if adapts == "loss" else None)
    return loss.adapting(OnlineSettings(adapts, meta_lr, every, batch))


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("batch", ["next", "same"])
@pytest.mark.parametrize("adapts", ["loss", "lr"])
def test_with_meta_lr_zero_it_is_plain_training_with_the_initial_loss(float64, adapts, batch):
    """Oracle: meta learning rate 0 (the meta-gradient still computed, every step), an online
    run's weights equal plain training's with the same loss, seed and optimiser, to rtol
    1e-12: AdaLFL's with its initial phi, hypergradient descent's with its fixed loss. The
    double backward rounds differently from a plain one by an ulp per step, so weights that
    pass near zero get an absolute floor of 1e-15 (the weights are of order 0.1)."""
    task, learner = _task(), BaseLearner(_task(), "mlp")
    online, plain = learner.build(7), learner.build(7)
    loss = _online(adapts, meta_lr=0.0, batch=batch)
    result = train(online, loss, task, 25, CONFIG, batch_size=16, seed=7, evaluate_val=False)
    train(plain, LearnedLoss(TREE, phi=loss.phi), task, 25, CONFIG, batch_size=16, seed=7,
          evaluate_val=False)  # fmt: skip
    trace = result.online
    assert trace is not None and len(trace.grad_norms) == 25 and min(trace.grad_norms) > 0
    assert all(values == trace.snapshots[0][1] for _, values in trace.snapshots)
    for name, value in _params(plain).items():
        torch.testing.assert_close(_params(online)[name], value, rtol=1e-12, atol=1e-15)


def _moved(config, adapts="loss", steps=3, seed=1, batch="next"):
    """A model, its OnlineTraining after ``steps`` online steps, and the stream's batches."""
    task = _task()
    learner = BaseLearner(task, "mlp")
    model = learner.build(seed)
    opt = config.build(model.parameters())
    loss = _online(adapts, batch=batch)
    online = OnlineTraining(model, loss, opt, task.kind, loss.online)
    stream = TrainBatches(task, 16, seed)
    batches = [stream.next() for _ in range(steps + 2)]
    for t in range(steps):
        online.step(batches[t])
    return task, learner, model, online, opt, batches


@pytest.mark.parametrize("batch", ["next", "same"])
@pytest.mark.parametrize("config", CONFIGS, ids=["nesterov-wd", "plain"])
@pytest.mark.parametrize("adapts", ["loss", "lr"])
def test_the_meta_gradient_of_one_online_step_equals_central_differences(
    float64, config, adapts, batch
):
    """Oracle: d/dmeta of the task loss on the next batch (or, with ``batch="same"``, the
    batch the update trained on) after one real optimiser step (momentum buffers from
    earlier steps carried, detached), against central finite differences of the same
    function, after online steps have moved theta and meta."""
    task, learner, model, online, opt, batches = _moved(config, adapts, batch=batch)
    scored = batches[3] if batch == "same" else batches[4]
    adapter, params = online.adapter, _params(model)
    buffers = dict(model.named_buffers())

    def objective(meta):
        return online_meta_loss(meta, adapter.adapted, learner.forward, task.kind, params,
                                buffers, online.momentum, batches[3], scored,
                                rule_of(opt)).meta  # fmt: skip

    start = adapter.meta.detach().clone()
    meta = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(meta), meta)
    eps = 1e-6
    numeric = torch.stack([
        (objective(start + eps * e) - objective(start - eps * e)) / (2 * eps)
        for e in torch.eye(len(start))
    ]).detach()  # fmt: skip
    assert grad.abs().max() > 1e-6  # a real signal, not two zeros
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-9)


def test_the_meta_step_scores_the_updated_model_on_the_next_training_batch(float64):
    """The paper's meta-objective, read as the issue asks: step t's meta loss is the task loss
    of the model after update t on batch t + 1 of the stream train() draws (the batch update
    t + 1 then trains on), recomputed here from the stream and the model train() returns."""
    task = _task()
    model = BaseLearner(task, "mlp").build(2)
    result = train(model, _online(), task, 5, CONFIG, batch_size=16, seed=2, evaluate_val=False)
    stream = TrainBatches(task, 16, 2)
    x, y = [stream.next() for _ in range(6)][5]
    with torch.no_grad():
        expected = task_loss(task.kind, model(x), y)
    assert result.online is not None
    assert result.online.meta_losses[-1] == pytest.approx(float(expected), rel=1e-12)


def test_the_same_batch_meta_step_scores_the_updated_model_on_the_batch_it_trained_on(float64):
    """AdaLFL's Algorithm 2 as written: step t's meta loss is the task loss of the model after
    update t on batch t itself, recomputed from the stream and the model train() returns;
    each update takes its meta step at once (5 updates, 5 meta steps)."""
    task = _task()
    model = BaseLearner(task, "mlp").build(2)
    loss = _online(batch="same")
    result = train(model, loss, task, 5, CONFIG, batch_size=16, seed=2, evaluate_val=False)
    stream = TrainBatches(task, 16, 2)
    x, y = [stream.next() for _ in range(5)][4]
    with torch.no_grad():
        expected = task_loss(task.kind, model(x), y)
    assert result.online is not None and len(result.online.meta_losses) == 5
    assert result.online.meta_losses[-1] == pytest.approx(float(expected), rel=1e-12)


def test_the_hypergradient_of_plain_sgd_is_minus_lr_times_the_two_gradients_dot(float64):
    """Oracle (Baydin et al. 2018): for theta' = theta - lr g_t, d L(theta'; b_t+1) / d log lr
    = -lr * <grad L(theta'; b_t+1), g_t>, computed here with two plain backward passes (g_t
    of the base loss, the cross-entropy tree; L the task loss)."""
    task, learner, model, online, opt, batches = _moved(SGDConfig(lr=0.1), "lr", seed=8)
    params, buffers = _params(model), dict(model.named_buffers())
    meta = online.adapter.meta.detach().clone().requires_grad_(True)
    out = online_meta_loss(meta, online.adapter.adapted, learner.forward, task.kind, params,
                           buffers, None, batches[3], batches[4], rule_of(opt))  # fmt: skip
    (hyper,) = torch.autograd.grad(out.meta, meta)

    def grads_at(at, batch, loss):
        at = {k: v.detach().requires_grad_(True) for k, v in at.items()}
        x, y = batch
        return torch.autograd.grad(loss(learner.forward(at, buffers, x), y), list(at.values()))

    lr = 0.1 * float(meta.detach().exp())
    assert lr != 0.1  # the multiplier has moved
    g_t = grads_at(params, batches[3], online.adapter.criterion)  # the base loss's gradient
    moved = {k: v - lr * g for (k, v), g in zip(params.items(), g_t, strict=True)}
    g_next = grads_at(moved, batches[4], lambda p, y: task_loss(task.kind, p, y))
    expected = -lr * sum((a * b).sum() for a, b in zip(g_next, g_t, strict=True))
    assert abs(float(hyper)) > 1e-8
    assert float(hyper) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("config", [*CONFIGS, SGDConfig(lr=0.1, momentum=0.9, milestones=(6,))],
                         ids=["nesterov-wd", "plain", "milestone"])  # fmt: skip
@pytest.mark.parametrize("batch", ["next", "same"])
@pytest.mark.parametrize("adapts", ["loss", "lr"])
def test_a_users_own_loop_with_the_hook_is_the_online_run(float64, config, adapts, batch):
    """Oracle: a plain PyTorch loop (torch.optim.SGD, the criterion as a module, a milestone
    applied by hand and told to the hook) calling OnlineHook.step before each update ends
    with the weights and adapted values of train() on the same seed, batches and loss."""
    task = _task()
    learner = BaseLearner(task, "mlp")
    steps = 12
    reference_model = learner.build(6)
    result = train(reference_model, _online(adapts, batch=batch), task, steps, config,
                   batch_size=16, seed=6, evaluate_val=False)  # fmt: skip
    model, criterion = learner.build(6), _online(adapts, batch=batch)
    optimizer = config.build(model.parameters())
    hook = OnlineHook(criterion, model, optimizer)
    stream = TrainBatches(task, 16, 6)
    for step in range(steps):
        if step in config.milestones:
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            hook.schedule(config.lr_at(step))
        x, y = stream.next()
        hook.step(x, y)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hook.step(*stream.next())
    assert result.online is not None
    ours, theirs = result.online.snapshots, hook.trace.snapshots
    assert [s for s, _ in ours] == [0, 5, 10, 12] and [s for s, _ in theirs] == [0, 5, 10]
    for (_, a), (_, b) in zip(ours, [*theirs, (12, hook.adapter.values())], strict=True):
        assert a == pytest.approx(b, rel=1e-10)
    assert ours[-1][1] != ours[0][1]
    for name, value in _params(reference_model).items():
        torch.testing.assert_close(_params(model)[name], value, rtol=1e-10, atol=1e-12)


def test_train_leaves_the_callers_loss_at_its_initial_weights(float64):
    loss = _online()
    before = loss.phi.detach().clone()
    result = train(BaseLearner(_task(), "mlp").build(0), loss, _task(), 10, CONFIG,
                   batch_size=16, seed=0, evaluate_val=False)  # fmt: skip
    assert torch.equal(loss.phi, before)
    assert result.online is not None and result.online.snapshots[-1][1] != before.tolist()


def test_the_learning_rate_counterpart_keeps_the_rate_positive():
    rate = LearningRate(lambda y_pred, y_true: y_pred.sum())
    base = UnrolledSGD(0.1, 0.9)
    assert float(rate.rule(torch.tensor([-30.0]), base).lr) > 0
    assert float(rate.rule(torch.tensor([0.0]), base).lr) == pytest.approx(0.1)


def test_an_online_loss_file_round_trips_and_runs_no_code(tmp_path):
    """The file says the loss adapts online; loading it gives the initial loss with those
    settings; the settings are validated like every other field."""
    loss = _online("loss", 3e-4, 50)
    loss.save(tmp_path / "loss.json")
    back = load_loss(tmp_path / "loss.json")
    assert back.online == OnlineSettings("loss", 3e-4, 50)
    assert back.to_dict() == loss.to_dict()
    doc = loss.to_dict()
    same = _online("loss", 3e-4, 50, batch="same")
    assert loss_from_dict(same.to_dict()).online == OnlineSettings("loss", 3e-4, 50, "same")
    older = copy.deepcopy(doc)  # written before the field existed: the next batch
    del older["online"]["batch"]
    assert loss_from_dict(older).online == OnlineSettings("loss", 3e-4, 50, "next")
    for bad, message in [({"adapts": "both"}, "online.adapts"), ({"meta_lr": -1.0}, "meta_lr"),
                         ({"snapshot_every": 0}, "snapshot_every"),
                         ({"batch": "previous"}, "online.batch"), ({"batch": 1}, "batch"),
                         ({"extra": 1}, "unknown field")]:  # fmt: skip
        broken = copy.deepcopy(doc)
        broken["online"] = {**broken["online"], **bad}
        with pytest.raises(LossFileError, match=message):
            loss_from_dict(broken)
    from evomal.losses.zoo import parse_loss_spec

    zoo = parse_loss_spec("gce:0.7").to_dict()
    with pytest.raises(LossFileError, match="cannot adapt online"):
        loss_from_dict({**zoo, "online": doc["online"]})


def test_the_hook_refuses_what_it_cannot_follow():
    model = torch.nn.Linear(3, 2)
    criterion = _online()
    with pytest.raises(ValueError, match=r"torch\.optim\.SGD"):
        OnlineHook(criterion, model, torch.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="dampening"):
        OnlineHook(criterion, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                                     dampening=0.1))  # fmt: skip
    with pytest.raises(ValueError, match="with weights"):
        OnlineHook(torch.nn.CrossEntropyLoss(), model, torch.optim.SGD(model.parameters(), lr=0.1),
                   OnlineSettings())  # fmt: skip
    with pytest.raises(ValueError, match="does not adapt online"):
        OnlineHook(LearnedLoss(TREE), model, torch.optim.SGD(model.parameters(), lr=0.1))
