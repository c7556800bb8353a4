"""Compiled trees against independent oracles: sympy/numpy and torch's own losses."""

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, grad, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from evomal.symbolic import compile_elementwise, compile_tree, gen_half_and_half, parse
from evomal.symbolic.compile import nonfinite_reason
from evomal.symbolic.sympy_form import FX, Y, to_sympy

CE = "mul(-1, mul(y, log(fx)))"
MSE = "square(sub(fx, y))"


def _sympy_numpy(tree, phi=None):
    return sympy.lambdify((Y, FX), to_sympy(tree, phi), modules="numpy")


def test_500_random_trees_match_sympy_lambdify():
    """Oracle: the compiled torch function equals sympy's numpy evaluation, at phi = 1
    (the plain tree) and at random phi (the meta-loss network)."""
    rng = np.random.default_rng(2024)
    y = rng.normal(scale=2.0, size=64)
    fx = rng.normal(scale=2.0, size=64)
    y[:8], fx[:8] = rng.integers(0, 2, 8), rng.uniform(0, 1, 8)
    checked = 0
    while checked < 500:
        tree = gen_half_and_half(rng, 1, 5)
        phi = rng.normal(1.0, 0.3, tree.n_edges)
        fn = compile_elementwise(tree)
        for weights in (np.ones(tree.n_edges), phi):
            got = fn(torch.tensor(fx), torch.tensor(y), torch.tensor(weights)).numpy()
            expected = np.asarray(_sympy_numpy(tree, weights.tolist())(y, fx), dtype=float)
            got, expected = np.broadcast_arrays(got, expected)
            finite = np.isfinite(expected)
            assert np.array_equal(np.isfinite(got), finite), str(tree)
            np.testing.assert_allclose(
                got[finite], expected[finite], rtol=1e-7, atol=1e-9, err_msg=str(tree)
            )
        checked += 1


def test_phi_ones_reproduces_plain_tree():
    tree = parse("add(div(fx, y), mul(-1, sqrt(sub(y, 1))))")
    fx, y = torch.rand(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    plain = _sympy_numpy(tree)(y.numpy(), fx.numpy())
    got = compile_elementwise(tree)(fx, y, torch.ones(tree.n_edges, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), plain, rtol=1e-12)


def test_cross_entropy_tree_matches_f_cross_entropy():
    """Tolerance: log(p + eps) - log(p) <= eps / p = 1e-10 / 1e-3 = 1e-7 per sample when
    every probability is above 1e-3; we assert 1e-5 absolute (float32 round-off)."""
    torch.manual_seed(0)
    logits = torch.randn(512, 10)
    labels = torch.randint(0, 10, (512,))
    assert torch.softmax(logits, -1).min() > 1e-3
    loss = compile_tree(CE, "classification")
    ours = loss(logits, labels, torch.ones(5))
    assert abs(ours.item() - F.cross_entropy(logits, labels).item()) < 1e-5
    # gradients with respect to the logits agree too
    lg = logits.clone().requires_grad_(True)
    (g_ours,) = torch.autograd.grad(loss(lg, labels, torch.ones(5)), lg)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(lg, labels), lg)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)
    # per-sample reduction matches reduction="none"
    per = loss(logits, labels, torch.ones(5), reduction="none")
    assert torch.allclose(per, F.cross_entropy(logits, labels, reduction="none"), atol=1e-5)


def test_single_output_classification_is_binary_cross_entropy():
    torch.manual_seed(1)
    z = torch.randn(256, 1) * 2
    t = torch.randint(0, 2, (256,))
    ours = compile_tree(CE, "classification")(z, t, torch.ones(5))
    ref = F.binary_cross_entropy_with_logits(z.squeeze(1), t.float())
    assert abs(ours.item() - ref.item()) < 1e-5


def test_soft_targets_are_used_as_given():
    logits = torch.randn(16, 4)
    target = torch.softmax(torch.randn(16, 4), -1)
    ours = compile_tree(CE)(logits, target, torch.ones(5))
    ref = F.cross_entropy(logits, target)
    assert abs(ours.item() - ref.item()) < 1e-5


