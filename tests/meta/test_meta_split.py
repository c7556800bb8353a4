"""``local_search.meta_split``: where the task loss after the unrolled steps is measured."""

import numpy as np
import pytest
import torch

from evomal.config import build_config
from evomal.errors import ConfigError
from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import MetaSplit, initial_phi, meta_streams, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.symbolic import compile_tree
from evomal.training.unrolled_sgd import UnrolledSGD
from tests.toy import linear_classification

HOLDOUT = MetaSplit("holdout", 0.2)
KW = {"steps": 8, "base_steps": 2, "optimizer": UnrolledSGD(0.1, momentum=0.9),
      "meta_lr": 1e-2, "batch_size": 16, "run_seed": 5}  # fmt: skip


def _task():
    return linear_classification(seed=0, n=100, features=5, classes=3, n_test=10)


def _rows(x):
    return {tuple(np.round(r, 6)) for r in x.numpy().tolist()}


def test_the_unrolled_steps_never_see_the_held_out_slice():
    """Oracle: every inner batch's rows come from the rest, every outer batch's from the
    slice, the slice is the asked fraction, and together they are the training split."""
    task = _task()
    inner, outer = meta_streams(task, 16, seed=7, meta=HOLDOUT)
    held, rest = _rows(outer.task.train.x), _rows(inner.task.train.x)
    n = len(task.train)
    assert len(outer.task.train) == round(0.2 * n) and len(inner.task.train) == n - round(0.2 * n)
    assert not held & rest and held | rest == _rows(task.train.x)
    for _ in range(30):
        assert _rows(inner.next()[0]) <= rest
        assert _rows(outer.next()[0]) <= held
    again, _ = meta_streams(task, 16, seed=7, meta=HOLDOUT)
    assert _rows(again.task.train.x) == rest  # the cut depends on the seed alone


def test_train_is_one_stream_as_in_the_paper():
    inner, outer = meta_streams(_task(), 16, seed=7, meta=MetaSplit("train"))
    assert inner is outer


def test_holdout_batched_equals_one_by_one(float64, tree_evaluation):
    learner = BaseLearner(_task(), "linear")
    losses = [compile_tree(e) for e in ("square(sub(fx, y))", "mul(-1, mul(y, tanh(fx)))")]
    phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
    serial = [optimise_phi(loss, phi, [learner], **KW, meta_split=HOLDOUT)
              for loss, phi in zip(losses, phis, strict=True)]  # fmt: skip
    batched = optimise_phi_population(losses, phis, [learner], **KW, meta_split=HOLDOUT)
    for s, b in zip(serial, batched, strict=True):
        np.testing.assert_allclose(b.meta_losses, s.meta_losses, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(b.phi, s.phi, rtol=0, atol=1e-10)
    trained = optimise_phi(losses[0], phis[0], [learner], **KW)
    assert not torch.allclose(trained.phi, serial[0].phi)  # a different objective


def test_bad_meta_split_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="'train' or 'holdout', got 'validation'"):
        build_config(None, ["local_search.meta_split=validation"])
    with pytest.raises(ConfigError, match=r"holdout_fraction must be in \(0, 1\)"):
        build_config(None, ["local_search.holdout_fraction=1"])
