"""The functional SGD the local search unrolls, against torch.optim.SGD itself."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.optim import SGDConfig
from evomal.training.unrolled_sgd import UnrolledSGD


def _run_both(optimizer: UnrolledSGD, steps: int, seed: int):
    """``steps`` updates of the same parameters with the same gradient sequence, both ways."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"w": (4, 3), "b": (3,)}
    start = {k: torch.randn(s, generator=generator, dtype=torch.float64) for k, s in shapes.items()}
    grads = [
        {k: torch.randn(s, generator=generator, dtype=torch.float64) for k, s in shapes.items()}
        for _ in range(steps)
    ]
    torch_params = [torch.nn.Parameter(v.clone()) for v in start.values()]
    reference = torch.optim.SGD(
        torch_params,
        lr=optimizer.lr,
        momentum=optimizer.momentum,
        nesterov=optimizer.nesterov,
        weight_decay=optimizer.weight_decay,
    )
    params, buffers = dict(start), None
    for g in grads:
        for p, gv in zip(torch_params, g.values(), strict=True):
            p.grad = gv.clone()
        reference.step()
        params, buffers = optimizer.step(params, list(g.values()), buffers)
    return params, dict(zip(start, torch_params, strict=True))


@pytest.mark.parametrize(
    "optimizer",
    [
        UnrolledSGD(0.1),
        UnrolledSGD(0.05, momentum=0.9),
        UnrolledSGD(0.05, momentum=0.9, nesterov=True),
        UnrolledSGD(0.01, momentum=0.9, nesterov=True, weight_decay=5e-4),
        UnrolledSGD(0.2, weight_decay=0.1),
    ],
    ids=["plain", "momentum", "nesterov", "nesterov+wd", "wd"],
)
def test_steps_equal_torch_optim_sgd(optimizer):
    ours, theirs = _run_both(optimizer, steps=7, seed=0)
    for name, value in ours.items():
        # float64, same operations in the same order: only last-bit differences remain.
        torch.testing.assert_close(value, theirs[name].detach(), rtol=1e-13, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-4, 5e-4, 0.1]),
    steps=st.integers(1, 6),
    seed=st.integers(0, 10_000),
)
def test_any_sgd_setting_matches_torch(lr, momentum, nesterov, weight_decay, steps, seed):
    nesterov = nesterov and momentum > 0
    optimizer = UnrolledSGD(lr, momentum, nesterov, weight_decay)
    ours, theirs = _run_both(optimizer, steps, seed)
    for name, value in ours.items():
        torch.testing.assert_close(value, theirs[name].detach(), rtol=1e-12, atol=1e-13)


def test_from_config_takes_the_update_rule_and_an_optional_lr():
    config = SGDConfig(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, milestones=(10,))
    assert UnrolledSGD.from_config(config) == UnrolledSGD(0.05, 0.9, True, 5e-4)
    assert UnrolledSGD.from_config(config, lr=0.2).lr == 0.2
    assert UnrolledSGD.plain(0.3) == UnrolledSGD(0.3, 0.0, False, 0.0)


def test_the_step_is_differentiable_through_the_buffers():
    p = {"w": torch.tensor([1.0], dtype=torch.float64, requires_grad=True)}
    g = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    optimizer = UnrolledSGD(0.1, momentum=0.9)
    p1, buf = optimizer.step(p, [g], None)
    p2, _ = optimizer.step(p1, [g * 2], buf)
    (dg,) = torch.autograd.grad(p2["w"].sum(), g)
    # p2 = p - lr*g - lr*(m*g + 2g)  =>  d p2 / d g = -lr * (1 + m + 2)
    torch.testing.assert_close(dg, torch.tensor([-0.1 * 3.9], dtype=torch.float64))
