"""Meta-testing, transfer checks and seed parsing."""

import numpy as np
import pytest

from evomal.config import build_config
from evomal.losses import LearnedLoss, NeuralLoss, TaylorLoss
from evomal.losses.neural import NeuralLossFunction
from evomal.methods.meta_test import check_transfer, meta_test, parse_seeds, summarise
from evomal.tasks import Task


def _task(classes=3, kind="classification", name="toy"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, classes))).argmax(1) if kind == "classification" else x.sum(1)
    return Task.from_tensors(name, kind, x, y, x[:40], y[:40])


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("7") == [7]
    assert parse_seeds("1-2,9") == [1, 2, 9]
    for bad in ("a-b", "4-1", ""):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_same_seed_same_initial_conditions_for_every_loss(float64):
    """float64, so that the tree's log(fx + 1e-10) against F.cross_entropy is the only
    difference left (float32 round-off would make the comparison depend on the CPU)."""
    config = build_config(None, ["meta_test.steps=40", "training.lr=0.1"])
    task = _task()
    a = meta_test("task", task, "linear", config, seed=3)
    b = meta_test(LearnedLoss.cross_entropy(), task, "linear", config, seed=3)
    # the CE tree equals F.cross_entropy up to eps: same init and batches give the same run
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=1e-7, atol=1e-9)
    assert a.test_metric == b.test_metric


def test_meta_testing_trains_with_its_own_optimiser_not_fitnesss():
    """meta_test.optimizer and meta_test.batch_size drive meta-testing (the authors'
    testing_* settings); fitness.optimizer does not touch it."""
    from evomal.training import SGDConfig, train

    config = build_config(
        None,
        [
            "meta_test.steps=30",
            "meta_test.batch_size=16",
            "meta_test.optimizer.lr=0.2",
            "meta_test.optimizer.momentum=0.5",
            "meta_test.optimizer.nesterov=true",
            "fitness.optimizer.lr=0.001",
        ],
    )
    task = _task()
    ours = meta_test("task", task, "linear", config, seed=1)
    sgd = SGDConfig(lr=0.2, momentum=0.5, nesterov=True)
    by_hand = train("linear", "task", task, 30, sgd, batch_size=16, seed=1, evaluate_test=True)
    assert ours.loss_history == by_hand.loss_history
    assert ours.test_metric == by_hand.test_metric


def test_transfer_checks():
    check_transfer(LearnedLoss.cross_entropy(), _task(classes=7))  # elementwise: any classes
    check_transfer(TaylorLoss(np.zeros(8)), _task(classes=5))
    with pytest.raises(ValueError, match="learned for classification"):
        check_transfer(LearnedLoss.cross_entropy(), _task(kind="regression"))
    net = NeuralLoss(NeuralLossFunction().initial_params(0))
    check_transfer(net, _task(classes=3))
    check_transfer(net, _task(classes=4))  # pairs, not vectors: any number of classes
    with pytest.raises(ValueError, match="learned for classification"):
        check_transfer(net, _task(kind="regression"))


def test_summary_statistics():
    s = summarise([(0, 0.1), (1, 0.3), (2, None)])
    assert s.mean == pytest.approx(0.2)
    assert s.std == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert s.diverged == 1


@pytest.mark.parametrize(
    ("execution", "workers"),
    [
        (["execution.executor=process", "execution.workers=2"], 2),
        (["execution.executor=process"], 0),
    ],
)
def test_with_the_process_executor_meta_testing_trains_with_the_workers_threads(
    monkeypatch, execution, workers
):
    """The final selection trains its finalists in the process executor's workers, which
    split the cores between them; the meta-test of the same seed must repeat that run
    exactly, so it trains with the workers' thread count (float reductions, and so a long
    run's result, depend on it), and the caller's count is restored afterwards."""
    import torch

    from evomal.methods import meta_test as module

    seen = []
    real_train = module.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(module, "train", spy)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's own setting, unlike any worker's
    try:
        config = build_config(None, ["meta_test.steps=5", *execution])
        meta_test("task", _task(), "linear", config, seed=0)
        assert seen == [4 // (workers or 4)]  # 4 cores split between the workers
        assert torch.get_num_threads() == 3
        serial = build_config(None, ["meta_test.steps=5"])
        meta_test("task", _task(), "linear", serial, seed=0)
        assert seen[-1] == 3
    finally:
        torch.set_num_threads(before)


def test_what_meta_testing_trains_for_a_result(tmp_path):
    """The task loss itself when it was returned, else the returned loss (from the run
    directory when the result holds none), else nothing."""
    from evomal.losses import LearnedLoss, load_loss
    from evomal.methods.base import SearchResult
    from evomal.methods.meta_test import loss_to_test

    mae = LearnedLoss("abs(sub(y, fx))")
    ce = LearnedLoss.cross_entropy()
    assert loss_to_test(SearchResult(method="evomal", best=ce, best_fitness=0.5,
                                     task_loss=True)) == "task"  # fmt: skip
    assert loss_to_test(SearchResult(method="evomal", best=mae, best_fitness=0.5)) is mae
    mae.save(tmp_path / "best_loss.json")
    read = loss_to_test(SearchResult(method="evomal", best=None, best_fitness=None,
                                     run_dir=tmp_path))  # fmt: skip
    assert read.to_dict() == load_loss(tmp_path / "best_loss.json").to_dict() == mae.to_dict()
    nothing = SearchResult(method="evomal", best=None, best_fitness=None, run_dir=tmp_path / "x")
    assert loss_to_test(nothing) is None
