"""The zoo of known losses: oracles from the papers' formulas, trees, properties, files.

Every oracle below is the paper's formula written out again in numpy (float64), independently
of the implementation (no log-space tricks, no shared helpers), so a wrong sign, a missing
factor or a swapped parameter shows up as a mismatch.
"""

import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evomal import LearnedLoss
from evomal.errors import LossFileError, UnknownNameError
from evomal.losses import load_loss
from evomal.losses.zoo import (
    FAMILIES,
    ZooLoss,
    check_params,
    default_families,
    family,
    focal,
    parse_loss_spec,
    square_scaling,
)

# -- the papers' formulas, in numpy -----------------------------------------------------------


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def one_hot(y, k):
    return np.eye(k)[y]


def ce_np(z, y):
    p = softmax(z)
    return -np.log(p[np.arange(len(y)), y])


def p_true(z, y):
    return softmax(z)[np.arange(len(y)), y]


def ls_np(z, y, eps):
    k = z.shape[1]
    q = (1 - eps) * one_hot(y, k) + eps / k
    return -(q * np.log(softmax(z))).sum(axis=1)


def focal_np(z, y, gamma):
    p = p_true(z, y)
    return -((1 - p) ** gamma) * np.log(p)


def poly1_np(z, y, eps):
    p = p_true(z, y)
    return -np.log(p) + eps * (1 - p)


def brier_np(z, y):
    return ((softmax(z) - one_hot(y, z.shape[1])) ** 2).sum(axis=1)


def square_np(z, y, k, m):
    n, n_classes = z.shape
    out = np.zeros(n)
    for i in range(n):
        for j in range(n_classes):
            out[i] += k * (z[i, j] - m) ** 2 if j == y[i] else z[i, j] ** 2
    return out / n_classes


def mae_np(z, y):
    return np.abs(softmax(z) - one_hot(y, z.shape[1])).sum(axis=1)


def gce_np(z, y, q):
    return (1 - p_true(z, y) ** q) / q


def sce_np(z, y, alpha, beta):
    t = one_hot(y, z.shape[1])
    log_t = np.where(t > 0, np.log(np.where(t > 0, t, 1.0)), -4.0)  # log 0 clipped to A = -4
    return alpha * ce_np(z, y) - beta * (softmax(z) * log_t).sum(axis=1)


def nce_mae_np(z, y, alpha, beta):
    log_p = np.log(softmax(z))
    nce = -log_p[np.arange(len(y)), y] / -log_p.sum(axis=1)
    return alpha * nce + beta * mae_np(z, y)


def logit_adjust_np(z, y, counts, tau):
    n = np.maximum(np.asarray(counts, float), 1)
    return ce_np(z + tau * np.log(n / n.sum()), y)


def balanced_softmax_np(z, y, counts):
    return ce_np(z + np.log(np.maximum(np.asarray(counts, float), 1)), y)


def ldam_np(z, y, counts, m, s=1.0):
    n = np.maximum(np.asarray(counts, float), 1)
    delta = n**-0.25
    delta = delta * m / delta.max()  # C so that max Delta = m
    shifted = z - one_hot(y, z.shape[1]) * delta[y][:, None]
    return ce_np(s * shifted, y)


def class_balanced_np(z, y, counts, beta):
    n = np.maximum(np.asarray(counts, float), 1)
    w = (1 - beta) / (1 - beta**n)
    w = w * len(n) / w.sum()
    return w[y] * ce_np(z, y)


