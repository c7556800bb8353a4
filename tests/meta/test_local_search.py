"""The local search: its meta-gradient against finite differences, and its determinism."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import grad

from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import initial_phi, optimise_phi, unrolled_task_loss
from evomal.symbolic import compile_tree, parse
from evomal.tasks import Task
from evomal.training.unrolled_sgd import UnrolledSGD


def phi_grad(fn, phi):
    """d fn / d phi by autograd (the local search differentiates the same way)."""
    phi = phi.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(phi), phi)
    return g


def _task(n=80, features=5, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features))
    y = rng.integers(0, classes, n)
    return Task.from_tensors("tiny", "classification", x, y, x[:10], y[:10])


def test_meta_gradient_matches_finite_differences(float64):
    task = _task()
    learner = BaseLearner(task, "linear")
    tree = parse("add(mul(-1, mul(y, log(fx))), mul(fx, square(sub(fx, y))))")
    loss = compile_tree(tree)
    params, buffers = learner.initial_state(5)
    inner = [(task.train.x[:16], task.train.y[:16]), (task.train.x[16:32], task.train.y[16:32])]
    outer = (task.train.x[32:64], task.train.y[32:64])

    def meta(phi):
        return unrolled_task_loss(
            phi, loss, learner, params, buffers, inner, outer, UnrolledSGD.plain(0.5)
        )

    phi = torch.normal(1.0, 0.2, (tree.n_edges,), generator=torch.Generator().manual_seed(0))
    analytic = phi_grad(meta, phi)
    eps = 1e-6
    numeric = torch.stack(
        [(meta(phi + eps * e) - meta(phi - eps * e)) / (2 * eps) for e in torch.eye(tree.n_edges)]
    )
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert analytic.abs().max() > 1e-6


def test_meta_gradient_matches_hand_derived_value(float64):
    """With phi = (-1, 1, 1, 1, 1) the tree is cross-entropy and M = phi0 * h where
    h = mean(y log fx) = -CE. One SGD step gives theta' = theta + lr * phi0 * g_CE, so
    dtheta'/dphi0 = lr * g_CE and dL_task/dphi0 = lr * <grad L_task(theta'), g_CE>."""
    task = _task()
    learner = BaseLearner(task, "linear")
    tree = parse("mul(1, mul(y, log(fx)))")  # phi[0] weights the constant 1
    loss = compile_tree(tree)
    params, buffers = learner.initial_state(1)
    xb, yb = task.train.x[:20], task.train.y[:20]
    xo, yo = task.train.x[20:50], task.train.y[20:50]
    phi = torch.tensor([-1.0, 1.0, 1.0, 1.0, 1.0])  # makes M exactly cross-entropy
    lr = 0.3

    def task_loss_of(p):
        return F.cross_entropy(learner.forward(p, buffers, xo), yo)

    g_ce = grad(lambda p: F.cross_entropy(learner.forward(p, buffers, xb), yb))(params)
    stepped = {k: params[k] - lr * g_ce[k] for k in params}
    g_task = grad(task_loss_of)(stepped)
    expected = lr * sum((g_task[k] * g_ce[k]).sum() for k in params)
    analytic = phi_grad(
        lambda ph: unrolled_task_loss(
            ph, loss, learner, params, buffers, [(xb, yb)], (xo, yo), UnrolledSGD.plain(lr)
        ),
        phi,
    )
    torch.testing.assert_close(analytic[0], expected, rtol=1e-9, atol=1e-12)


def test_optimise_phi_is_deterministic_and_moves_phi():
    task = _task()
    learner = BaseLearner(task, "linear")
    loss = compile_tree("mul(-1, mul(y, log(fx)))")
    phi0 = initial_phi(5, 1e-3, seed=0)
    kwargs = {
        "steps": 30,
        "base_steps": 1,
        "optimizer": UnrolledSGD.plain(0.1),
        "meta_lr": 1e-2,
        "batch_size": 16,
        "run_seed": 4,
    }
    a = optimise_phi(loss, phi0, [learner], **kwargs)
    b = optimise_phi(loss, phi0, [learner], **kwargs)
    assert torch.equal(a.phi, b.phi)
    assert a.meta_losses == b.meta_losses
    assert not a.diverged
    assert (a.phi - phi0).abs().max() > 1e-3
    c = optimise_phi(loss, phi0, [learner], **{**kwargs, "run_seed": 5})
    assert not torch.equal(a.phi, c.phi)


def test_several_tasks_sum_their_task_losses():
    tasks = [_task(), _task(n=60, features=5, classes=3)]
    learners = [BaseLearner(t, "linear") for t in tasks]
    loss = compile_tree("mul(-1, mul(y, log(fx)))")
    phi0 = torch.ones(5)
    kwargs = {
        "steps": 1,
        "base_steps": 1,
        "optimizer": UnrolledSGD.plain(0.1),
        "meta_lr": 1e-2,
        "batch_size": 16,
        "run_seed": 0,
    }
    both = optimise_phi(loss, phi0, learners, **kwargs).meta_losses[0]
    first = optimise_phi(loss, phi0, learners[:1], **kwargs).meta_losses[0]
    assert both > first > 0


def test_initial_phi_distribution():
    phi = initial_phi(10_000, 1e-3, seed=0)
    assert abs(float(phi.mean()) - 1.0) < 1e-4
    assert abs(float(phi.std()) - 1e-3) < 1e-4


def test_autograd_meta_gradient_equals_nested_torch_func_grad(float64):
    """The local search uses autograd with create_graph; nesting torch.func.grad agrees."""
    task = _task()
    learner = BaseLearner(task, "mlp", {"hidden": (8,)})
    loss = compile_tree("sub(square(sub(fx, y)), mul(y, log(fx)))")
    params, buffers = learner.initial_state(2)
    xb, yb, xo, yo = task.train.x[:16], task.train.y[:16], task.train.x[16:40], task.train.y[16:40]

    def nested(ph):
        def inner(p):
            return loss(learner.forward(p, buffers, xb), yb, ph)

        g = grad(inner)(params)
        stepped = {k: params[k] - 0.2 * g[k] for k in params}
        return F.cross_entropy(learner.forward(stepped, buffers, xo), yo)

    phi = torch.normal(1.0, 0.1, (8,), generator=torch.Generator().manual_seed(3))

    def ours_fn(ph):
        return unrolled_task_loss(
            ph, loss, learner, params, buffers, [(xb, yb)], (xo, yo), UnrolledSGD.plain(0.2)
        )

    ours = phi_grad(ours_fn, phi)
    torch.testing.assert_close(ours, grad(nested)(phi), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "optimizer",
    [
        UnrolledSGD(0.3, momentum=0.9),
        UnrolledSGD(0.3, momentum=0.9, nesterov=True, weight_decay=0.01),
    ],
    ids=["momentum", "nesterov+wd"],
)
def test_meta_gradient_through_momentum_steps_matches_finite_differences(float64, optimizer):
    """Three unrolled steps of SGD with momentum (and Nesterov, weight decay): the
    meta-gradient flows through the momentum buffers as well as the parameters."""
    task = _task()
    learner = BaseLearner(task, "mlp", {"hidden": (6,)})
    tree = parse("add(mul(-1, mul(y, log(fx))), mul(fx, square(sub(fx, y))))")
    loss = compile_tree(tree)
    params, buffers = learner.initial_state(2)
    inner = [(task.train.x[i : i + 16], task.train.y[i : i + 16]) for i in (0, 16, 32)]
    outer = (task.train.x[48:80], task.train.y[48:80])

    def meta(phi):
        return unrolled_task_loss(phi, loss, learner, params, buffers, inner, outer, optimizer)

    phi = torch.normal(1.0, 0.2, (tree.n_edges,), generator=torch.Generator().manual_seed(1))
    analytic = phi_grad(meta, phi)
    eps = 1e-6
    numeric = torch.stack(
        [(meta(phi + eps * e) - meta(phi - eps * e)) / (2 * eps) for e in torch.eye(tree.n_edges)]
    )
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)
    plain = phi_grad(
        lambda ph: unrolled_task_loss(
            ph, loss, learner, params, buffers, inner, outer, UnrolledSGD.plain(optimizer.lr)
        ),
        phi,
    )
    assert not torch.allclose(analytic, plain)  # momentum changes what the search sees


def test_one_unrolled_step_with_momentum_is_the_plain_step(float64):
    """torch.optim.SGD's first momentum step is the plain step (its buffer starts at g);
    Nesterov's first step is (1 + momentum) times it. The unrolled search sees the same."""
    task = _task()
    learner = BaseLearner(task, "linear")
    loss = compile_tree("mul(-1, mul(y, log(fx)))")
    params, buffers = learner.initial_state(0)
    inner, outer = (
        [(task.train.x[:20], task.train.y[:20])],
        (task.train.x[20:50], task.train.y[20:50]),
    )
    phi = torch.ones(5)

    def value(optimizer):
        return unrolled_task_loss(phi, loss, learner, params, buffers, inner, outer, optimizer)

    assert torch.equal(value(UnrolledSGD(0.2, momentum=0.9)), value(UnrolledSGD.plain(0.2)))
    torch.testing.assert_close(
        value(UnrolledSGD(0.2, momentum=0.9, nesterov=True)), value(UnrolledSGD.plain(0.38))
    )
