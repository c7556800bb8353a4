"""PopulationProgram (K trees in one pass) against the trees compiled one by one.

The oracle is :func:`compile_elementwise` per tree (itself tested against
sympy). Values, gradients with respect to the predictions and to every
``phi_k``, and the second derivatives the local search takes, must agree to
float64 rounding for random populations of random trees.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.symbolic import compile_tree, gen_half_and_half, parse
from evomal.symbolic.population import compile_population


def _population(seed: int, k: int, max_height: int = 6):
    rng = np.random.default_rng(seed)
    return [gen_half_and_half(rng, 0, max_height) for _ in range(k)]


def _inputs(seed: int, k: int, shape=(5, 4)):
    gen = torch.Generator().manual_seed(seed)
    fx = torch.rand(k, *shape, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    y = torch.nn.functional.one_hot(torch.randint(0, shape[-1], shape[:-1], generator=gen),
                                    shape[-1]).double()  # fmt: skip
    return fx, y


def _phis(trees, seed: int):
    gen = torch.Generator().manual_seed(seed + 1)
    return [1 + 0.3 * torch.randn(t.n_edges, generator=gen, dtype=torch.float64) for t in trees]


def _one_by_one(trees, fx, y, phis):
    return torch.stack([compile_tree(t).pointwise(fx[k], y, phis[k]) for k, t in enumerate(trees)])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 12))
def test_values_and_gradients_equal_one_by_one(seed, k):
    trees = _population(seed, k)
    fx, y = _inputs(seed, k)
    program = compile_population(trees)

    def run(fn):
        fx_ = fx.clone().requires_grad_(True)
        phis = [p.clone().requires_grad_(True) for p in _phis(trees, seed)]
        out = fn(trees, fx_, y, phis) if fn is _one_by_one else program(fx_, y, phis)
        weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).view_as(out)
        wrt = [fx_, *phis]
        if not out.requires_grad:  # lone constants only: nothing to differentiate
            return out.detach(), [torch.zeros_like(w) for w in wrt]
        grads = torch.autograd.grad((out * weights).sum(), wrt, allow_unused=True)
        return out.detach(), [
            g if g is not None else torch.zeros_like(w) for g, w in zip(grads, wrt, strict=True)
        ]

    expected, expected_grads = run(_one_by_one)
    got, got_grads = run(program)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-11)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 8))
def test_second_derivatives_equal_one_by_one(seed, k):
    """The local search differentiates d loss / d fx once more with respect to phi."""
    trees = _population(seed, k, max_height=4)
    fx, y = _inputs(seed, k)
    program = compile_population(trees)

    def run(use_program):
        fx_ = fx.clone().requires_grad_(True)
        phis = [p.clone().requires_grad_(True) for p in _phis(trees, seed)]
        out = program(fx_, y, phis) if use_program else _one_by_one(trees, fx_, y, phis)
        if not out.requires_grad:
            return [torch.zeros_like(p) for p in phis]
        (g,) = torch.autograd.grad(out.sum(), fx_, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return [torch.zeros_like(p) for p in phis]
        second = torch.autograd.grad((g * g).sum(), phis, allow_unused=True)
        return [
            s if s is not None else torch.zeros_like(p) for s, p in zip(second, phis, strict=True)
        ]

    for got, expected in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


def test_every_primitive_and_terminal_in_one_population():
    trees = [parse(t) for t in (
        "add(fx, y)", "sub(fx, 1)", "mul(-1, y)", "div(fx, sub(y, fx))", "min(fx, -1)",
        "max(y, fx)", "sign(sub(fx, y))", "square(fx)", "abs(sub(y, fx))", "log(fx)",
        "sqrt(mul(y, fx))", "tanh(fx)", "fx", "y", "1", "-1", "add(1, -1)",
    )]  # fmt: skip
    fx, y = _inputs(3, len(trees))
    phis = _phis(trees, 3)
    torch.testing.assert_close(
        compile_population(trees)(fx, y, phis), _one_by_one(trees, fx, y, phis)
    )


def test_flat_phi_and_float32():
    trees = _population(7, 5)
    fx, y = _inputs(7, 5)
    phis = _phis(trees, 7)
    program = compile_population(trees)
    flat = torch.cat(phis)
    torch.testing.assert_close(program(fx, y, flat), program(fx, y, phis))
    got = program(fx.float(), y.float(), [p.float() for p in phis])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _one_by_one(trees, fx, y, phis), rtol=1e-4, atol=1e-5)


def test_wrong_stack_size_is_refused():
    program = compile_population(["add(fx, y)", "fx"])
    fx, y = _inputs(0, 3)
    with pytest.raises(ValueError, match="3 predictions for 2 trees"):
        program(fx, y, [torch.ones(2), torch.ones(0)])


def test_a_non_finite_prediction_stays_in_its_own_tree():
    """A diverged candidate (NaN or inf predictions) must not touch the others' values or
    gradients: the slices never mix (population training relies on it)."""
    trees = [parse(t) for t in ("mul(fx, y)", "add(fx, log(fx))", "sub(square(fx), y)")]
    fx, y = _inputs(1, 3)
    phis = _phis(trees, 1)
    for bad in (float("nan"), float("inf")):
        poisoned = fx.clone()
        poisoned[1] = bad
        poisoned.requires_grad_(True)
        out = compile_population(trees)(poisoned, y, phis)
        assert torch.isfinite(out[[0, 2]]).all()
        torch.testing.assert_close(out[[0, 2]], _one_by_one(trees, fx, y, phis)[[0, 2]])
        (grad,) = torch.autograd.grad(out[[0, 2]].sum(), poisoned)
        assert torch.isfinite(grad[[0, 2]]).all()  # row 1 may be NaN: 0 * NaN, its own slice