CLASSIFICATION_ORACLES = [
    ("ce", (), ce_np),
    ("label_smoothing", (0.2,), ls_np),
    ("focal", (0.5,), focal_np),
    ("focal", (2.0,), focal_np),
    ("poly1", (-1.0,), poly1_np),
    ("poly1", (2.0,), poly1_np),
    ("brier", (), brier_np),
    ("mae", (), mae_np),
    ("gce", (0.3,), gce_np),
    ("gce", (0.7,), gce_np),
    ("sce", (0.1, 1.0), sce_np),
    ("sce", (1.0, 0.5), sce_np),
    ("nce_mae", (1.0, 1.0), nce_mae_np),
    ("nce_mae", (10.0, 0.1), nce_mae_np),
]
IMBALANCE_ORACLES = [
    ("logit_adjust", (0.5,), logit_adjust_np),
    ("logit_adjust", (2.0,), logit_adjust_np),
    ("balanced_softmax", (), balanced_softmax_np),
    ("ldam", (0.3,), ldam_np),
    ("ldam", (0.5,), ldam_np),
    ("class_balanced", (0.99,), class_balanced_np),
    ("class_balanced", (0.9999,), class_balanced_np),
]
CLASSIFICATION = [name for name, f in FAMILIES.items() if f.kind == "classification"]
REGRESSION = [name for name, f in FAMILIES.items() if f.kind == "regression"]


def random_batch(seed, n_classes, batch=16, scale=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=scale, size=(batch, n_classes))
    y = rng.integers(0, n_classes, size=batch)
    counts = rng.integers(0, 500, size=n_classes)
    counts[0] = 0  # an empty class: clamped to 1, never log 0
    return z, y, [int(c) for c in counts]


def per_sample(loss, z, y):
    loss = ZooLoss(loss.name, loss.params, loss.class_counts, loss.settings, reduction="none")
    return loss(torch.tensor(z), torch.tensor(y)).numpy()


# -- oracles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize(("name", "params", "oracle"), CLASSIFICATION_ORACLES)
def test_classification_losses_match_their_papers(name, params, oracle, n_classes):
    for seed in range(3):
        z, y, _ = random_batch(seed, n_classes)
        got = per_sample(ZooLoss(name, params), z, y)
        np.testing.assert_allclose(got, oracle(z, y, *params), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize(("name", "params", "oracle"), IMBALANCE_ORACLES)
def test_imbalance_losses_match_their_papers(name, params, oracle, n_classes):
    for seed in range(3):
        z, y, counts = random_batch(seed, n_classes)
        got = per_sample(ZooLoss(name, params, counts), z, y)
        np.testing.assert_allclose(got, oracle(z, y, counts, *params), rtol=1e-9, atol=1e-12)


def test_ldam_works_on_raw_logits():
    """At zero margin LDAM is cross-entropy itself, values and gradients.

    The authors' s = 30 suits their cosine logits; on raw logits it multiplied
    the gradient, hence the effective lr, by 30, and the zoo's LDAM cells
    trained to chance (balanced error 0.900 on MNIST-1D with imbalance 10).
    """
    z, y, counts = random_batch(0, 4)
    logits = torch.tensor(z, requires_grad=True)
    labels = torch.tensor(y)
    for loss in (ZooLoss("ldam", [0.0], counts), ZooLoss("ldam", [0.0]).bound(4, counts)):
        got, want = loss(logits, labels), F.cross_entropy(logits, labels)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        (g_got,) = torch.autograd.grad(got, logits)
        (g_want,) = torch.autograd.grad(want, logits)
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=0)


def test_ldam_scale_is_a_recorded_setting():
    """The scale is written to the loss file; the authors' 30 is one setting away."""
    z, y, counts = random_batch(1, 5)
    bound = ZooLoss("ldam", [0.5]).bound(5, counts)
    assert bound.settings == {"s": 1.0} and bound.expression == "ldam(max_margin=0.5, s=1)"
    back = ZooLoss.from_dict(bound.to_dict())
    assert back.settings == {"s": 1.0} and back.class_counts == tuple(counts)
    authors = ZooLoss("ldam", [0.5], counts, settings={"s": 30.0})
    assert authors.bound(5, counts).settings == {"s": 30.0}  # set already: kept
    np.testing.assert_allclose(
        per_sample(authors, z, y), ldam_np(z, y, counts, 0.5, s=30.0), rtol=1e-9, atol=1e-12
    )
    with pytest.raises(LossFileError, match="ldam: setting s must be a positive number"):
        ZooLoss("ldam", [0.5], settings={"s": 0.0})


