"""K different trees evaluated together, one op per primitive type per level.

Evaluating K candidate trees one after another issues one small elementwise
op per node and per edge weight, so K trees of n nodes cost about ``2 K n``
dispatches forward (and as many again backward, three times as many for the
local search's double backward). On a CPU each costs a fixed 5-10 us, as a
kernel launch does on a GPU, which is why population batching stalled at 2x.

:class:`PopulationProgram` compiles the K trees once into a level-by-level
schedule (see the class for the layout): per level, one gather, one
``split``, one call per primitive type present, one ``cat`` and one multiply
by the edge weights, so the number of ops grows with the trees' height and
the primitive types present, not with K times the number of nodes.

Each op moves K times more data, but the count of ops barely falls for
shallow trees, so the gain is modest and grows with K (docs/decisions.md).

Edge weights follow :mod:`evomal.symbolic.compile`: ``phi_k[i - 1]`` weights
the edge from node ``i`` of tree ``k`` (prefix order) to its parent, a
variable leaf is ``x * w``, a constant leaf is ``+w`` or ``-w``, and the root
carries no weight. The same torch functions run on the same values, so the
result equals :class:`~evomal.symbolic.compile.CompiledLoss.pointwise` per
tree up to float rounding, and so do all gradients (autograd differentiates
``index_select`` and ``cat``, twice if asked); ``tests/symbolic/
test_population.py`` checks this over random populations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from evomal.symbolic.primitives import CONSTANTS, PRIMITIVES, VARIABLES
from evomal.symbolic.tree import Tree


@dataclass(frozen=True)
class _Level:
    """One level: permute the level below, split it into argument blocks, apply each type."""

    order: tuple[int, ...]  # rows of the level below, arranged as the blocks need them
    blocks: tuple[int, ...]  # sizes of the argument blocks, then the pass-through block
    groups: tuple[tuple[str, int], ...]  # (primitive, nodes) in block order
    weights: tuple[int, ...]  # per output row, index into [phi_0, ..., phi_K-1, 1]


class PopulationProgram:
    """``program(fx, y, phis) -> [K, ...]``: tree ``k`` on ``fx[k]`` and ``y`` with ``phis[k]``.

    ``fx`` is stacked ``[K, *shape]``; ``y`` is one ``shape``-sized tensor
    shared by every tree (it broadcasts like the targets of a population
    that sees the same batch). ``phis`` holds one 1-D weight tensor per tree
    (``trees[k].n_edges`` long), or is one flat tensor of them concatenated.

    Layout: level ``h`` holds every node of height ``h`` and, passed through
    unchanged, every node of lower height whose parent sits higher still (and
    every finished root), so each level reads only the level below it. Its
    rows are permuted once so that the first arguments of each primitive
    type, then its second arguments, form contiguous blocks; one ``split``
    hands every group its arguments, one call per type computes them, and one
    ``cat`` and one multiply by the edge weights make the level. The fx
    leaves are gathered from the K predictions; no op mixes two trees' rows,
    so a diverged candidate's NaN or inf never reaches another tree.
    """

    def __init__(self, trees: Sequence[Tree]) -> None:
        if not trees:
            raise ValueError("a population program needs at least one tree")
        self.trees = tuple(trees)
        self.k = len(self.trees)
        self.n_weights = tuple(t.n_edges for t in self.trees)
        self._build()
        self._index_cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, ...]] = {}

    def _build(self) -> None:
        offsets = [0]
        for n in self.n_weights:
            offsets.append(offsets[-1] + n)
        one = offsets[-1]  # the index of the extra weight 1.0 (roots, pass-through rows)

        def weight(node: tuple[int, int]) -> int:
            k, i = node
            return offsets[k] + i - 1 if i > 0 else one

        heights: list[list[int]] = []
        for tree in self.trees:
            h = [0] * tree.size
            for i in range(tree.size - 1, -1, -1):
                kids = tree.children(i)
                h[i] = 1 + max(h[c] for c in kids) if kids else 0
            heights.append(h)
        parent_height: dict[tuple[int, int], int] = {}
        for k, tree in enumerate(self.trees):
            for i in range(tree.size):
                for c in tree.children(i):
                    parent_height[(k, c)] = heights[k][i]
        top = max(max(h) for h in heights)
        # Level 0: the fx leaves (gathered from the K predictions), the y leaves (the
        # shared target, broadcast), then the constants.
        fx_leaves, y_leaves, constants = [], [], []
        for k, tree in enumerate(self.trees):
            for i, name in enumerate(tree.nodes):
                if name == "fx":
                    fx_leaves.append((k, i))
                elif name in VARIABLES:
                    y_leaves.append((k, i))
                elif name in CONSTANTS:
                    constants.append((k, i))
        rows = fx_leaves + y_leaves + constants  # the nodes held by the current level, in order
        self._fx_sources = tuple(k for k, _ in fx_leaves)
        self._n_y = len(y_leaves)
        self._constant_signs = tuple(CONSTANTS[self.trees[k].nodes[i]] for k, i in constants)
        self._leaf_weights = tuple(weight(n) for n in rows)
        levels: list[_Level] = []
        for level in range(1, top + 1):
            position = {node: r for r, node in enumerate(rows)}
            by_type: dict[str, list[tuple[int, int]]] = {}
            for k, tree in enumerate(self.trees):
                for i, name in enumerate(tree.nodes):
                    if heights[k][i] == level:
                        by_type.setdefault(name, []).append((k, i))
            order: list[int] = []
            blocks: list[int] = []
            groups: list[tuple[str, int]] = []
            produced: list[tuple[int, int]] = []
            for name in sorted(by_type):
                nodes = by_type[name]
                for a in range(PRIMITIVES[name].arity):
                    order.extend(position[(k, self.trees[k].children(i)[a])] for k, i in nodes)
                    blocks.append(len(nodes))
                groups.append((name, len(nodes)))
                produced.extend(nodes)
            passing = [n for n in rows if parent_height.get(n, top + 1) > level]
            order.extend(position[n] for n in passing)
            blocks.append(len(passing))
            weights = [weight(n) for n in produced] + [one] * len(passing)
            levels.append(_Level(tuple(order), tuple(blocks), tuple(groups), tuple(weights)))
            rows = produced + passing
        self._levels = tuple(levels)
        final = {node: r for r, node in enumerate(rows)}
        self._roots = tuple(final[(k, 0)] for k in range(self.k))

    def _indices(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
        cached = self._index_cache.get((device, dtype))
        if cached is None:

            def t(values: Sequence[int]) -> Tensor:
                return torch.tensor(values, dtype=torch.long, device=device)

            signs = torch.tensor(self._constant_signs, dtype=dtype, device=device)
            parts = [t(self._fx_sources), t(self._leaf_weights), t(self._roots), signs]
            for level in self._levels:
                produced = len(level.weights) - level.blocks[-1]
                _check_permutation(level.order)
                parts.extend((t(level.order), t(level.weights[:produced])))
            cached = tuple(parts)
            self._index_cache[(device, dtype)] = cached
        return cached

    def __call__(self, fx: Tensor, y: Tensor, phis: Sequence[Tensor] | Tensor) -> Tensor:
        if fx.shape[0] != self.k:
            raise ValueError(f"fx stacks {fx.shape[0]} predictions for {self.k} trees")
        shape = fx.shape[1:]
        ones = (1,) * len(shape)
        flat = phis if isinstance(phis, Tensor) else _cat([p.reshape(-1) for p in phis], fx)
        flat = torch.cat([flat.to(fx.dtype), fx.new_ones(1)])
        fx_sources, leaf_weights, roots, signs, *per_level = self._indices(fx.device, fx.dtype)
        w = flat.index_select(0, leaf_weights).view(-1, *ones)
        n_fx, n_y = len(self._fx_sources), self._n_y
        parts = []
        if n_fx:
            # A gather, never a one-hot product: 0 * NaN would carry a diverged
            # candidate's NaN into every other tree.
            parts.append(fx.index_select(0, fx_sources) * w[:n_fx])
        if n_y:
            parts.append(y.expand(shape).unsqueeze(0) * w[n_fx : n_fx + n_y])
        if self._constant_signs:
            constants = w[n_fx + n_y :] * signs.view(-1, *ones)
            parts.append(constants.expand(-1, *shape))
        values = _cat(parts, fx)
        for level, order, weights in zip(
            self._levels, per_level[::2], per_level[1::2], strict=True
        ):
            blocks = values.index_select(0, order).split(level.blocks)
            outputs, b = [], 0
            for name, _ in level.groups:
                arity = PRIMITIVES[name].arity
                outputs.append(PRIMITIVES[name].torch_fn(*blocks[b : b + arity]))
                b += arity
            produced = _cat(outputs, fx) * flat.index_select(0, weights).view(-1, *ones)
            values = torch.cat([produced, blocks[-1]]) if level.blocks[-1] else produced
        return values.index_select(0, roots)


def _check_permutation(order: Sequence[int]) -> None:
    """Every row of a level feeds exactly one row of the next (one parent, or passed on)."""
    if sorted(order) != list(range(len(order))):
        raise AssertionError("a level's row order must be a permutation")


def _cat(parts: list[Tensor], like: Tensor) -> Tensor:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return like.new_zeros(0)
    return torch.cat(parts)


#: The smallest population evaluated as one program by :func:`population_program`:
#: below it the program gains nothing over the trees one by one (docs/decisions.md).
MIN_PROGRAM_SIZE = 16


def population_program(
    losses: Sequence[object], min_size: int | None = None
) -> PopulationProgram | None:
    """One program for K compiled tree losses, or ``None`` if any of them is not a tree
    or there are fewer than ``min_size`` of them.

    Trees whose constant value must be broadcast are fine (the program gives
    every tree the prediction's shape); Taylor polynomials and neural losses
    have no tree and are evaluated one by one by the caller.
    """
    trees = [getattr(loss, "tree", None) for loss in losses]
    smallest = MIN_PROGRAM_SIZE if min_size is None else min_size
    if len(trees) < max(1, smallest) or not all(isinstance(t, Tree) for t in trees):
        return None
    return PopulationProgram(trees)  # type: ignore[arg-type]


def compile_population(trees: Sequence[Tree | str]) -> PopulationProgram:
    """Compile K trees (or expression strings) into one :class:`PopulationProgram`."""
    from evomal.symbolic.tree import parse

    return PopulationProgram([parse(t) if isinstance(t, str) else t for t in trees])
