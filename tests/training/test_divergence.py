"""The one divergence check: its reasons against a plain-Python reading, and the same words
from the one-by-one and batched local searches for the same diverging candidate."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import initial_phi, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.symbolic import compile_tree
from evomal.training.divergence import divergence, finite_members
from evomal.training.unrolled_sgd import UnrolledSGD
from tests.toy import linear_classification

VALUES = st.sampled_from([0.5, -2.0, math.inf, -math.inf, math.nan])


@settings(max_examples=60, deadline=None)
@given(
    table=st.integers(1, 6).flatmap(
        lambda k: st.lists(st.lists(VALUES, min_size=k, max_size=k), min_size=1, max_size=8)
    ),
    bad_parameters=st.data(),
    first=st.integers(0, 100),
)
def test_reasons_match_a_plain_reading(table, bad_parameters, first):
    k = len(table[0])
    finite = bad_parameters.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    done = first + len(table)
    got = divergence(torch.tensor(table), torch.tensor(finite), first_step=first, steps_done=done)
    for member in range(k):
        column = [row[member] for row in table]
        bad = [i for i, v in enumerate(column) if not math.isfinite(v)]
        if bad:
            assert got[member] == f"non-finite training loss at step {first + bad[0]}"
        elif not finite[member]:
            assert got[member] == f"non-finite parameters by step {done}"
        else:
            assert got[member] is None


def test_finite_members_reads_each_slice():
    a = torch.zeros(3, 2, 2)
    b = torch.zeros(3, 5)
    a[1, 0, 1] = math.nan
    b[2, 4] = math.inf
    assert finite_members([a, b], 3).tolist() == [True, False, False]


def test_one_by_one_and_batched_local_search_say_the_same_of_a_diverging_candidate():
    task = linear_classification(seed=0, n=200, features=6, classes=3, n_test=30)
    learner = BaseLearner(task, "linear")
    losses = [compile_tree("square(sub(fx, y))"), compile_tree("mul(-1, mul(y, log(fx)))")]
    phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
    phis[0] = phis[0].clone()
    phis[0][0] = math.inf  # an infinite edge weight: the meta loss is non-finite at once
    kw = {"steps": 30, "base_steps": 1, "optimizer": UnrolledSGD(0.1), "meta_lr": 1e-2,
          "batch_size": 32, "run_seed": 3}  # fmt: skip
    serial = [
        optimise_phi(loss, phi, [learner], **kw) for loss, phi in zip(losses, phis, strict=True)
    ]
    batched = optimise_phi_population(losses, phis, [learner], **kw)
    assert serial[0].diverged and batched[0].diverged
    assert serial[0].reason == batched[0].reason
    assert serial[0].reason.startswith("non-finite meta loss at meta step ")
    assert not serial[1].diverged and not batched[1].diverged
    np.testing.assert_allclose(batched[1].meta_losses, serial[1].meta_losses, rtol=1e-4)