def test_mse_tree_matches_f_mse_loss():
    torch.manual_seed(2)
    pred, target = torch.randn(128, 1), torch.randn(128)
    loss = compile_tree(MSE, "regression")
    ours = loss(pred, target, torch.ones(3))
    assert torch.allclose(ours, F.mse_loss(pred.squeeze(1), target), rtol=1e-6)
    # several outputs: summed over outputs, averaged over the batch
    pred3, target3 = torch.randn(64, 3), torch.randn(64, 3)
    ours3 = loss(pred3, target3, torch.ones(3))
    assert torch.allclose(ours3, F.mse_loss(pred3, target3, reduction="sum") / 64, rtol=1e-6)


def test_softplus_output_activation():
    pred, target = torch.randn(32, 2), torch.randn(32, 2)
    tree = parse("sub(fx, y)")
    ours = compile_tree(tree, "regression", "softplus")(pred, target, torch.ones(2))
    assert torch.allclose(ours, F.softplus(pred - target).sum(1).mean())


def test_gradcheck_with_respect_to_phi_double():
    torch.manual_seed(3)
    tree = parse("add(mul(y, log(fx)), div(square(sub(fx, y)), tanh(fx)))")
    loss = compile_tree(tree, "classification")
    logits = torch.randn(8, 5, dtype=torch.float64)
    labels = torch.randint(0, 5, (8,))
    phi = torch.normal(1.0, 0.1, (tree.n_edges,), dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(logits, labels, p), (phi,))
    assert torch.autograd.gradgradcheck(lambda p: loss(logits, labels, p), (phi,))


def test_works_with_torch_func_grad_vmap_and_functional_call():
    torch.manual_seed(4)
    loss = compile_tree(CE)
    model = torch.nn.Linear(6, 3)
    x, labels = torch.randn(20, 6), torch.randint(0, 3, (20,))
    params = dict(model.named_parameters())

    def objective(p, phi):
        return loss(functional_call(model, p, (x,)), labels, phi)

    g = grad(objective)(params, torch.ones(5))
    model.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    for name, value in g.items():
        assert torch.allclose(value, params[name].grad, atol=1e-6)
    # vmap over a batch of phi vectors equals a Python loop
    phis = torch.normal(1.0, 0.1, (4, 5))
    batched = vmap(objective, in_dims=(None, 0))(params, phis)
    looped = torch.stack([objective(params, p) for p in phis])
    assert torch.allclose(batched, looped, atol=1e-6)
    # vmap over stacked predictions/labels (per-task losses)
    preds = torch.randn(3, 20, 3)
    labs = torch.randint(0, 3, (3, 20))
    batched = vmap(loss, in_dims=(0, 0, None))(preds, labs, torch.ones(5))
    looped = torch.stack([loss(preds[i], labs[i], torch.ones(5)) for i in range(3)])
    assert torch.allclose(batched, looped, atol=1e-6)


def test_double_backward_through_an_sgd_step():
    """The local search differentiates through theta - lr * grad(loss): needs create_graph."""
    torch.manual_seed(5)
    tree = parse("mul(-1, mul(y, log(square(fx))))")
    loss = compile_tree(tree)
    w = torch.randn(4, 3, requires_grad=True)
    phi = torch.ones(tree.n_edges, requires_grad=True)
    x, labels = torch.randn(10, 4), torch.randint(0, 3, (10,))
    (gw,) = torch.autograd.grad(loss(x @ w, labels, phi), w, create_graph=True)
    w_new = w - 0.1 * gw
    task = F.cross_entropy(x @ w_new, labels)
    (gphi,) = torch.autograd.grad(task, phi)
    assert torch.isfinite(gphi).all() and gphi.abs().sum() > 0


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def test_no_tree_walk_and_no_constants_per_call(monkeypatch):
    tree = parse("add(mul(-1, mul(y, log(fx))), mul(1, sqrt(div(fx, y))))")
    loss = compile_tree(tree, "regression")
    pred, target, phi = torch.rand(8, 3), torch.rand(8, 3), torch.ones(tree.n_edges)
    expected = loss(pred, target, phi)

    def forbidden(*args, **kwargs):
        raise AssertionError("tree structure consulted during a call")

    # The call must not consult the tree or the primitive table.
    import evomal.symbolic.compile as compile_module
    import evomal.symbolic.tree as tree_module

    monkeypatch.setattr(tree_module, "arity", forbidden)
    monkeypatch.setattr(compile_module, "PRIMITIVES", {})
    monkeypatch.setattr(type(tree), "__iter__", forbidden)
    with _RecordOps() as rec:
        again = loss(pred, target, phi)
    assert torch.equal(again, expected)
    factories = {
        "ones",
        "zeros",
        "full",
        "scalar_tensor",
        "empty",
        "lift_fresh",
        "_to_copy",
        "arange",
        "tensor",
    }
    assert not factories & set(rec.ops), rec.ops


