"""Symbolic (sympy) forms of trees, for display, simplification and oracle tests."""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from evomal.symbolic.primitives import CONSTANTS, PRIMITIVES
from evomal.symbolic.tree import Tree

#: The symbols a tree's sympy form is written in. ``fx`` stands for f(x).
Y, FX = sympy.symbols("y fx", real=True)
SYMBOLS: dict[str, sympy.Symbol] = {"y": Y, "fx": FX}


def to_sympy(
    tree: Tree, phi: Sequence[float] | None = None, digits: int | None = None
) -> sympy.Expr:
    """The tree as a sympy expression in ``y`` and ``fx``.

    With ``phi`` each edge's value is multiplied by its weight (rounded to
    ``digits`` significant digits when given, for display); without it the
    plain tree is returned. Protected operators keep their ``eps``.
    """
    if phi is not None and len(phi) != tree.n_edges:
        raise ValueError(f"phi has {len(phi)} weights, the tree has {tree.n_edges} edges")
    stack: list[sympy.Expr] = []
    for i in range(tree.size - 1, -1, -1):
        name = tree.nodes[i]
        if name in SYMBOLS:
            value: sympy.Expr = SYMBOLS[name]
        elif name in CONSTANTS:
            value = sympy.Integer(int(CONSTANTS[name]))
        else:
            prim = PRIMITIVES[name]
            value = prim.sympy_fn(*(stack.pop() for _ in range(prim.arity)))
        if phi is not None and i > 0:
            w = float(phi[i - 1])
            weight = sympy.Float(w, digits) if digits else sympy.Float(w)
            value = weight * value
        stack.append(value)
    return stack[0]


def to_latex(expr: sympy.Expr) -> str:
    """LaTeX for a tree's sympy form, writing ``fx`` as f(x)."""
    return sympy.latex(expr, symbol_names={FX: "f(x)"})