@pytest.mark.parametrize(("n_classes", "k", "m"), [(3, 1.0, 1.0), (50, 1.0, 15.0)])
def test_square_loss_matches_hui_and_belkin(n_classes, k, m):
    z, y, _ = random_batch(0, n_classes)
    bound = ZooLoss("square").bound(n_classes)
    assert bound.settings == {"k": k, "M": m}
    for loss in (ZooLoss("square"), bound):  # unbound: the same rule from the logits' width
        np.testing.assert_allclose(per_sample(loss, z, y), square_np(z, y, k, m), rtol=1e-12)
    explicit = ZooLoss("square", settings={"k": 3.0, "M": 2.0})
    np.testing.assert_allclose(per_sample(explicit, z, y), square_np(z, y, 3.0, 2.0), rtol=1e-12)


def test_square_scaling_rule():
    """Plain up to 41 classes, then the paper's (1, 15) from 42 and (15, 30) from 1000."""
    assert [square_scaling(k) for k in (2, 10, 41)] == [(1.0, 1.0)] * 3
    assert [square_scaling(k) for k in (42, 52, 100, 999)] == [(1.0, 15.0)] * 4
    assert [square_scaling(k) for k in (1000, 21843)] == [(15.0, 30.0)] * 2
    assert ZooLoss("square", settings={"k": 2.0}).bound(10).settings == {"k": 2.0, "M": 1.0}


def test_label_smoothing_is_torchs():
    z, y, _ = random_batch(1, 6)
    for eps in (0.0, 0.05, 0.1, 0.2, 1.0):
        expected = F.cross_entropy(torch.tensor(z), torch.tensor(y), label_smoothing=eps)
        got = ZooLoss("label_smoothing", [eps])(torch.tensor(z), torch.tensor(y))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_regression_losses_match_their_formulas():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(scale=2, size=(32, 3)), rng.normal(scale=2, size=(32, 3))
    d = pred - target
    oracles = {
        ("mse", ()): (d**2).mean(axis=1),
        ("l1", ()): np.abs(d).mean(axis=1),
        ("huber", (0.5,)): np.where(np.abs(d) <= 0.5, 0.5 * d**2, 0.5 * (np.abs(d) - 0.25)),
        ("huber", (2.0,)): np.where(np.abs(d) <= 2, 0.5 * d**2, 2 * (np.abs(d) - 1)),
        ("log_cosh", ()): np.log(np.cosh(d)),
    }
    for (name, params), elementwise in oracles.items():
        got = per_sample(ZooLoss(name, params), pred, target)
        expected = elementwise.reshape(32, -1).mean(axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)
    p, t = torch.tensor(pred), torch.tensor(target)
    for delta in (0.5, 1.0, 2.0):
        torch.testing.assert_close(ZooLoss("huber", [delta])(p, t), F.huber_loss(p, t, delta=delta))


def test_log_cosh_is_stable_far_out():
    pred = torch.tensor([[1e4], [-1e4], [0.0]], requires_grad=True)
    value = ZooLoss("log_cosh", reduction="none")(pred, torch.zeros(3))
    far = 1e4 - float(np.log(2))
    torch.testing.assert_close(value, torch.tensor([far, far, 0.0]))
    value.sum().backward()
    torch.testing.assert_close(pred.grad, torch.tensor([[1.0], [-1.0], [0.0]]))


