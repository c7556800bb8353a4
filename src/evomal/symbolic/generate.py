"""Random tree generation: full, grow and ramped half-and-half (Koza 1992).

Every generator takes an explicit ``numpy.random.Generator``; nothing here
touches global random state, so a run is reproducible from its seed and its
RNG state can be checkpointed as plain data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evomal.symbolic.primitives import PRIMITIVES, PrimitiveSet
from evomal.symbolic.tree import Tree

_DEFAULT_PSET = PrimitiveSet()

# Decides, at a given depth, whether to place a terminal.
_StopRule = Callable[[int, int], bool]


def _generate(rng: np.random.Generator, pset: PrimitiveSet, height: int, stop: _StopRule) -> Tree:
    nodes: list[str] = []
    pending = [0]  # depths of nodes still to place, in prefix order (stack)
    while pending:
        depth = pending.pop()
        if stop(depth, height):
            nodes.append(pset.terminals[int(rng.integers(len(pset.terminals)))])
        else:
            name = pset.functions[int(rng.integers(len(pset.functions)))]
            nodes.append(name)
            pending.extend([depth + 1] * PRIMITIVES[name].arity)
    return Tree(tuple(nodes))


def _check_heights(min_height: int, max_height: int) -> None:
    if not 0 <= min_height <= max_height:
        raise ValueError(f"need 0 <= min_height <= max_height, got {min_height}, {max_height}")


def gen_full(
    rng: np.random.Generator, min_height: int, max_height: int, pset: PrimitiveSet = _DEFAULT_PSET
) -> Tree:
    """A tree whose every leaf sits at the same depth, drawn from [min_height, max_height]."""
    _check_heights(min_height, max_height)
    height = int(rng.integers(min_height, max_height + 1))
    return _generate(rng, pset, height, lambda depth, h: depth == h)


def gen_grow(
    rng: np.random.Generator, min_height: int, max_height: int, pset: PrimitiveSet = _DEFAULT_PSET
) -> Tree:
    """A tree of irregular shape: below ``min_height`` a node is a terminal with
    probability |terminals| / |terminals + functions|, and always at the drawn height."""
    _check_heights(min_height, max_height)
    height = int(rng.integers(min_height, max_height + 1))
    ratio = len(pset.terminals) / (len(pset.terminals) + len(pset.functions))

    def stop(depth: int, h: int) -> bool:
        return depth == h or (depth >= min_height and float(rng.random()) < ratio)

    return _generate(rng, pset, height, stop)


def gen_half_and_half(
    rng: np.random.Generator, min_height: int, max_height: int, pset: PrimitiveSet = _DEFAULT_PSET
) -> Tree:
    """Ramped half-and-half: each tree is built by :func:`gen_full` or :func:`gen_grow`
    with equal probability, at a height drawn uniformly from the range."""
    method = gen_full if float(rng.random()) < 0.5 else gen_grow
    return method(rng, min_height, max_height, pset)
