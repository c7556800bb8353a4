"""Online loss learning (AdaLFL's Algorithm 2): oracle tests in float64."""

import pytest
import torch

from evomal.losses import LearnedLoss
from evomal.meta.base_learner import BaseLearner
from evomal.meta.online import OnlineLossLearner, online_meta_loss
from evomal.meta.unrolled_sgd import UnrolledSGD
from evomal.optim import SGDConfig
from evomal.symbolic import compile_tree
from evomal.training import train
from evomal.training.loop import TrainBatches
from tests.toy import linear_classification

TREE = "mul(-1, mul(y, log(fx)))"  # cross-entropy as a tree: phi weights its 5 edges
CONFIG = SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)


def _setup(model="linear"):
    task = linear_classification(seed=3, n=120, features=4, classes=3, n_test=30)
    learner = BaseLearner(task, model)
    phi0 = torch.tensor([1.3, 0.8, 1.1, 0.9, 1.2])  # one weight per edge of TREE
    return task, learner, phi0


def test_with_meta_lr_zero_it_is_plain_training_with_the_initial_loss(float64):
    """Oracle: phi fixed (meta learning rate 0, the meta-gradient still computed), the
    online run's weights equal evomal.train's with the same loss, seed and optimiser."""
    task, learner, phi0 = _setup()
    online = OnlineLossLearner(compile_tree(TREE), phi0, learner, UnrolledSGD.from_config(CONFIG),
                               meta_lr=0.0, batch_size=16, seed=7)  # fmt: skip
    state = online.run(25)
    assert len(online.meta_grad_norms) == 25 and all(n > 0 for n in online.meta_grad_norms)
    assert torch.equal(state.phi, phi0)
    model = learner.build(7)
    train(model, LearnedLoss(TREE, phi=phi0), task, 25, CONFIG, batch_size=16, seed=7,
          evaluate_val=False)  # fmt: skip
    for name, value in model.named_parameters():
        torch.testing.assert_close(state.params[name], value.detach(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("config", [CONFIG, SGDConfig(lr=0.05)], ids=["nesterov-wd", "plain"])
def test_the_meta_gradient_of_one_online_step_equals_central_differences(float64, config):
    """Oracle: d/dphi of the task loss on the next batch after one real optimiser step on
    M_phi (momentum buffers from earlier steps carried, detached), against central finite
    differences of the same function, after a few online steps have moved theta and phi."""
    task, learner, phi0 = _setup("mlp")
    online = OnlineLossLearner(compile_tree(TREE), phi0, learner, UnrolledSGD.from_config(config),
                               meta_lr=1e-2, batch_size=16, seed=1)  # fmt: skip
    online.run(3)
    s = online.state
    stream = TrainBatches(task, 16, 1)
    batches = [stream.next() for _ in range(5)]
    batch, next_batch = batches[3], batches[4]

    def meta(phi):
        value, _, _ = online_meta_loss(
            phi, online.loss, learner.forward, task.kind, s.params, s.buffers, s.momentum,
            batch, next_batch, online.optimizer,
        )  # fmt: skip
        return value

    phi = s.phi.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(meta(phi), phi)
    eps = 1e-6
    numeric = torch.stack([
        (meta(s.phi + eps * e) - meta(s.phi - eps * e)) / (2 * eps) for e in torch.eye(len(phi))
    ]).detach()  # fmt: skip
    assert grad.abs().max() > 1e-6  # a real signal, not two zeros
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-9)


def test_a_resumed_run_continues_exactly(float64):
    """Stopped after 7 steps and rebuilt from its state (the batch stream replayed), the run
    ends where an uninterrupted one does: weights, phi, Adam's moments and the snapshots."""
    _, learner, phi0 = _setup("mlp")
    make = lambda state=None: OnlineLossLearner(  # noqa: E731
        compile_tree(TREE), phi0, learner, UnrolledSGD.from_config(CONFIG), meta_lr=1e-2,
        batch_size=16, seed=4, snapshot_every=5, state=state,
    )  # fmt: skip
    whole = make().run(15)
    first = make().run(7)
    resumed = make(first).run(15)
    assert resumed.step == whole.step == 15
    assert torch.equal(resumed.phi, whole.phi) and not torch.equal(whole.phi, phi0)
    for name in whole.params:
        assert torch.equal(resumed.params[name], whole.params[name])
    assert resumed.snapshots == whole.snapshots and [s for s, _ in whole.snapshots] == [
        0,
        5,
        10,
        15,
    ]


def test_the_meta_step_scores_the_updated_model_on_the_next_training_batch(float64):
    """The paper's meta-objective, read as the issue asks: step t's meta loss is the task loss
    of the model after update t on batch t + 1 of the same stream (the batch update t + 1 then
    trains on), recomputed here from the stream and the weights the step left."""
    from evomal.training.metrics import task_loss

    task, learner, phi0 = _setup("mlp")
    online = OnlineLossLearner(compile_tree(TREE), phi0, learner, UnrolledSGD.from_config(CONFIG),
                               meta_lr=1e-2, batch_size=16, seed=2)  # fmt: skip
    online.run(4)
    meta, _ = online.step()  # step 4: trains on batch 4, scores batch 5
    stream = TrainBatches(task, 16, 2)
    x, y = [stream.next() for _ in range(6)][5]
    s = online.state
    expected = task_loss(task.kind, learner.forward(s.params, s.buffers, x), y)
    assert meta == pytest.approx(float(expected), rel=1e-12)


def test_hypergradient_with_meta_lr_zero_is_plain_training_with_the_task_loss(float64):
    """The learning-rate counterpart: log(lr) fixed (meta learning rate 0), the run is
    evomal.train with the task loss at that rate."""
    from evomal.meta.online import LearningRate

    task, learner, _ = _setup()
    rate = LearningRate(task.kind, UnrolledSGD.from_config(CONFIG))
    log_lr = torch.tensor([CONFIG.lr]).log()
    online = OnlineLossLearner(rate, log_lr, learner, rate.base, meta_lr=0.0, batch_size=16,
                               seed=5)  # fmt: skip
    state = online.run(20)
    assert all(n > 0 for n in online.meta_grad_norms) and torch.equal(state.phi, log_lr)
    model = learner.build(5)
    train(model, "task", task, 20, CONFIG, batch_size=16, seed=5, evaluate_val=False)
    for name, value in model.named_parameters():
        torch.testing.assert_close(state.params[name], value.detach(), rtol=1e-12, atol=0)


def test_the_hypergradient_of_plain_sgd_is_minus_lr_times_the_two_gradients_dot(float64):
    """Oracle (Baydin et al. 2018): for theta' = theta - lr g_t, d L(theta'; b_t+1) / d log lr
    = -lr * <grad L(theta'; b_t+1), g_t>, computed here with two plain backward passes."""
    from evomal.meta.online import LearningRate
    from evomal.training.metrics import task_loss

    task, learner, _ = _setup("mlp")
    rate = LearningRate(task.kind, UnrolledSGD.plain(0.1))
    online = OnlineLossLearner(rate, torch.tensor([0.1]).log(), learner, rate.base,
                               meta_lr=0.05, batch_size=16, seed=8)  # fmt: skip
    online.run(3)
    s = online.state
    stream = TrainBatches(task, 16, 8)
    batches = [stream.next() for _ in range(5)]
    log_lr = s.phi.clone().requires_grad_(True)
    meta, _, _ = online_meta_loss(
        log_lr, rate, learner.forward, task.kind, s.params, s.buffers, None, batches[3],
        batches[4],
    )  # fmt: skip
    (hyper,) = torch.autograd.grad(meta, log_lr)

    def grads_at(params, batch):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        x, y = batch
        value = task_loss(task.kind, learner.forward(params, s.buffers, x), y)
        return params, torch.autograd.grad(value, list(params.values()))

    lr = float(s.phi.exp())
    _, g_t = grads_at(s.params, batches[3])
    moved = {k: v - lr * g for (k, v), g in zip(s.params.items(), g_t, strict=True)}
    _, g_next = grads_at(moved, batches[4])
    expected = -lr * sum((a * b).sum() for a, b in zip(g_next, g_t, strict=True))
    assert abs(float(hyper)) > 1e-8
    assert float(hyper) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("config", [CONFIG, SGDConfig(lr=0.05)], ids=["nesterov-wd", "plain"])
def test_a_users_own_loop_with_the_hook_is_the_online_run(float64, config):
    """Oracle: a plain PyTorch loop (torch.optim.SGD, the criterion as a module) calling
    OnlineHook.step before each update ends with the weights and phi of OnlineLossLearner
    on the same seed, batches and loss (plus one last meta step, which the learner's T-th
    step takes and the loop's T + 1-th call gives)."""
    from evomal.meta.online import OnlineHook

    task, learner, phi0 = _setup("mlp")
    steps = 12
    reference = OnlineLossLearner(compile_tree(TREE), phi0, learner,
                                  UnrolledSGD.from_config(config), meta_lr=1e-2, batch_size=16,
                                  seed=6).run(steps)  # fmt: skip
    model, criterion = learner.build(6), LearnedLoss(TREE, phi=phi0)
    optimizer = config.build(model.parameters())
    hook = OnlineHook(criterion, model, optimizer, meta_lr=1e-2)
    stream = TrainBatches(task, 16, 6)
    for _ in range(steps):
        x, y = stream.next()
        hook.step(x, y)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hook.step(*stream.next())
    torch.testing.assert_close(criterion.phi.detach(), reference.phi, rtol=1e-10, atol=1e-12)
    assert not torch.equal(reference.phi, phi0)
    for name, value in model.named_parameters():
        torch.testing.assert_close(value.detach(), reference.params[name], rtol=1e-10, atol=1e-12)


def test_the_hook_refuses_what_it_cannot_follow():
    from evomal.meta.online import OnlineHook

    model = torch.nn.Linear(3, 2)
    criterion = LearnedLoss(TREE)
    with pytest.raises(ValueError, match=r"torch\.optim\.SGD"):
        OnlineHook(criterion, model, torch.optim.Adam(model.parameters()), meta_lr=1e-3)
    with pytest.raises(ValueError, match="dampening"):
        OnlineHook(criterion, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                                     dampening=0.1), meta_lr=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="with weights"):
        OnlineHook(torch.nn.CrossEntropyLoss(), model, torch.optim.SGD(model.parameters(), lr=0.1),
                   meta_lr=1e-3)  # fmt: skip