def test_ce_and_mse_are_the_task_losses_exactly():
    """Same values and same gradients, bit for bit: the zoo's ce and mse are the baseline."""
    torch.manual_seed(0)
    for logits_shape in ((33, 10), (33, 1)):
        logits = torch.randn(*logits_shape, requires_grad=True)
        labels = torch.randint(0, max(2, logits_shape[1]), (33,))
        if logits_shape[1] == 1:
            expected = F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.float())
        else:
            expected = F.cross_entropy(logits, labels)
        got = ZooLoss("ce")(logits, labels)
        assert torch.equal(got, expected)
        (g1,) = torch.autograd.grad(got, logits)
        (g2,) = torch.autograd.grad(expected, logits)
        assert torch.equal(g1, g2)
    pred = torch.randn(33, 1, requires_grad=True)
    target = torch.randn(33)
    got, expected = ZooLoss("mse")(pred, target), F.mse_loss(pred, target.reshape(33, 1))
    assert torch.equal(got, expected)
    assert torch.equal(*(torch.autograd.grad(v, pred)[0] for v in (got, expected)))


def test_class_balanced_takes_a_plain_mean():
    """Cui et al.'s batch loss is mean_i w_y CE_i, not F.cross_entropy(weight=w)'s weighted mean."""
    z, y, counts = random_batch(3, 4)
    z, y = torch.tensor(z), torch.tensor(y)
    got = ZooLoss("class_balanced", [0.999], counts)(z, y)
    expected = class_balanced_np(z.numpy(), y.numpy(), counts, 0.999).mean()
    assert got.item() == pytest.approx(expected, rel=1e-12)
    n = np.maximum(np.asarray(counts, float), 1)
    w = (1 - 0.999) / (1 - 0.999**n)
    weighted = F.cross_entropy(z, y, weight=torch.tensor(w * 4 / w.sum()))
    assert abs(got.item() - weighted.item()) > 1e-3


# -- evomal's own trees -----------------------------------------------------------------------


TREES = [
    ("ce", (), "mul(-1, mul(y, log(fx)))", None, 1e-7),
    ("mae", (), "abs(sub(y, fx))", None, 1e-9),
    ("brier", (), "square(sub(fx, y))", None, 1e-9),
    # gce(q=0.5) = 2 (1 - sqrt(p_y)): phi[0] is the edge from y (node 1) to the root mul, so it
    # carries the 2. The protected sqrt is sqrt(|x| + 1e-10), hence the looser tolerance.
    ("gce", (0.5,), "mul(y, sub(1, sqrt(fx)))", [2.0, 1.0, 1.0, 1.0, 1.0], 1e-5),
]


@pytest.mark.parametrize(("name", "params", "expression", "phi", "tol"), TREES)
def test_zoo_losses_equal_evomals_trees(float64, name, params, expression, phi, tol):
    tree = LearnedLoss.from_string(expression, task="classification", phi=phi)
    zoo = ZooLoss(name, params)
    for seed, width in enumerate([5, 2, 1]):  # one output: a sigmoid, both classes kept
        z, y, _ = random_batch(seed, max(width, 2), batch=64, scale=1.0)
        logits = torch.tensor(z[:, :width], requires_grad=True)
        labels = torch.tensor(y)
        values = [loss(logits, labels) for loss in (zoo, tree)]
        torch.testing.assert_close(values[0], values[1], rtol=0, atol=tol)
        grads = [torch.autograd.grad(v, logits)[0] for v in values]
        torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=tol)


# -- properties -------------------------------------------------------------------------------


def logits_and_labels(max_abs):
    finite = st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False)
    shapes = st.tuples(st.integers(1, 4), st.integers(2, 5))
    return shapes.flatmap(
        lambda shape: st.tuples(
            hnp.arrays(np.float64, shape, elements=finite),
            hnp.arrays(np.int64, shape[0], elements=st.integers(0, shape[1] - 1)),
        )
    )


