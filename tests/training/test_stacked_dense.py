"""Stacked dense networks without vmap, and zoo losses of one family in one call: oracles."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from evomal.losses.zoo import FAMILIES, ZooLoss, population_loss
from evomal.optim import SGDConfig
from evomal.tasks.models.source import resolve_model
from evomal.training import train
from evomal.training.population import StackedModel, train_population
from evomal.training.stacked_dense import dense_layers
from tests.toy import linear_classification


def _vmapped(stacked, x):
    return stacked._forward(stacked.params, stacked.buffers, x)


@pytest.mark.parametrize(
    "build",
    [
        lambda: resolve_model("mlp").build((12,), 5, seed=0),
        lambda: resolve_model("linear").build((3, 4), 5, seed=0),
        lambda: nn.Sequential(nn.Linear(12, 7, bias=False), nn.Tanh(), nn.Linear(7, 5)),
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Sigmoid(), nn.Linear(6, 5)),
    ],
)
def test_stacked_dense_networks_equal_their_vmapped_forward_and_gradients(float64, build):
    models = [build() for _ in range(4)]
    for k, model in enumerate(models):
        torch.manual_seed(k)
        for p in model.parameters():
            nn.init.normal_(p)
    stacked = StackedModel(models)
    assert stacked._dense is not None
    x = torch.randn(9, 3, 4) if isinstance(models[0][0], nn.Flatten) else torch.randn(9, 12)
    x = x.reshape(9, -1) if x.ndim == 3 and not isinstance(models[0][0], nn.Flatten) else x
    fast = stacked(x.reshape(9, -1))
    slow = _vmapped(stacked, x.reshape(9, -1))
    assert torch.allclose(fast, slow, rtol=1e-12, atol=1e-12)
    for k, model in enumerate(models):
        assert torch.allclose(fast[k], model(x.reshape(9, -1)), rtol=1e-12, atol=1e-12)
    params = list(stacked.params.values())
    fast_grads = torch.autograd.grad(fast.square().sum(), params)
    slow_grads = torch.autograd.grad(slow.square().sum(), params)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
        nn.Sequential(nn.Flatten(start_dim=0), nn.Linear(4, 2)),
        nn.Sequential(nn.ReLU()),
        nn.Linear(4, 2),
    ],
)
def test_other_models_stay_under_vmap(model):
    assert dense_layers(model) is None


def _members(name):
    family = FAMILIES[name]
    members = [ZooLoss(name, list(p)) for p in family.grid]
    if family.needs_counts:
        members = [m.bound(6, [9, 1, 4, 30, 2, 7]) for m in members]
    return members


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from([n for n, f in FAMILIES.items() if len(f.grid) > 1]),
    batch=st.integers(1, 17),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 10),
)
def test_one_call_for_a_family_equals_each_member_called_alone(name, batch, scale, seed):
    torch.set_default_dtype(torch.float64)  # hypothesis cannot take the fixture; restored
    try:
        members = _members(name)
        generator = torch.Generator().manual_seed(seed)
        regression = FAMILIES[name].kind == "regression"
        width = 1 if regression else 6
        outputs = scale * torch.randn(len(members), batch, width, generator=generator)
        outputs.requires_grad_(True)
        targets = (torch.randn(batch, 1, generator=generator) if regression
                   else torch.randint(0, 6, (batch,), generator=generator))  # fmt: skip
        together = population_loss(members)(outputs, targets)
        alone = torch.stack([m(outputs[k], targets) for k, m in enumerate(members)])
        assert torch.allclose(together, alone, rtol=1e-12, atol=1e-12)
        g1, g2 = (torch.autograd.grad(v.sum(), outputs)[0] for v in (together, alone))
        assert torch.allclose(g1, g2, rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_zoo_grid_trained_as_a_population_equals_each_cell_alone(float64):
    task = linear_classification(seed=3, n=300, features=6, classes=3, n_test=30)
    # A stable lr: at lr 0.3 with momentum 0.9 gce's training is chaotic, and float64 rounding
    # (1e-12 at step 51) alone grows to a different run, whichever loop trains it.
    cells = [("gce", [0.5], 1.0), ("gce", [0.7], 2.0), ("focal", [2.0], 1 / 3), ("mae", [], 1.0)]
    model = resolve_model("mlp")
    build = [model.build((6,), 3, seed=5) for _ in cells]
    config = SGDConfig(lr=0.05, momentum=0.9)
    together = train_population(
        [copy.deepcopy(m) for m in build], [ZooLoss(n, p) for n, p, _ in cells], task, 200,
        config, batch_size=32, seed=1, lr_factors=[f for *_, f in cells],
    )  # fmt: skip
    for m, (name, params, factor), batched in zip(build, cells, together, strict=True):
        alone = train(copy.deepcopy(m), ZooLoss(name, params), task, 200,
                      SGDConfig(lr=0.05 * factor, momentum=0.9), batch_size=32, seed=1)  # fmt: skip
        assert batched.val_metric == pytest.approx(alone.val_metric, abs=1e-12)
        assert batched.loss_history == pytest.approx(alone.loss_history, rel=1e-9, abs=1e-12)
