"""TaylorGLO's invariant against the authors' closed form, and its softmax-correct form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.losses import LearnedLoss, TaylorLoss
from evomal.losses.invariant import authors_invariant, slopes, softmax_condition


def _closed_form(theta, n):
    """The authors' check on their utility f: gamma(1, 1/n) >= (n - 1) gamma(0, 1/n), with
    gamma = df/dp of their third-order expansion around (theta0, theta1), written out."""
    t0, t1, t2, t3, t4, t5, t6, t7 = theta

    def gamma(t, p):
        dp, dt = p - t1, t - t0
        return t2 + 2 * t3 * dp + 3 * t4 * dp**2 + t5 * dt + 2 * t6 * dt * dp + t7 * dt**2

    return gamma(1.0, 1 / n), (n - 1) * gamma(0.0, 1 / n)


def _evomal_params(theta):
    """The shared definitions' mapping: (theta0, theta1, -theta2, -theta5, -theta3, -theta7,
    -theta6, -theta4), in taylor_terms(3) order."""
    t0, t1, t2, t3, t4, t5, t6, t7 = theta
    return [t0, t1, -t2, -t5, -t3, -t7, -t6, -t4]


@settings(max_examples=200)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([2, 3, 10, 100]))
def test_the_taylorglo_check_is_the_authors_closed_form(seed, n):
    theta = np.random.default_rng(seed).normal(scale=2.0, size=8).tolist()
    left, right = _closed_form(theta, n)
    if abs(left - right) < 1e-9:
        return  # a tie is decided by rounding on either side
    loss = TaylorLoss(_evomal_params(theta))
    assert authors_invariant(loss, n) == (left >= right)


def test_cross_entropy_passes_and_its_negative_fails():
    ce = LearnedLoss.cross_entropy()
    assert slopes(ce, 10) == pytest.approx((-10.0, 0.0), abs=1e-6)
    assert softmax_condition(ce, 10) and authors_invariant(ce, 10)
    flipped = LearnedLoss.from_string("mul(y, log(fx))")
    assert not softmax_condition(flipped, 10) and not authors_invariant(flipped, 10)


def test_only_the_softmax_form_ignores_a_sum_of_probabilities():
    # l = a (p - 0) + b (t - 0)(p - 0) with a = -0.5, b = -1: g1 = -1.5, g0 = -0.5.
    base = TaylorLoss([0.0, 0.0, -0.5, -1.0, 0, 0, 0, 0])
    shifted = TaylorLoss([0.0, 0.0, 0.5, -1.0, 0, 0, 0, 0])  # + 1 * p: nothing under a softmax
    assert softmax_condition(base, 10) and softmax_condition(shifted, 10)
    assert not authors_invariant(base, 10) and authors_invariant(shifted, 10)


TINY = ["gp.population_size=8", "gp.generations=2", "local_search.steps=2", "fitness.steps=20",
        "filters.rejection_steps=50", "selection.k=0", "cmaes.population_size=8",
        "cmaes.generations=2", "training.lr=0.1"]  # fmt: skip


def _events(tmp_path, method, invariant):
    from evomal.config import build_config
    from evomal.runs.store import RunStore
    from evomal.search import search
    from tests.toy import linear_classification

    config = build_config(None, [*TINY, f"method={method}", f"filters.invariant={invariant}"])
    out = tmp_path / f"{method}-{invariant}"
    search(linear_classification(seed=1, n=200, features=4, classes=3, n_test=20), "linear",
           config, out=out)  # fmt: skip
    return RunStore(out).read_events()


def test_taylorglo_skips_candidates_failing_the_authors_check_untrained(tmp_path):
    events = _events(tmp_path, "taylorglo", "true")
    skipped = [e for e in events if e["verdict"] == "invariant"]
    assert skipped, "CMA-ES's first generation around zero should include violations"
    for event in events:
        assert set(event["invariant"]) == {"authors", "softmax"}
        loss = TaylorLoss(event["phi"])
        assert event["invariant"]["authors"] == authors_invariant(loss, 3)
    assert all(not e["invariant"]["authors"] and e["fitness"] is None
               and "fitness" not in e["seconds"] for e in skipped)  # fmt: skip
    assert all(e["invariant"]["authors"] for e in events if e["verdict"] == "evaluated")
    off = _events(tmp_path, "taylorglo", "false")
    assert not any(e["verdict"] == "invariant" for e in off)


def test_trees_are_filtered_by_the_softmax_correct_condition(tmp_path):
    events = [e for e in _events(tmp_path, "evomal", "true") if e.get("invariant") is not None]
    assert events
    for event in events:
        assert (event["verdict"] == "invariant") == (not event["invariant"]["softmax"])