@settings(max_examples=60)
@given(batch=logits_and_labels(1e6), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_every_classification_loss_is_finite_with_finite_gradients(batch, dtype):
    """Any finite logits up to 1e6 (the square loss is quadratic in them: 1e12 is still finite)."""
    z, y = batch
    for name in CLASSIFICATION:
        for params in {FAMILIES[name].default, *FAMILIES[name].grid}:
            logits = torch.tensor(z, dtype=dtype, requires_grad=True)
            loss = ZooLoss(name, params).bound(z.shape[1], [0, *range(1, z.shape[1])])
            value = loss(logits, torch.tensor(y))
            (grad,) = torch.autograd.grad(value, logits)
            assert torch.isfinite(value), (name, params)
            assert torch.isfinite(grad).all(), (name, params)


def test_focal_gradient_is_guarded_at_certainty():
    """For gamma < 1, d(1 - p)^gamma / dp is infinite at p = 1; unguarded, the gradient is NaN."""
    logits = torch.tensor([[100.0, 0.0]], requires_grad=True)  # p_y == 1 in float32
    labels = torch.tensor([0])
    (grad,) = torch.autograd.grad(focal(logits, labels, 0.5).sum(), logits)
    assert torch.isfinite(grad).all()
    log_p_y = F.log_softmax(logits, -1)[:, 0]
    unguarded = -(-torch.expm1(log_p_y)).pow(0.5) * log_p_y
    assert not torch.isfinite(torch.autograd.grad(unguarded.sum(), logits)[0]).all()


def equal_per_sample(a, b, z, y, rtol=1e-9, atol=1e-10):
    np.testing.assert_allclose(per_sample(a, z, y), per_sample(b, z, y), rtol=rtol, atol=atol)


@given(logits_and_labels(20.0))
def test_limits_that_reduce_to_cross_entropy(batch):
    z, y = batch
    ce = ZooLoss("ce")
    zero = [("poly1", [0.0]), ("focal", [0.0]), ("label_smoothing", [0.0]), ("sce", [1.0, 0.0])]
    for name, params in zero:
        equal_per_sample(ZooLoss(name, params), ce, z, y)
    # gce's error against CE is about q (log p)^2 / 2: under 1e-4 here
    equal_per_sample(ZooLoss("gce", [1e-7]), ce, z, y, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        per_sample(ZooLoss("gce", [1.0]), z, y), per_sample(ZooLoss("mae"), z, y) / 2, atol=1e-12
    )


@given(
    logits_and_labels(20.0),
    st.integers(0, 10**6),
    st.floats(0.0, 0.99999),
    st.floats(0.0, 5.0),
)
def test_imbalance_losses_on_balanced_counts_are_cross_entropy(batch, count, beta, tau):
    z, y = batch
    uniform = [count] * z.shape[1]
    ce = ZooLoss("ce")
    equal_per_sample(ZooLoss("logit_adjust", [tau], uniform), ce, z, y)
    equal_per_sample(ZooLoss("balanced_softmax", [], uniform), ce, z, y)
    equal_per_sample(ZooLoss("class_balanced", [beta], uniform), ce, z, y)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_one_output_is_the_two_class_logits_zero_and_z(name):
    """A binary model with one logit z is read as [0, z], as evomal's trees read it."""
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.normal(scale=3, size=(20, 1)), requires_grad=True)
    labels = torch.tensor(rng.integers(0, 2, size=20))
    loss = ZooLoss(name).bound(2, [30, 3])
    one = loss(z, labels)
    two_logits = torch.cat([torch.zeros_like(z), z], dim=1)
    two = loss(two_logits, labels)
    torch.testing.assert_close(one, two, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loss(z.reshape(-1), labels), one)
    (g_one,) = torch.autograd.grad(one, z)
    (g_two,) = torch.autograd.grad(two, z)
    torch.testing.assert_close(g_one, g_two, rtol=1e-6, atol=1e-7)


def test_a_zoo_loss_travels_by_value():
    """Executors send losses to workers by pickling; the bound counts go with them."""
    loss = ZooLoss("ldam", [0.3]).bound(3, [10, 5, 1])
    back = pickle.loads(pickle.dumps(loss))
    z, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    assert back.class_counts == (10, 5, 1) and torch.equal(back(z, y), loss(z, y))


def test_reductions():
    z, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    per = ZooLoss("gce", reduction="none")(z, y)
    assert per.shape == (6,)
    torch.testing.assert_close(ZooLoss("gce", reduction="sum")(z, y), per.sum())
    torch.testing.assert_close(ZooLoss("gce")(z, y), per.mean())


