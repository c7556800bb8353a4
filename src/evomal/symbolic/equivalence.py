"""Equivalence keys: one key for trees that compute the same loss.

Choice: a *semantic fingerprint*, not a symbolic canonical form. The tree
(with unit edge weights) is evaluated in float64 at a fixed set of probe
points, together with its gradient with respect to ``fx``; the numbers are
rounded to 6 significant digits (magnitudes below 1e-9 count as zero) and
hashed. Why: it is exact for every rewriting that preserves the function —
commutativity, ``x - x``, ``x * 1``, double negation, ``add(x, x)`` versus
``mul(x, add(1, 1))``, ``min(x, x)`` and so on — costs well under a
millisecond per tree, and never hangs, whereas sympy canonicalisation of
``min``/``max``/``sign``/``abs`` compositions is slow and incomplete.

How it fails, and why that is acceptable for a cache:

* False merges: two different functions that agree to 6 digits at every
  probe point (value and gradient) get one key. The probes are spread over
  the whole input domain at irregular points, so this needs a near-coincidence
  at all of them at once.
* False splits: two equivalent trees whose float64 results straddle a
  rounding boundary (round-off of ~1e-16 relative) get different keys; the
  cost is one redundant evaluation.
* The key depends on the input domain: with ``domain="classification"`` the
  probes use ``y`` in {0, 1} and ``fx`` in [0, 1], so ``mul(y, y)`` and ``y``
  share a key (they are equal on that domain) but not under ``"regression"``.
"""

from __future__ import annotations

import hashlib
import itertools

import torch

from evomal.symbolic.compile import compile_elementwise
from evomal.symbolic.transforms import check_choice
from evomal.symbolic.tree import Tree

DOMAINS: tuple[str, ...] = ("classification", "regression", "any")

_CLASS_FX = (0.0, 0.0137, 0.0921, 0.2318, 0.4142, 0.5, 0.6180, 0.7854, 0.9119, 0.9873, 1.0)
_CLASS_Y = (0.0, 1.0)
_REG_VALUES = (-3.1416, -1.7321, -0.6931, -0.1234, 0.0, 0.3679, 0.8862, 1.4142, 2.7183)


def _probes(domain: str) -> tuple[torch.Tensor, torch.Tensor]:
    pairs: list[tuple[float, float]] = []
    if domain in ("classification", "any"):
        pairs += list(itertools.product(_CLASS_Y, _CLASS_FX))
    if domain in ("regression", "any"):
        pairs += list(itertools.product(_REG_VALUES, _REG_VALUES))
    y, fx = zip(*pairs, strict=True)
    return torch.tensor(y, dtype=torch.float64), torch.tensor(fx, dtype=torch.float64)


_PROBES = {d: _probes(d) for d in DOMAINS}


def _fmt(v: float) -> str:
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if abs(v) < 1e-9:
        return "0"
    return f"{v:.5e}"


def equivalence_key(tree: Tree, domain: str = "any") -> str:
    """A short hex key shared by trees that compute the same function on ``domain``.

    ``domain`` is ``"classification"`` (y in {0,1}, fx in [0,1]),
    ``"regression"`` (real y and fx) or ``"any"`` (both probe sets).
    """
    check_choice(domain, DOMAINS, "domain")
    y, fx = _PROBES[domain]
    fx = fx.clone().requires_grad_(True)
    phi = torch.ones(tree.n_edges, dtype=torch.float64)
    with torch.enable_grad():
        values = compile_elementwise(tree)(fx, y, phi)
        values = values.expand(fx.shape) if values.shape != fx.shape else values
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), fx, allow_unused=True)
        else:
            grad = None
    if grad is None:
        grad = torch.zeros_like(fx)
    text = (
        ";".join(_fmt(v) for v in values.detach().tolist())
        + "|"
        + ";".join(_fmt(g) for g in grad.tolist())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]
