"""The batched local search against the one-by-one local search.

The comparisons run in float64: batching changes the order of float
reductions, and in float32 that round-off (about 1e-7 relative) can be
amplified by Adam's normalised steps and by chaotic training into
differences that depend on the CPU's kernels. In float64 the same
amplification stays far below the tolerances, which then test that the two
paths compute the same function.
"""

import numpy as np
import pytest
import torch

from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import initial_phi, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.symbolic import compile_tree
from evomal.training.unrolled_sgd import UnrolledSGD
from tests.toy import linear_classification

# Trees in which every edge weight changes training; see the last test for the caveat.
EXPRESSIONS = [
    "square(sub(fx, y))",
    "abs(sub(fx, y))",
    "sub(square(fx), mul(y, fx))",
    "square(sub(add(fx, fx), y))",
    "mul(-1, mul(y, tanh(fx)))",
]


def _task():
    return linear_classification(seed=0, n=200, features=6, classes=3, n_test=30)


pytestmark = pytest.mark.usefixtures("float64")


KW = {
    "steps": 12,
    "base_steps": 1,
    "optimizer": UnrolledSGD(0.1, momentum=0.9),
    "meta_lr": 1e-2,
    "batch_size": 32,
    "run_seed": 3,
}


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_batched_local_search_equals_one_by_one(model, tree_evaluation):
    learner = BaseLearner(_task(), model, {"hidden": (16,)} if model == "mlp" else {})
    losses = [compile_tree(e) for e in EXPRESSIONS]
    phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
    serial = [
        optimise_phi(loss, phi, [learner], **KW) for loss, phi in zip(losses, phis, strict=True)
    ]
    batched = optimise_phi_population(losses, phis, [learner], **KW)
    for s, b in zip(serial, batched, strict=True):
        np.testing.assert_allclose(b.meta_losses, s.meta_losses, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(b.phi, s.phi, rtol=0, atol=1e-10)
        assert not b.diverged


def test_two_tasks_and_two_inner_steps(tree_evaluation):
    learners = [BaseLearner(_task(), "linear"), BaseLearner(_task(), "linear")]
    losses = [compile_tree(e) for e in EXPRESSIONS[:3]]
    phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
    kw = {**KW, "base_steps": 2, "optimizer": UnrolledSGD(0.1, 0.9, True, 1e-3)}
    serial = [
        optimise_phi(loss, phi, learners, **kw) for loss, phi in zip(losses, phis, strict=True)
    ]
    batched = optimise_phi_population(losses, phis, learners, **kw)
    for s, b in zip(serial, batched, strict=True):
        torch.testing.assert_close(b.phi, s.phi, rtol=0, atol=1e-10)


def test_weights_without_effect_only_drift_by_round_off():
    """In -y*log(w*fx) the weight w only adds -y*log(w): its meta-gradient is exactly zero, and
    Adam turns the round-off of that zero into steps of about meta_lr in either direction. The
    meta losses (what training sees) still agree."""
    learner = BaseLearner(_task(), "linear")
    loss = compile_tree("mul(-1, mul(y, log(fx)))")
    phi = initial_phi(5, 1e-3, 0)
    serial = optimise_phi(loss, phi, [learner], **KW)
    (batched,) = optimise_phi_population([loss], [phi], [learner], **KW)
    np.testing.assert_allclose(batched.meta_losses, serial.meta_losses, rtol=1e-10)
    torch.testing.assert_close(batched.phi[:4], serial.phi[:4], rtol=0, atol=1e-10)
    assert abs(float(batched.phi[4] - serial.phi[4])) <= KW["steps"] * KW["meta_lr"] * 1.01