# -- registry ---------------------------------------------------------------------------------


def test_registry_grids_and_defaults():
    grids = {
        "label_smoothing": [(0.05,), (0.1,), (0.2,)],
        "focal": [(0.5,), (1.0,), (2.0,)],
        "poly1": [(-1.0,), (1.0,), (2.0,)],
        "gce": [(0.3,), (0.5,), (0.7,), (1.0,)],
        "sce": [(0.1, 1.0), (1.0, 1.0)],
        "nce_mae": [(1.0, 1.0), (10.0, 0.1)],
        "logit_adjust": [(0.5,), (1.0,), (2.0,)],
        "ldam": [(0.3,), (0.5,)],
        "class_balanced": [(0.99,), (0.999,), (0.9999,)],
        "huber": [(0.5,), (1.0,), (2.0,)],
    }
    for name, f in FAMILIES.items():
        assert list(f.grid) == grids.get(name, []), name
        for params in (f.default, *f.grid):
            assert check_params(f, params) == params
        assert f.label and f.reference and f.kind in ("classification", "regression")
    assert FAMILIES["gce"].default == (0.7,) and FAMILIES["sce"].default == (0.1, 1.0)
    assert FAMILIES["gce"].valid_ranges == "q in (0, 1]"
    imbalance = {"logit_adjust", "balanced_softmax", "ldam", "class_balanced"}
    assert {n for n, f in FAMILIES.items() if f.needs_counts} == imbalance


def test_default_families():
    assert len(default_families("classification", imbalanced=False)) == 10
    assert len(default_families("classification", imbalanced=True)) == 14
    assert default_families("regression") == ["mse", "l1", "huber", "log_cosh"]
    assert "ldam" not in default_families("classification")


def test_family_and_parameter_errors_are_one_line():
    with pytest.raises(UnknownNameError, match=r"unknown zoo loss 'hinge'; known: ce, .*gce"):
        family("hinge")
    cases = [
        ("gce", [1.5], r"gce: q must be in \(0, 1\], got 1.5"),
        ("gce", [0.0], r"q must be in \(0, 1\]"),
        ("poly1", [-2.0], r"eps must be in \[-1, inf\)"),
        ("class_balanced", [1.0], r"beta must be in \[0, 1\)"),
        ("huber", [float("nan")], r"delta must be in \(0, inf\)"),
        ("sce", [0.1], r"sce takes 2 parameter\(s\) \(alpha, beta\), got 1"),
        ("ce", [1.0], "takes no parameters"),
        ("gce", 0.7, "parameters must be a list of numbers"),
        ("gce", [True], "q must be a number"),
    ]
    for name, params, message in cases:
        with pytest.raises(LossFileError, match=message) as info:
            ZooLoss(name, params)
        assert "\n" not in str(info.value)


def test_imbalance_loss_without_counts_says_how_to_bind_them():
    loss = ZooLoss("ldam")
    with pytest.raises(LossFileError, match=r"class counts: train it through evomal .*\.bound"):
        loss(torch.randn(4, 3), torch.randint(0, 3, (4,)))
    bound = loss.bound(3, [10, 5, 1])
    assert bound.class_counts == (10, 5, 1) and loss.class_counts is None
    assert bound.bound(3, [1, 1, 1]).class_counts == (10, 5, 1)  # already set: kept
    assert ZooLoss("gce").bound(3, [10, 5, 1]).class_counts is None  # not used: not set
    with pytest.raises(LossFileError, match="2 class counts for 3 classes"):
        loss.bound(3, [10, 5])


# -- parse_loss_spec --------------------------------------------------------------------------


