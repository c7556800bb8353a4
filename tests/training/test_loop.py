"""The training loop against a hand-written PyTorch loop, plus its guarantees."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evomal import LearnedLoss
from evomal.tasks import Task
from evomal.training import EpochSampler, SGDConfig, evaluate, evaluate_per_sample, train
from evomal.training.loop import make_generator


def _task(kind="classification", n=300, features=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 100, features)).astype(np.float32)
    if kind == "classification":
        w = rng.normal(size=(features, classes))
        y = (x @ w).argmax(1)
    else:
        y = x @ rng.normal(size=features) + 0.1 * rng.normal(size=n + 100)
    return Task.from_tensors("toy", kind, x[:n], y[:n], x[n:], y[n:])


def _mlp(task, seed=0, out=None):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(task.input_shape[0], 32),
            nn.ReLU(),
            nn.Linear(32, out or task.n_outputs),
        )


def test_matches_a_hand_written_loop_with_multistep_schedule():
    """Oracle: same batches, same SGD (momentum, Nesterov, weight decay, MultiStepLR)."""
    task = _task()
    config = SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, milestones=(20, 45))
    ours = _mlp(task)
    result = train(ours, "ce", task, 60, config, batch_size=32, seed=7)

    ref = _mlp(task)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20, 45], gamma=0.1)
    gen = make_generator(7, torch.device("cpu"))
    perm, pos, history = None, 10**9, []
    n = len(task.train)
    for _ in range(60):
        if pos + 32 > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + 32]
        pos += 32
        loss = F.cross_entropy(ref(task.train.x[idx]), task.train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    assert result.loss_history == pytest.approx(history, abs=0)
    assert result.val_metric == pytest.approx(float(evaluate(ref, task.val, task)))


def test_same_seed_same_result_different_seed_different():
    task = _task()
    runs = [
        train("mlp", "ce", task, 50, batch_size=16, seed=s, evaluate_test=True) for s in (3, 3, 4)
    ]
    assert runs[0].loss_history == runs[1].loss_history
    assert runs[0].test_metric == runs[1].test_metric
    assert runs[0].loss_history != runs[2].loss_history


def test_epoch_sampler_visits_every_sample_once_per_epoch():
    sampler = EpochSampler(10, 3, make_generator(0, torch.device("cpu")), torch.device("cpu"))
    first_epoch = torch.cat([sampler.next() for _ in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # 3 full batches, last partial batch dropped
    assert EpochSampler(
        5, 64, make_generator(0, torch.device("cpu")), torch.device("cpu")
    ).next().shape == (5,)


def test_non_finite_loss_is_reported_as_diverged_and_stops():
    task = _task()
    calls = {"n": 0}

    def poisoned(y_pred, y_true):
        calls["n"] += 1
        value = F.cross_entropy(y_pred, y_true)
        return value * math.nan if calls["n"] == 30 else value

    result = train(_mlp(task), poisoned, task, 1000, check_every=25, batch_size=16)
    assert result.diverged
    assert result.reason == "non-finite training loss at step 29"
    assert result.steps_done == 50  # stopped at the next check, not after 1000 steps
    assert result.val_metric is None


def test_exploding_learning_rate_diverges():
    task = _task("regression")
    result = train(_mlp(task), "mse", task, 400, SGDConfig(lr=50.0), check_every=20)
    assert result.diverged
    assert "non-finite" in result.reason


def test_no_host_sync_per_step(monkeypatch):
    """Every tensor->Python conversion is counted: O(steps / check_every), not O(steps)."""
    task = _task()
    counts = {"n": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    train(_mlp(task), "ce", task, 400, check_every=100, batch_size=16, evaluate_val=False)
    assert counts["n"] <= 3 * (400 // 100) + 2, counts


def test_learned_ce_tree_trains_like_cross_entropy():
    """float64: the tree's log(fx + 1e-10) and F.cross_entropy differ by ~1e-10 relative per
    step; in float32 their round-off (1e-7) would grow over 80 momentum steps by an amount
    that depends on the CPU, so the comparison would test the machine, not the loss."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _compare_ce_tree_and_cross_entropy()
    finally:
        torch.set_default_dtype(previous)


def _compare_ce_tree_and_cross_entropy():
    task = _task()
    a = train(_mlp(task), "ce", task, 80, SGDConfig(lr=0.05, momentum=0.9), batch_size=32)
    b = train(
        _mlp(task),
        LearnedLoss.cross_entropy(),
        task,
        80,
        SGDConfig(lr=0.05, momentum=0.9),
        batch_size=32,
    )
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-7, atol=1e-9)
    assert a.val_metric == b.val_metric


def test_loss_and_task_kind_must_agree():
    with pytest.raises(ValueError, match="use mse"):
        train(_mlp(_task("regression")), "ce", _task("regression"), 1)
    with pytest.raises(ValueError, match="learned for regression"):
        train(_mlp(_task()), LearnedLoss.mse(), _task(), 1)
    with pytest.raises(ValueError, match="unknown loss"):
        train(_mlp(_task()), "hinge", _task(), 1)


def test_sgd_config_validation_and_schedule():
    config = SGDConfig(lr=1.0, milestones=(10, 20), gamma=0.5)
    assert [config.lr_at(s) for s in (0, 9, 10, 19, 20, 100)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    bad_settings = [
        ({"lr": 0}, "learning rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"nesterov": True}, "Nesterov"),
        ({"milestones": (5, 3)}, "milestones"),
    ]
    for bad, fragment in bad_settings:
        with pytest.raises(ValueError, match=fragment):
            SGDConfig(**bad)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_per_sample_metrics_are_the_metric_sample_by_sample(kind):
    """Oracle: each sample's entry is its own error indicator / squared error, computed by hand
    on the whole split at once, and their mean is :func:`evaluate`; the model's mode is kept."""
    task = _task(kind)
    model = _mlp(task).train()
    per_sample = evaluate_per_sample(model, task.test, task, batch_size=7)
    assert model.training
    with torch.no_grad():
        out = model.eval()(task.test.x)
    if kind == "classification":
        expected = (out.argmax(1) != task.test.y).float()
    else:
        expected = (out.reshape(-1) - task.test.y.reshape(-1)) ** 2
    torch.testing.assert_close(per_sample, expected)
    assert float(per_sample.mean()) == pytest.approx(
        float(evaluate(model, task.test, task, batch_size=7)), rel=1e-6
    )
