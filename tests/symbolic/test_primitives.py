"""Each primitive: torch form against sympy form, and GP closure at extreme finite inputs."""

import itertools

import numpy as np
import pytest
import sympy
import torch

from evomal.symbolic.primitives import EPS, PRIMITIVES, PrimitiveSet, arity

F32 = torch.finfo(torch.float32)
EXTREMES = [
    0.0,
    F32.tiny,
    -F32.tiny,
    1e-45,
    -1e-45,
    1e-20,
    1.0,
    -1.0,
    1e19,
    -1e19,
    1e30,
    -1e30,
    F32.max,
    -F32.max,
]


def test_table_1_names_and_arities():
    assert {n: p.arity for n, p in PRIMITIVES.items()} == {
        "add": 2,
        "sub": 2,
        "mul": 2,
        "div": 2,
        "min": 2,
        "max": 2,
        "sign": 1,
        "square": 1,
        "abs": 1,
        "log": 1,
        "sqrt": 1,
        "tanh": 1,
    }
    assert arity("y") == arity("fx") == arity("1") == arity("-1") == 0
    with pytest.raises(KeyError):
        arity("exp")


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_torch_form_matches_sympy_form(name):
    prim = PRIMITIVES[name]
    symbols = sympy.symbols(f"a0:{prim.arity}", real=True)
    fn = sympy.lambdify(symbols, prim.sympy_fn(*symbols), modules="numpy")
    rng = np.random.default_rng(0)
    points = rng.normal(scale=3.0, size=(200, prim.arity))
    points[:5] = 0.0  # include exact zeros (sign, abs, protected log/sqrt)
    expected = np.asarray(fn(*points.T), dtype=np.float64) * np.ones(200)
    got = prim.torch_fn(*torch.tensor(points.T, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_protected_operators_use_eps():
    x = torch.tensor([0.0, -4.0], dtype=torch.float64)
    assert torch.allclose(PRIMITIVES["log"].torch_fn(x), torch.log(x.abs() + EPS))
    assert torch.allclose(PRIMITIVES["sqrt"].torch_fn(x), torch.sqrt(x.abs() + EPS))
    a, b = torch.tensor([3.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64)
    assert torch.allclose(PRIMITIVES["div"].torch_fn(a, b), a / torch.sqrt(1 + b**2))


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_closure_no_nan_at_extreme_finite_inputs(name):
    """GP closure: any finite inputs give a value and gradients without NaN (float32)."""
    prim = PRIMITIVES[name]
    for args in itertools.product(EXTREMES, repeat=prim.arity):
        xs = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in args]
        out = prim.torch_fn(*xs)
        assert not torch.isnan(out), (name, args)
        grads = torch.autograd.grad(out, xs, allow_unused=True)
        for g in grads:
            assert g is None or not torch.isnan(g), (name, args, grads)


def test_primitive_set_validates_names():
    assert PrimitiveSet().functions == tuple(PRIMITIVES)
    assert set(PrimitiveSet(functions=("add", "mul", "div")).binary) == {"add", "mul", "div"}
    with pytest.raises(ValueError, match="exp"):
        PrimitiveSet(functions=("add", "exp"))
    with pytest.raises(ValueError, match="at least one"):
        PrimitiveSet(functions=())