def test_parse_loss_spec():
    assert parse_loss_spec("gce:0.7").expression == "gce(q=0.7)"
    assert parse_loss_spec(" sce:0.1,1 ").params == (0.1, 1.0)
    assert parse_loss_spec("focal").params == (2.0,)
    assert parse_loss_spec("ce").expression == "ce"
    assert parse_loss_spec("sce").label == "symmetric cross-entropy (alpha=0.1, beta=1)"
    for text, error, message in [
        ("gce:1.5", LossFileError, r"q must be in \(0, 1\], got 1.5"),
        ("gce:abc", LossFileError, r"'abc' is not a number \(gce:q with q in \(0, 1\]\)"),
        ("gce:", LossFileError, "is not a number"),
        ("brier:1", LossFileError, "brier takes no parameters"),
        ("sce:1", LossFileError, r"alpha, beta"),
        ("hinge:1", UnknownNameError, r"known: ce, label_smoothing, .*log_cosh"),
    ]:
        with pytest.raises(error, match=message) as info:
            parse_loss_spec(text)
        assert "\n" not in str(info.value)


# -- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_round_trips_through_a_file(tmp_path, name):
    f = FAMILIES[name]
    params = f.grid[0] if f.grid else ()
    loss = ZooLoss(name, params).bound(1000 if name == "square" else 4, [100, 30, 5, 0])
    path = tmp_path / "loss.json"
    loss.save(path, metadata={"zoo": True})
    back = load_loss(path)
    assert isinstance(back, ZooLoss)
    assert (back.name, back.params, back.task) == (name, loss.params, f.kind)
    assert (back.class_counts, back.settings) == (loss.class_counts, loss.settings)
    assert back.expression == loss.expression
    if f.kind == "classification":
        x, y = torch.randn(8, 1000 if name == "square" else 4), torch.randint(0, 4, (8,))
    else:
        x, y = torch.randn(8, 2), torch.randn(8, 2)
    assert torch.equal(back(x, y), loss(x, y))
    doc = json.loads(path.read_text())
    assert doc["kind"] == "zoo" and doc["metadata"] == {"zoo": True}
    if name == "square":
        assert doc["settings"] == {"k": 15.0, "M": 30.0}
    if f.needs_counts:
        assert doc["class_counts"] == [100, 30, 5, 0]
    else:
        assert "class_counts" not in doc


@pytest.mark.parametrize(
    ("base", "mutate", "fragment"),
    [
        ("gce", lambda d: d.update(extra=1), "unknown field"),
        ("gce", lambda d: d.update(params=[2.0]), r"gce: q must be in \(0, 1\], got 2"),
        ("gce", lambda d: d.update(params=[0.7, 1.0]), "gce takes 1 parameter"),
        ("gce", lambda d: d.update(params=["x"]), "must be a number"),
        ("gce", lambda d: d.update(name="hinge"), "unknown zoo loss 'hinge'; known: ce"),
        ("gce", lambda d: d.update(name=3), "'name' must be str"),
        ("gce", lambda d: d.update(task="regression"), "gce is a classification loss"),
        ("gce", lambda d: d.update(class_counts=[1, 2]), "does not use class counts"),
        ("gce", lambda d: d.update(settings={"k": 2}), "takes no settings"),
        ("ldam", lambda d: d.update(class_counts=[3, -1]), "class count 1 must be a non-neg"),
        ("ldam", lambda d: d.update(class_counts=[3, 1.5]), "class count 1 must be a non-neg"),
        ("ldam", lambda d: d.update(class_counts=[3, True]), "class count 1 must be a non-neg"),
        ("ldam", lambda d: d.update(class_counts=[3]), "at least two classes"),
        ("square", lambda d: d.update(settings={"k": -1}), "setting k must be a positive"),
        ("square", lambda d: d.update(settings={"s": 1}), r"takes the settings \['k', 'M'\]"),
        ("square", lambda d: d.update(kind="symbolic"), "unknown field"),
        ("square", lambda d: d.update(version=2), "unsupported format version"),
    ],
)
def test_hand_edited_files_are_refused_in_one_line(tmp_path, base, mutate, fragment):
    doc = ZooLoss(base).bound(3, [5, 2, 1]).to_dict()
    mutate(doc)
    path = tmp_path / "loss.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LossFileError, match=fragment) as info:
        load_loss(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
