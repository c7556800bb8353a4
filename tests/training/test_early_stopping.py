"""Early stopping and per-member learning rates: one by one against batched, and against torch."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import stack_module_state

from evomal.optim import SGDConfig
from evomal.training import train
from evomal.training.loop import evaluate
from evomal.training.population import train_population
from tests.toy import linear_classification


@settings(max_examples=25, deadline=None)
@given(
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    nesterov=st.booleans(),
    decay=st.sampled_from([0.0, 5e-4, 0.1]),
    factors=st.lists(st.sampled_from([1 / 3, 0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=4),
    milestone=st.sampled_from([(), (2,)]),
)
def test_stacked_sgd_steps_each_member_as_torch_sgd_at_its_own_lr(
    momentum, nesterov, decay, factors, milestone
):
    torch.set_default_dtype(torch.float64)  # hypothesis cannot take the fixture; restored below
    try:
        _stacked_against_torch(momentum, nesterov, decay, factors, milestone)
    finally:
        torch.set_default_dtype(torch.float32)


def _stacked_against_torch(momentum, nesterov, decay, factors, milestone):
    nesterov = nesterov and momentum > 0
    config = SGDConfig(lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=decay,
                       milestones=milestone, gamma=0.5)  # fmt: skip
    torch.manual_seed(0)
    models = [torch.nn.Linear(5, 3) for _ in factors]
    alone = [copy.deepcopy(m) for m in models]
    params, _ = stack_module_state(models)
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    stacked = config.build_stacked(params.values(), factors)
    singles = [
        SGDConfig(lr=0.05 * f, momentum=momentum, nesterov=nesterov, weight_decay=decay).build(
            m.parameters()
        )
        for m, f in zip(alone, factors, strict=True)
    ]
    for step in range(4):
        x = torch.randn(8, 5)
        scale = 0.5 ** sum(1 for m in milestone if step >= m)
        for group in stacked.param_groups:
            group["lr"] = 0.05 * scale
        for opt, f in zip(singles, factors, strict=True):
            for group in opt.param_groups:
                group["lr"] = 0.05 * f * scale
        total = sum(((x @ params["weight"][k].T + params["bias"][k]) ** 2).mean()
                    for k in range(len(factors)))  # fmt: skip
        stacked.zero_grad()
        total.backward()
        stacked.step()
        for model, opt in zip(alone, singles, strict=True):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
    for k, model in enumerate(alone):
        assert torch.allclose(params["weight"][k], model.weight, rtol=0, atol=1e-12)
        assert torch.allclose(params["bias"][k], model.bias, rtol=0, atol=1e-12)


def _task():
    noisy = linear_classification(seed=1, n=400, features=6, classes=3, n_test=60)
    return noisy.with_label_noise(0.3)  # late training fits the flipped labels: a best step


def test_early_stopping_keeps_the_weights_of_the_best_validation_score(float64):
    task = _task()
    model = torch.nn.Linear(6, 3)
    start = copy.deepcopy(model)
    result = train(model, "task", task, 400, SGDConfig(lr=0.5, momentum=0.9), batch_size=16,
                   seed=0, early_stopping=50)  # fmt: skip
    scores = dict(result.val_history)
    best_step = min(scores, key=lambda s: (scores[s], s))
    assert result.best_step == best_step
    assert result.val_metric == scores[best_step]
    assert float(evaluate(model, task.val, task)) == pytest.approx(result.val_metric)
    without = train(start, "task", task, 400, SGDConfig(lr=0.5, momentum=0.9),
                    batch_size=16, seed=0, val_every=50)  # fmt: skip
    assert dict(without.val_history) == scores  # same run; only the kept weights differ
    assert result.val_metric <= without.val_metric


def test_a_population_with_early_stopping_and_lr_factors_equals_one_by_one(float64):
    task = _task()
    factors = [1 / 3, 1.0, 3.0]
    config = SGDConfig(lr=0.2, momentum=0.9)
    build = [torch.nn.Linear(6, 3) for _ in factors]
    together = train_population([copy.deepcopy(m) for m in build], ["task"] * 3, task, 300,
                                config, batch_size=16, seed=2, lr_factors=factors,
                                early_stopping=50, val_samples=True)  # fmt: skip
    for model, factor, batched in zip(build, factors, together, strict=True):
        sgd = SGDConfig(lr=0.2 * factor, momentum=0.9)
        alone = train(copy.deepcopy(model), "task", task, 300, sgd, batch_size=16, seed=2,
                      early_stopping=50)  # fmt: skip
        assert batched.best_step == alone.best_step
        assert batched.val_metric == pytest.approx(alone.val_metric, abs=1e-9)
        assert [s for s, _ in batched.val_history] == [s for s, _ in alone.val_history]