def test_compiled_loss_pickles_by_value():
    import pickle

    loss = compile_tree(CE)
    clone = pickle.loads(pickle.dumps(loss))
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert torch.equal(clone(logits, labels, torch.ones(5)), loss(logits, labels, torch.ones(5)))


def test_input_errors_are_clear():
    loss = compile_tree(CE)
    with pytest.raises(ValueError, match="batch size"):
        loss(torch.randn(4, 3), torch.tensor([0, 1]), torch.ones(5))
    with pytest.raises(ValueError, match="integer labels"):
        loss(torch.randn(4, 3), torch.zeros(4, 2, dtype=torch.long), torch.ones(5))
    with pytest.raises(ValueError, match="task kind"):
        compile_tree(CE, "ranking")
    with pytest.raises(ValueError, match="output activation"):
        compile_tree(CE, "classification", "relu")
    with pytest.raises(ValueError, match="do not match"):
        compile_tree(MSE, "regression")(torch.randn(4, 2), torch.randn(4, 3), torch.ones(3))


_PROBS = st.lists(
    st.sampled_from([0.0, 1.0, 1e-7, 1e-3, 0.25, 0.5, 0.75, 0.999, 1 - 1e-7]),
    min_size=2,
    max_size=12,
)


@settings(max_examples=2000)
@given(
    seed=st.integers(0, 2**32 - 1),
    fx=_PROBS,
    labels=st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=12),
)
def test_closure_random_trees_height_6_on_classification_inputs(seed, fx, labels):
    """GP closure on the classification input range: 2,000 random trees of height <= 6
    (phi drawn as at initialisation) give a finite loss and finite gradients with respect
    to the predictions and phi, including probabilities of exactly 0 and 1."""
    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 0, 6)
    n = min(len(fx), len(labels))
    fx_t = torch.tensor(fx[:n], dtype=torch.float32).requires_grad_(True)
    y_t = torch.tensor(labels[:n], dtype=torch.float32)
    phi = torch.tensor(rng.normal(1.0, 1e-3, tree.n_edges), dtype=torch.float32)
    phi.requires_grad_(True)
    value = compile_elementwise(tree)(fx_t, y_t, phi)
    total = value.sum()
    assert torch.isfinite(value).all(), str(tree)
    if total.requires_grad:
        grads = torch.autograd.grad(total, (fx_t, phi), allow_unused=True)
        for g in grads:
            assert g is None or torch.isfinite(g).all(), str(tree)


def test_nonfinite_check_reports_float32_overflow():
    """Five squarings of log(0 + eps) = -23 give 23**32 > 3.4e38: the documented check
    flags it, while cross-entropy at the same inputs is fine."""
    deep = parse("square(square(square(square(square(log(fx))))))")
    logits = torch.tensor([[200.0, 0.0, 0.0]])  # softmax gives exact zeros in float32
    labels = torch.tensor([0])
    reason = nonfinite_reason(compile_tree(deep), logits, labels, torch.ones(deep.n_edges))
    assert reason is not None and ("inf" in reason or "not finite" in reason)
    assert nonfinite_reason(compile_tree(CE), logits, labels, torch.ones(5)) is None
