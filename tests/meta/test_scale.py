"""Scale normalisation: the learned loss's weights cannot act as a learning rate."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evomal.gp.filters import ScreeningProbe
from evomal.losses.learned import CROSS_ENTROPY_EXPRESSION, LearnedLoss
from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import optimise_phi, unrolled_task_loss
from evomal.meta.population_search import optimise_phi_population
from evomal.meta.scale import ScaleNormaliser
from evomal.symbolic import compile_tree, parse
from evomal.tasks import Task
from evomal.training.unrolled_sgd import UnrolledSGD


def _task():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = rng.integers(0, 3, 120)
    return Task.from_tensors("tiny", "classification", x, y, x[:10], y[:10])


def _probe(kind="classification"):
    generator = torch.Generator().manual_seed(0)
    predictions = torch.randn(50, 3, generator=generator)
    if kind == "classification":
        targets = torch.randint(0, 3, (50,), generator=generator)
    else:
        predictions, targets = predictions[:, :1], torch.randn(50, 1, generator=generator)
    return ScreeningProbe(kind, predictions, targets)


def test_the_task_loss_has_factor_one_and_a_scaled_copy_the_inverse(float64):
    normaliser = ScaleNormaliser([_probe()])
    ce = compile_tree(CROSS_ENTROPY_EXPRESSION)
    assert float(normaliser.factor(ce, torch.ones(5), create_graph=False)) == pytest.approx(
        1.0, rel=1e-12
    )
    # Scaling the loss by 2.5 through its edge weights scales the factor by 1 / 2.5.
    assert float(
        normaliser.factor(ce, torch.tensor([2.5, 1, 1, 1, 1.0]), create_graph=False)
    ) == pytest.approx(0.4)


def test_reference_is_cross_entropys_gradient_norm(float64):
    """The reference gradient norm equals F.cross_entropy's, per sample, on the probe."""
    probe = _probe()
    logits = probe.predictions.clone().requires_grad_(True)
    F.cross_entropy(logits, probe.targets, reduction="sum").backward()
    expected = logits.grad.norm(dim=1).mean()
    # The tree's protected log, log(|fx| + 1e-10), moves the gradient by 1e-10 / fx relative.
    assert ScaleNormaliser([probe]).reference == pytest.approx(float(expected), rel=1e-7)


def test_regression_reference_is_mse(float64):
    probe = _probe("regression")
    expected = (2 * (probe.predictions - probe.targets)).abs().mean()
    assert ScaleNormaliser([probe]).reference == pytest.approx(float(expected), rel=1e-12)


def test_a_flat_loss_is_left_unscaled(float64):
    flat = compile_tree("sign(sub(fx, y))")  # zero gradient almost everywhere
    normaliser = ScaleNormaliser([_probe()])
    assert float(normaliser.factor(flat, torch.ones(3), create_graph=False)) == 1.0


def test_the_meta_gradient_has_no_component_along_the_loss_scale(float64):
    """mul(1, T): the constant's edge weight only scales the loss. Normalised, the meta
    objective does not depend on it (zero derivative); unnormalised, it does."""
    task = _task()
    learner = BaseLearner(task, "linear")
    tree = parse("mul(1, add(mul(-1, mul(y, log(fx))), square(sub(fx, y))))")
    loss = compile_tree(tree)
    normaliser = ScaleNormaliser([_probe()])
    params, buffers = learner.initial_state(0)
    inner = [(task.train.x[:20], task.train.y[:20]), (task.train.x[20:40], task.train.y[20:40])]
    outer = (task.train.x[40:80], task.train.y[40:80])
    optimizer = UnrolledSGD(0.5, momentum=0.9)

    def meta(phi, normalised):
        factor = normaliser.factor(loss, phi) if normalised else None
        return unrolled_task_loss(
            phi, loss, learner, params, buffers, inner, outer, optimizer, factor
        )

    phi = torch.normal(1.0, 0.1, (tree.n_edges,), generator=torch.Generator().manual_seed(0))
    for normalised in (True, False):
        p = phi.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(meta(p, normalised), p)
        if normalised:
            assert abs(float(g[0])) < 1e-12
            assert g[1:].abs().max() > 1e-6
        else:
            assert abs(float(g[0])) > 1e-6
    # And the normalised objective is the same at any scale of the loss.
    scaled = phi.clone()
    scaled[0] *= 7.0
    torch.testing.assert_close(meta(scaled, True), meta(phi, True), rtol=1e-12, atol=1e-14)


def test_normalised_search_returns_the_factor_and_batched_equals_serial(float64):
    task = _task()
    learner = BaseLearner(task, "linear")
    normaliser = ScaleNormaliser([_probe()])
    losses = [compile_tree("mul(-1, mul(y, log(fx)))"), compile_tree("square(sub(fx, y))")]
    phis = [torch.ones(5), torch.ones(3)]
    kw = {
        "steps": 10,
        "base_steps": 2,
        "optimizer": UnrolledSGD(0.3, momentum=0.9),
        "meta_lr": 1e-2,
        "batch_size": 16,
        "run_seed": 1,
        "normaliser": normaliser,
    }
    serial = [
        optimise_phi(loss, phi, [learner], **kw) for loss, phi in zip(losses, phis, strict=True)
    ]
    batched = optimise_phi_population(losses, phis, [learner], **kw)
    for s, b, loss in zip(serial, batched, losses, strict=True):
        assert s.scale == pytest.approx(float(normaliser.factor(loss, s.phi, False)), rel=1e-12)
        assert b.scale == pytest.approx(s.scale, rel=1e-9)
        torch.testing.assert_close(b.phi, s.phi, rtol=0, atol=1e-9)
    # The handed-back loss, scale included, has the task loss's gradient scale on the probe.
    probe = normaliser.probes[0]
    for result, expression in zip(
        serial, ("mul(-1, mul(y, log(fx)))", "square(sub(fx, y))"), strict=True
    ):
        handed = LearnedLoss(expression, result.phi, scale=result.scale)
        logits = probe.predictions.clone().requires_grad_(True)
        (handed(logits, probe.targets) * len(logits)).backward()
        mean_norm = float(logits.grad.norm(dim=1).mean())
        assert mean_norm == pytest.approx(normaliser.reference, rel=1e-9)
    unnormalised = optimise_phi(losses[0], phis[0], [learner], **{**kw, "normaliser": None})
    assert unnormalised.scale == 1.0
