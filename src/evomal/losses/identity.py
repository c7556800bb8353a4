"""Is a returned loss *learned*, or a known loss in disguise?

A search can hand back cross-entropy with tuned weights, or a tree that is
MAE up to a factor (``abs(max(fx, y))`` is MAE/2 plus a constant for one-hot
targets). Such a loss is not learned: it is a seeded tree or a zoo member.
Two losses that differ by a positive scale and a constant train alike (the
scale is a learning rate), so a loss is compared with the known ones by its
gradient with respect to the model's outputs on a fixed probe, divided by its
norm: equal directions on every probe sample means equal up to a positive
scale. The probe is random logits at three scales (confident, moderate and
near-uniform predictions) with random labels, drawn from a fixed seed; the
largest scale keeps every probability far above the protected operators' eps
(1e-10), below which a tree and its zoo twin part ways.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

#: Largest entry of the difference of two normalised gradients still called equal.
TOLERANCE = 1e-3

#: Probe samples per logit scale, and the scales.
PROBE_SIZE = 48
SCALES = (0.3, 1.0, 2.5)


def probe(kind: str, n_outputs: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Fixed model outputs and targets on which losses are compared (float64)."""
    generator = torch.Generator().manual_seed(seed)
    size = PROBE_SIZE * len(SCALES)
    scale = torch.tensor(SCALES, dtype=torch.float64).repeat_interleave(PROBE_SIZE)
    outputs = torch.randn(size, n_outputs, generator=generator, dtype=torch.float64)
    outputs = outputs * scale.unsqueeze(1)
    if kind == "classification":
        classes = 2 if n_outputs == 1 else n_outputs
        targets = torch.randint(0, classes, (size,), generator=generator)
    else:
        targets = torch.randn(size, n_outputs, generator=generator, dtype=torch.float64)
    return outputs, targets


def direction(loss: Any, outputs: Tensor, targets: Tensor) -> Tensor | None:
    """The loss's gradient with respect to ``outputs``, divided by its norm (None if zero)."""
    x = outputs.detach().clone().requires_grad_(True)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        module = copy.deepcopy(loss).double() if hasattr(loss, "double") else loss
        value = module(x, targets)
        (grad,) = torch.autograd.grad(value, x)
    finally:
        torch.set_default_dtype(previous)
    norm = grad.norm()
    if not torch.isfinite(norm) or norm == 0:
        return None
    return grad / norm


def known_equal(loss: Any, known: Mapping[str, Any], kind: str, n_outputs: int) -> str | None:
    """The name of a known loss that ``loss`` equals up to a positive scale, or None."""
    outputs, targets = probe(kind, n_outputs)
    mine = direction(loss, outputs, targets)
    if mine is None:
        return None
    for name, other in known.items():
        theirs = direction(other, outputs, targets)
        if theirs is not None and float((mine - theirs).abs().max()) < TOLERANCE:
            return name
    return None


def known_equal_document(
    document: Mapping[str, Any], known: Mapping[str, Any], kind: str, n_outputs: int
) -> str | None:
    """:func:`known_equal` for a loss file: as found (its learned weights), or else, for a
    tree, as the tree itself (unit weights). The local search nudges phi; a tree that is
    MSE in structure with weights 1.01 and 0.99 is MSE tuned, not a new loss."""
    from evomal.losses.io import loss_from_dict

    found = known_equal(loss_from_dict(dict(document)), known, kind, n_outputs)
    if found is not None or document.get("kind") != "symbolic":
        return found
    unit = {**document, "phi": [1.0] * len(document.get("phi") or []), "scale": 1.0}
    return known_equal(loss_from_dict(unit), known, kind, n_outputs)


def known_losses(
    kind: str, n_outputs: int, class_counts: Sequence[int] | None = None
) -> dict[str, Any]:
    """Every zoo member of ``kind`` at every setting of its grid and its default, by name
    (``gce(q=0.7)``); the imbalance members only with the training split's ``class_counts``."""
    from evomal.losses.zoo import FAMILIES, ZooLoss

    classes = 2 if n_outputs == 1 else n_outputs
    out: dict[str, Any] = {}
    for family in FAMILIES.values():
        if family.kind != kind or (family.needs_counts and class_counts is None):
            continue
        for params in dict.fromkeys([*family.grid, family.default]) or [()]:
            loss = ZooLoss(family.name, list(params) or None)
            if kind == "classification":
                loss = loss.bound(classes, class_counts)
            out[loss.expression] = loss
    return out
