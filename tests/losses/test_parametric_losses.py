"""TaylorGLO's polynomial and ML3's network: structure, oracles, save/load, transfer checks."""

import numpy as np
import pytest
import sympy
import torch

from evomal.losses import LossFileError, NeuralLoss, TaylorLoss, load_loss
from evomal.losses.neural import NeuralLossFunction, n_parameters
from evomal.losses.taylor import TaylorLossFunction, taylor_terms
from evomal.losses.taylor import n_parameters as taylor_parameters


def test_taylor_term_structure():
    """Third order in (y, f): 10 monomials, the 4 in y alone dropped, 6 kept, 8 parameters
    with the centre -- the count TaylorGLO reports for its third-order losses."""
    full = [(i, j) for i in range(4) for j in range(4) if i + j <= 3]
    assert len(full) == 10
    kept = taylor_terms(3)
    assert sorted(kept) == sorted(t for t in full if t[1] >= 1)
    assert len(kept) == 6
    assert taylor_parameters(3) == 8
    assert all(j >= 1 for _, j in kept)


def test_every_kept_term_affects_training():
    """Each coefficient alone gives a loss with a non-zero derivative in f(x)."""
    fn = TaylorLossFunction("regression")
    f = torch.linspace(-1, 1, 7, dtype=torch.float64).requires_grad_(True)
    y = torch.linspace(0.5, -0.5, 7, dtype=torch.float64)
    for k in range(6):
        params = torch.zeros(8, dtype=torch.float64)
        params[0], params[1], params[2 + k] = 0.3, -0.2, 1.0
        (grad,) = torch.autograd.grad(fn.elementwise(f, y, params).sum(), f)
        assert grad.abs().max() > 1e-6, kept_term(k)


def kept_term(k):
    return taylor_terms(3)[k]


def test_taylor_polynomial_matches_sympy():
    ys, fs = sympy.symbols("y f")
    rng = np.random.default_rng(0)
    params = rng.normal(size=8)
    expr = sum(
        params[2 + k] * (ys - params[0]) ** i * (fs - params[1]) ** j
        for k, (i, j) in enumerate(taylor_terms(3))
    )
    oracle = sympy.lambdify((ys, fs), sympy.expand(expr), "numpy")
    y, f = rng.normal(size=50), rng.normal(size=50)
    got = TaylorLossFunction("regression").elementwise(
        torch.tensor(f), torch.tensor(y), torch.tensor(params)
    )
    np.testing.assert_allclose(got.numpy(), oracle(y, f), rtol=1e-10)


def test_taylor_loss_save_load_and_reject(tmp_path):
    loss = TaylorLoss(np.linspace(-1, 1, 8), "classification")
    loss.save(tmp_path / "t.json")
    back = load_loss(tmp_path / "t.json")
    assert isinstance(back, TaylorLoss)
    logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
    assert torch.equal(back(logits, labels), loss(logits, labels))
    doc = loss.to_dict()
    doc["params"] = doc["params"][:5]
    with pytest.raises(ValueError, match="expected 8"):
        TaylorLoss.from_dict(doc)


def test_ml3_network_shape_and_parameter_count():
    assert n_parameters((50, 50)) == 2 * 50 + 50 + 50 * 50 + 50 + 50 + 1 == 2751
    fn = NeuralLossFunction()
    params = fn.initial_params(0)
    assert params.shape == (2751,)
    logits, labels = torch.randn(16, 10), torch.randint(0, 10, (16,))
    value = fn(logits, labels, params)
    assert value.ndim == 0
    assert value > 0  # softplus output


def test_ml3_forward_matches_an_nn_sequential():
    """Oracle: the flat-parameter network equals nn.Sequential applied to every
    (probability, one-hot label) pair, summed over classes, averaged over the batch."""
    fn = NeuralLossFunction("classification", (5, 4))
    params = fn.initial_params(1) + 0.01  # non-zero biases too
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 4),
        torch.nn.ReLU(),
        torch.nn.Linear(4, 1),
        torch.nn.Softplus(),
    )
    torch.nn.utils.vector_to_parameters(params, net.parameters())
    logits, labels = torch.randn(7, 3), torch.randint(0, 3, (7,))
    probs = torch.softmax(logits, -1)
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    pairs = torch.stack([probs, onehot], dim=-1)  # [7, 3, 2]
    expected = net(pairs).squeeze(-1).sum(1).mean()
    torch.testing.assert_close(fn(logits, labels, params), expected)


def test_ml3_reads_both_prediction_and_label():
    fn = NeuralLossFunction()
    params = fn.initial_params(0)
    logits = torch.randn(64, 10, requires_grad=True)
    labels = torch.randint(0, 10, (64,))
    (grad,) = torch.autograd.grad(fn(logits, labels, params), logits)
    assert torch.isfinite(grad).all()
    assert grad.abs().max() > 0
    assert fn(logits, labels, params) != fn(logits, (labels + 1) % 10, params)


def test_ml3_transfers_across_class_counts(tmp_path):
    loss = NeuralLoss(NeuralLossFunction().initial_params(0))
    loss.save(tmp_path / "n.json")
    back = load_loss(tmp_path / "n.json")
    assert isinstance(back, NeuralLoss)
    for classes in (3, 100):
        logits, labels = torch.randn(4, classes), torch.randint(0, classes, (4,))
        assert torch.equal(back(logits, labels), loss(logits, labels))


def test_unknown_kind_is_rejected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "evomal-loss", "version": 1, "kind": "transformer"}')
    with pytest.raises(LossFileError, match="unknown loss kind"):
        load_loss(path)
