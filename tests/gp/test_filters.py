"""The rejection protocol run to convergence: batched against one by one, late rises,
regression semantics."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.config import GPConfig
from evomal.gp.filters import (
    ScreeningProbe,
    rejection_reason,
    rejection_score,
    rejection_traces,
)
from evomal.gp.operators import repair
from evomal.symbolic import compile_tree, gen_half_and_half
from evomal.symbolic.primitives import PrimitiveSet

CE = "mul(-1, mul(y, log(fx)))"
MSE = "square(sub(fx, y))"
# The loss issue 10 found after a LeNet-5 search: it fixes every probe error within 50 Adam
# steps, then undoes them; run to convergence it ends worse than it started.
COLLAPSING = "sub(sign(1), tanh(min(fx, min(fx, sub(div(y, fx), fx)))))"


def _probe(seed=0, n=100, classes=10, scale=0.1):
    generator = torch.Generator().manual_seed(seed)
    predictions = torch.randn(n, classes, generator=generator) * scale
    targets = torch.randint(0, classes, (n,), generator=generator)
    return ScreeningProbe("classification", predictions, targets)


def _ones(expression):
    return torch.ones(compile_tree(expression).n_weights)


def test_stacked_screen_equals_screening_one_by_one(tree_evaluation):
    rng = np.random.default_rng(0)
    config = GPConfig()
    pset = PrimitiveSet(tuple(config.functions), tuple(config.terminals))
    trees = [repair(rng, gen_half_and_half(rng, 2, 4, pset), pset) for _ in range(12)]
    losses = [compile_tree(t) for t in trees]
    phis = [torch.ones(t.n_edges) for t in trees]
    probe = _probe()
    together = rejection_traces(losses, phis, probe, 200, 0.1)
    for loss, phi, joint in zip(losses, phis, together, strict=True):
        (alone,) = rejection_traces([loss], [phi], probe, 200, 0.1)
        if math.isinf(alone.score):
            assert math.isinf(joint.score)
            continue
        # Adam is elementwise and each slice sees only its own loss; the stack changes
        # nothing but float summation order in the shared softmax, so the probe metrics
        # (counts of errors) agree exactly.
        assert joint.metrics == alone.metrics
        assert joint.score == alone.score and joint.late_rise == alone.late_rise


def test_cross_entropy_passes_and_its_negation_is_rejected():
    probe = _probe()
    good = rejection_traces([compile_tree(CE)], [_ones(CE)], probe, 1000, 0.1)[0]
    assert good.score == 1.0 and good.late_rise == 0.0
    anti = "mul(y, log(fx))"
    assert rejection_score(compile_tree(anti), _ones(anti), probe, 1000, 0.1) < 0


def test_the_collapsing_loss_passes_a_short_screen_and_fails_one_run_to_convergence():
    loss, phi, probe = compile_tree(COLLAPSING), _ones(COLLAPSING), _probe()
    (short,) = rejection_traces([loss], [phi], probe, 50, 0.1)
    assert short.score == 1.0  # the old 50-step screen let it through
    (full,) = rejection_traces([loss], [phi], probe, 1000, 0.1)
    assert min(full.metrics) == 0.0 and full.metrics[-1] > 0.5
    assert full.late_rise > 0.5
    assert rejection_reason(full.score, full.late_rise, 0.6, True, 0.1) is not None
    # Even with a threshold of ~0 (the authors' rule), the late rise rejects it.
    reason = rejection_reason(max(full.score, 0.5), full.late_rise, 1e-6, True, 0.1)
    assert reason is not None and "rose again late" in reason


def test_rejection_reason_rules():
    assert rejection_reason(0.9, 0.0, 0.6, True, 0.1) is None
    assert "below threshold" in rejection_reason(0.5, 0.0, 0.6, True, 0.1)
    assert "below threshold" in rejection_reason(-math.inf, 0.0, 0.6, True, 0.1)
    assert "below threshold" in rejection_reason(math.nan, 0.0, 0.6, True, 0.1)
    assert rejection_reason(0.9, 0.3, 0.6, False, 0.1) is None  # late-rise check off
    assert rejection_reason(0.9, 0.05, 0.6, True, 0.1) is None  # within tolerance


def test_non_finite_predictions_score_minus_infinity():
    """An infinite edge weight makes the gradient, and then Adam's predictions, NaN. The
    probe metric of NaN predictions is still a finite number (argmax picks a class), so
    only the finiteness check of the predictions can give the score its -inf."""
    loss = compile_tree(CE)
    phi = _ones(CE)
    phi[0] = math.inf
    (trace,) = rejection_traces([loss], [phi], _probe(), 300, 10.0)
    assert all(math.isfinite(m) for m in trace.metrics)
    assert trace.score == -math.inf
    assert trace.late_rise == 0.0
    assert rejection_reason(trace.score, trace.late_rise, 0.6, True, 0.1) is not None


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    target_scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    target_shift=st.sampled_from([0.0, 5.0, -1e3]),
    outputs=st.integers(1, 3),
)
def test_mse_always_passes_the_regression_screen(seed, target_scale, target_shift, outputs):
    """Whatever the targets' units, minimising MSE moves the predictions onto the targets:
    Adam's step is scaled by the distance to them, so the score stays near 1."""
    generator = torch.Generator().manual_seed(seed)
    predictions = torch.randn(100, outputs, generator=generator) * 0.1
    targets = torch.randn(100, outputs, generator=generator) * target_scale + target_shift
    probe = ScreeningProbe("regression", predictions, targets)
    loss = compile_tree(MSE, task="regression")
    (trace,) = rejection_traces([loss], [torch.ones(loss.n_weights)], probe, 1000, 0.1)
    assert trace.score > 0.99
    assert rejection_reason(trace.score, trace.late_rise, 0.6, True, 0.1) is None


def test_regression_screen_rejects_a_loss_unbounded_below():
    generator = torch.Generator().manual_seed(0)
    probe = ScreeningProbe(
        "regression",
        torch.randn(100, 1, generator=generator),
        torch.randn(100, 1, generator=generator),
    )
    loss = compile_tree("mul(-1, fx)", task="regression")  # minimised by fx -> infinity
    (trace,) = rejection_traces([loss], [torch.ones(loss.n_weights)], probe, 1000, 0.1)
    assert trace.score < 0.6


def test_traces_need_one_phi_per_loss():
    with pytest.raises(ValueError, match="one phi per loss"):
        rejection_traces([compile_tree(CE)], [], _probe(), 10, 0.1)
    assert rejection_traces([], [], _probe(), 10, 0.1) == []
