"""GP operators: selection, variation, repair and the height limit.

Named after the DEAP families the paper's implementation used
(``sel_tournament``, ``cx_one_point``, ``mut_uniform``), but written for
prefix :class:`~evomal.symbolic.Tree` values and an explicit
``numpy.random.Generator``. Fitness is minimised throughout (error rate,
MSE); a missing or non-finite fitness counts as the worst.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evomal.symbolic.generate import gen_grow
from evomal.symbolic.primitives import PRIMITIVES, PrimitiveSet
from evomal.symbolic.tree import Tree


def fitness_key(fitness: float | None) -> float:
    """Sort key for minimisation: ``None`` and NaN are the worst (+inf)."""
    if fitness is None or math.isnan(fitness):
        return math.inf
    return fitness


def sel_tournament(
    rng: np.random.Generator, fitnesses: Sequence[float | None], k: int, tournament_size: int
) -> list[int]:
    """Pick ``k`` indices, each the fittest of ``tournament_size`` drawn with replacement.

    Ties go to the contestant drawn first, so the outcome depends only on the RNG.
    """
    chosen = []
    for _ in range(k):
        contestants = rng.integers(0, len(fitnesses), size=tournament_size)
        best = min(contestants.tolist(), key=lambda i: fitness_key(fitnesses[i]))
        chosen.append(int(best))
    return chosen


def sel_best(fitnesses: Sequence[float | None], k: int) -> list[int]:
    """Indices of the ``k`` fittest (stable: earlier individuals win ties)."""
    order = sorted(range(len(fitnesses)), key=lambda i: (fitness_key(fitnesses[i]), i))
    return order[:k]


def cx_one_point(rng: np.random.Generator, a: Tree, b: Tree) -> tuple[Tree, Tree]:
    """Swap a random subtree of ``a`` with a random subtree of ``b`` (roots excluded).

    Trees of a single node cannot exchange a non-root subtree and are returned unchanged.
    """
    if a.size < 2 or b.size < 2:
        return a, b
    i = int(rng.integers(1, a.size))
    j = int(rng.integers(1, b.size))
    sub_a, sub_b = a.subtree(i), b.subtree(j)
    return a.replace(i, sub_b), b.replace(j, sub_a)


def mut_uniform(
    rng: np.random.Generator,
    tree: Tree,
    min_height: int = 0,
    max_height: int = 2,
    pset: PrimitiveSet | None = None,
) -> Tree:
    """Replace a uniformly chosen subtree with a new random (grow) tree."""
    index = int(rng.integers(0, tree.size))
    new = gen_grow(rng, min_height, max_height, pset or PrimitiveSet())
    return tree.replace(index, new)


def repair(rng: np.random.Generator, tree: Tree, pset: PrimitiveSet | None = None) -> Tree:
    """Make sure the tree uses both ``y`` and ``fx`` (paper Fig. 2b).

    A tree lacking either has a random terminal replaced by a random binary
    node whose arguments are ``y`` and ``fx`` in random order. A tree that
    already has both is returned as is.
    """
    if tree.variables() == {"y", "fx"}:
        return tree
    binary = (pset or PrimitiveSet()).binary or tuple(
        n for n, p in PRIMITIVES.items() if p.arity == 2
    )
    terminals = tree.terminal_indices()
    index = terminals[int(rng.integers(0, len(terminals)))]
    op = binary[int(rng.integers(0, len(binary)))]
    args = ("y", "fx") if float(rng.random()) < 0.5 else ("fx", "y")
    return tree.replace(index, Tree((op, *args)))


#: The primitives :func:`combine_keeping_minimum` joins with: each keeps a minimum that its
#: arguments share (tanh is monotone; a sum or a maximum of two functions that are least
#: at the same point is least there too).
MINIMUM_KEEPING = ("add", "max", "tanh")


def combine_keeping_minimum(
    rng: np.random.Generator, a: Tree, b: Tree, pset: PrimitiveSet | None = None
) -> Tree | None:
    """``add(a, b)``, ``max(a, b)`` or ``tanh(a)``, the primitive drawn uniformly.

    If ``a`` and ``b`` both take their least value at ``fx = y`` (as losses
    that pass the screen do), so does the result: a variation that stays
    inside the losses that fit the targets, where random trees almost never
    are (regression: 97% of random trees fail the screen). None when
    ``pset`` has none of these primitives.
    """
    ops = [op for op in MINIMUM_KEEPING if pset is None or op in pset.functions]
    if not ops:
        return None
    op = ops[int(rng.integers(len(ops)))]
    return Tree((op, *a.nodes) if op == "tanh" else (op, *a.nodes, *b.nodes))
