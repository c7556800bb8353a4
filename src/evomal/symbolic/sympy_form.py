"""Symbolic (sympy) forms of trees, for display, simplification and oracle tests."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import sympy

from evomal.errors import LossFileError
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
        raise LossFileError(f"phi has {len(phi)} weights, the tree has {tree.n_edges} edges")
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


@dataclass(frozen=True)
class DisplayForm:
    """A tree's formula for people: ``expr`` and whether sympy finished simplifying it."""

    expr: sympy.Expr
    simplified: bool

    @property
    def latex(self) -> str:
        return to_latex(self.expr)

    def __str__(self) -> str:
        return str(self.expr)


def display_form(
    tree: Tree, kind: str = "classification", timeout: float | None = 10.0
) -> DisplayForm:
    """The tree without weights, simplified algebraically and numerically (paper Table 5).

    For display only: the protected operators' guards (``eps``) are dropped
    (so ``log(|x| + eps)`` reads ``log(x)``), and for classification ``f(x)``
    is a probability and ``y`` a 0/1 label, which lets sympy remove the
    absolute values the protection adds. ``sympy.simplify`` can take minutes
    on a large tree and cannot be interrupted, so it runs in a child process
    for at most ``timeout`` seconds (``None``: no bound, in this process);
    past that the tidied but unsimplified form is returned, flagged.
    """
    expr = to_sympy(tree)
    expr = expr.xreplace({c: _rounded(float(c)) for c in expr.atoms(sympy.Float)})
    restore: dict[Any, Any] = {}
    if kind == "classification":
        y, fx = sympy.Symbol("y", nonnegative=True), sympy.Symbol("fx", positive=True)
        expr, restore = expr.xreplace({Y: y, FX: fx}), {y: Y, fx: FX}
    if timeout is None:
        return DisplayForm(sympy.simplify(expr).xreplace(restore), True)
    done = _simplify_within(expr, timeout)
    if done is None:
        return DisplayForm(expr.xreplace(restore), False)
    return DisplayForm(done.xreplace(restore), True)


def _rounded(value: float) -> sympy.Expr:
    """A float from the eps guards as what it stands for: 1e-10 -> 0, 1.0000000001 -> 1."""
    nearest = round(value)
    if abs(value - nearest) < 1e-6 * max(1.0, abs(value)):
        return sympy.Integer(nearest)
    return sympy.Float(value, 6)


def _simplify_child(expr: sympy.Expr, out: Connection) -> None:
    out.send(sympy.simplify(expr))
    out.close()


def _simplify_within(expr: sympy.Expr, timeout: float) -> sympy.Expr | None:
    """``sympy.simplify(expr)`` in a child process, or ``None`` when it takes too long."""
    methods = multiprocessing.get_all_start_methods()
    context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_simplify_child, args=(expr, send), daemon=True)
    child.start()
    send.close()
    try:
        result: sympy.Expr | None = receive.recv() if receive.poll(timeout) else None
    except EOFError:  # the child died (out of memory, killed): keep the unsimplified form
        result = None
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join()
    return result
