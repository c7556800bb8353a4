"""The EvoMAL search space (paper Table 1): primitives and terminals.

Each primitive is defined exactly once, with its torch form (used by the
compiled loss) and its sympy form (used for display, simplification and the
numeric oracle tests) side by side, so the two cannot drift apart.

The protected operators keep GP closure (Section 3.1.1): ``log(|x| + eps)``,
``sqrt(|x| + eps)`` and the analytic quotient ``x1 / sqrt(1 + x2^2)`` are
defined for every finite input. The analytic quotient is computed through
``hypot(1, x2)`` so that neither its value nor its gradient overflows to a NaN
for large ``x2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy
import torch
from torch import Tensor

from evomal.errors import ConfigError

#: The ``eps`` of the protected log and square root. Small enough that the
#: cross-entropy tree matches ``F.cross_entropy`` to ~eps/p (1e-7 at p=1e-3),
#: large enough that ``log(eps)`` (about -23) keeps shallow trees finite in
#: float32.
EPS: float = 1e-10


def _add(a: Tensor, b: Tensor) -> Tensor:
    return a + b


def _sub(a: Tensor, b: Tensor) -> Tensor:
    return a - b


def _mul(a: Tensor, b: Tensor) -> Tensor:
    return a * b


def _aq(a: Tensor, b: Tensor) -> Tensor:
    # For |b| > ~1.8e19 in float32, b * b overflows to inf and the quotient is
    # a / inf = 0, which is the correct limit; the backward pass then yields
    # 0 rather than NaN (tested over extreme finite inputs).
    return a / torch.sqrt(1.0 + b * b)


def _min(a: Tensor, b: Tensor) -> Tensor:
    return torch.minimum(a, b)


def _max(a: Tensor, b: Tensor) -> Tensor:
    return torch.maximum(a, b)


def _sign(a: Tensor) -> Tensor:
    return torch.sign(a)


def _square(a: Tensor) -> Tensor:
    return a * a


def _abs(a: Tensor) -> Tensor:
    return torch.abs(a)


def _log(a: Tensor) -> Tensor:
    return torch.log(torch.abs(a) + EPS)


def _sqrt(a: Tensor) -> Tensor:
    return torch.sqrt(torch.abs(a) + EPS)


def _tanh(a: Tensor) -> Tensor:
    return torch.tanh(a)


@dataclass(frozen=True)
class Primitive:
    """One function node of the search space.

    ``torch_fn`` is the elementwise tensor implementation; ``sympy_fn`` builds
    the same function symbolically. ``formula`` is the paper's notation.
    """

    name: str
    arity: int
    torch_fn: Callable[..., Tensor]
    sympy_fn: Callable[..., sympy.Expr]
    formula: str


def _sym_log(a: sympy.Expr) -> sympy.Expr:
    return sympy.log(sympy.Abs(a) + sympy.Float(EPS))


def _sym_sqrt(a: sympy.Expr) -> sympy.Expr:
    return sympy.sqrt(sympy.Abs(a) + sympy.Float(EPS))


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        Primitive("add", 2, _add, lambda a, b: a + b, "x1 + x2"),
        Primitive("sub", 2, _sub, lambda a, b: a - b, "x1 - x2"),
        Primitive("mul", 2, _mul, lambda a, b: a * b, "x1 * x2"),
        Primitive("div", 2, _aq, lambda a, b: a / sympy.sqrt(1 + b**2), "x1 / sqrt(1 + x2^2)"),
        Primitive("min", 2, _min, lambda a, b: sympy.Min(a, b), "min(x1, x2)"),
        Primitive("max", 2, _max, lambda a, b: sympy.Max(a, b), "max(x1, x2)"),
        Primitive("sign", 1, _sign, lambda a: sympy.sign(a), "sign(x)"),
        Primitive("square", 1, _square, lambda a: a**2, "x^2"),
        Primitive("abs", 1, _abs, lambda a: sympy.Abs(a), "|x|"),
        Primitive("log", 1, _log, _sym_log, "log(|x| + eps)"),
        Primitive("sqrt", 1, _sqrt, _sym_sqrt, "sqrt(|x| + eps)"),
        Primitive("tanh", 1, _tanh, lambda a: sympy.tanh(a), "tanh(x)"),
    )
}

#: Terminal names: the target, the prediction, and the constants +1 and -1.
VARIABLES: tuple[str, ...] = ("y", "fx")
CONSTANTS: dict[str, float] = {"1": 1.0, "-1": -1.0}
TERMINALS: tuple[str, ...] = VARIABLES + tuple(CONSTANTS)


def arity(name: str) -> int:
    """Arity of a node name: 0 for terminals. Raises ``KeyError`` if unknown."""
    if name in PRIMITIVES:
        return PRIMITIVES[name].arity
    if name in TERMINALS:
        return 0
    raise KeyError(name)


@dataclass(frozen=True)
class PrimitiveSet:
    """A subset of the search space that a GP run draws from.

    The default is the full Table 1 set. Restricting it (for example to drop
    ``sign``) is an experiment knob; every name must be a known primitive or
    terminal.
    """

    functions: tuple[str, ...] = tuple(PRIMITIVES)
    terminals: tuple[str, ...] = TERMINALS

    def __post_init__(self) -> None:
        unknown = [f for f in self.functions if f not in PRIMITIVES]
        unknown += [t for t in self.terminals if t not in TERMINALS]
        if unknown:
            raise ConfigError(
                f"unknown primitive or terminal names {unknown}; "
                f"known functions are {list(PRIMITIVES)}, terminals {list(TERMINALS)}"
            )
        if not self.functions or not self.terminals:
            raise ConfigError("a primitive set needs at least one function and one terminal")

    @property
    def binary(self) -> tuple[str, ...]:
        return tuple(f for f in self.functions if PRIMITIVES[f].arity == 2)
