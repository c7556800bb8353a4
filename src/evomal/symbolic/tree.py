"""Immutable expression trees in prefix form, and their text syntax.

A :class:`Tree` is a tuple of node names in prefix (pre-order) order, e.g.
``("mul", "-1", "mul", "y", "log", "fx")`` for ``mul(-1, mul(y, log(fx)))``.
Prefix tuples make the GP operators simple slice arithmetic (a subtree is a
contiguous span), hash and compare by value, and serialise as plain strings.

Heights follow the DEAP convention that the paper's settings use: a lone
terminal has height 0, so "maximum height 10" means at most 10 edges from the
root to a leaf.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from evomal.errors import LossFileError
from evomal.symbolic.primitives import CONSTANTS, PRIMITIVES, TERMINALS, VARIABLES, arity

#: Upper bound on the number of nodes accepted by :func:`parse`. Guards a
#: loader against a hostile file that would exhaust memory.
MAX_PARSE_NODES = 100_000


class ParseError(LossFileError):
    """A loss expression string is malformed; the message says what and where."""


@dataclass(frozen=True)
class Tree:
    """An immutable expression tree stored as a prefix tuple of node names.

    Derived structure (subtree spans, depths) is computed once at construction.
    Construction validates that every name is known and that the arities form
    exactly one complete tree.
    """

    nodes: tuple[str, ...]
    _ends: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _depths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        if not nodes:
            raise LossFileError("a tree needs at least one node")
        arities = []
        for name in nodes:
            try:
                arities.append(arity(name))
            except KeyError:
                raise LossFileError(
                    f"unknown node name {name!r}; known names are "
                    f"{sorted(PRIMITIVES)} and terminals {list(TERMINALS)}"
                ) from None
        # One reverse pass computes where each subtree ends; one forward pass
        # computes depths. Both are O(n) and iterative (no recursion limit).
        ends = [0] * len(nodes)
        stack: list[int] = []  # end indices of pending subtrees, top = leftmost
        for i in range(len(nodes) - 1, -1, -1):
            k = arities[i]
            if len(stack) < k:
                raise LossFileError(f"node {nodes[i]!r} at position {i} is missing arguments")
            end = i + 1
            for _ in range(k):
                end = stack.pop()
            ends[i] = end
            stack.append(end)
        if len(stack) != 1:
            raise LossFileError(f"prefix sequence holds {len(stack)} trees, expected exactly one")
        depths = [0] * len(nodes)
        for i in range(len(nodes)):
            child = i + 1
            for _ in range(arities[i]):
                depths[child] = depths[i] + 1
                child = ends[child]
        object.__setattr__(self, "_ends", tuple(ends))
        object.__setattr__(self, "_depths", tuple(depths))

    # -- structure ---------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def height(self) -> int:
        """Edges on the longest root-to-leaf path (a lone terminal has height 0)."""
        return max(self._depths)

    @property
    def n_edges(self) -> int:
        """Number of edges, i.e. the length of the meta-loss weight vector ``phi``.

        Edge ``k`` joins node ``k + 1`` (prefix order) to its parent.
        """
        return len(self.nodes) - 1

    def depth(self, index: int) -> int:
        """Depth of the node at ``index`` (the root has depth 0)."""
        return self._depths[index]

    def span(self, index: int) -> slice:
        """The slice of :attr:`nodes` holding the subtree rooted at ``index``."""
        return slice(index, self._ends[index])

    def subtree(self, index: int) -> Tree:
        """The subtree rooted at ``index`` as a new tree."""
        return Tree(self.nodes[self.span(index)])

    def subtree_height(self, index: int) -> int:
        """Height of the subtree rooted at ``index``."""
        sl = self.span(index)
        return max(self._depths[sl]) - self._depths[index]

    def children(self, index: int) -> tuple[int, ...]:
        """Prefix indices of the children of the node at ``index``."""
        out = []
        child = index + 1
        for _ in range(arity(self.nodes[index])):
            out.append(child)
            child = self._ends[child]
        return tuple(out)

    def parents(self) -> tuple[int, ...]:
        """Parent index of every node (-1 for the root)."""
        parent = [-1] * len(self.nodes)
        for i in range(len(self.nodes)):
            for c in self.children(i):
                parent[c] = i
        return tuple(parent)

    def replace(self, index: int, other: Tree) -> Tree:
        """A new tree with the subtree at ``index`` replaced by ``other``."""
        sl = self.span(index)
        return Tree(self.nodes[: sl.start] + other.nodes + self.nodes[sl.stop :])

    def variables(self) -> frozenset[str]:
        """Which of ``y`` and ``fx`` occur in the tree."""
        return frozenset(n for n in self.nodes if n in VARIABLES)

    def terminal_indices(self) -> tuple[int, ...]:
        return tuple(i for i, n in enumerate(self.nodes) if n in TERMINALS)

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    # -- text ---------------------------------------------------------------

    def __str__(self) -> str:
        # Iterative rendering: deep trees must not hit the recursion limit.
        rendered: list[str] = []
        for i in range(len(self.nodes) - 1, -1, -1):
            name = self.nodes[i]
            k = arity(name)
            if k == 0:
                rendered.append(name)
            else:
                args = [rendered.pop() for _ in range(k)]
                rendered.append(f"{name}({', '.join(args)})")
        return rendered[0]

    def __repr__(self) -> str:
        return f"Tree({str(self)!r})"


_TOKEN = re.compile(
    r"\s*(?:(?P<num>[+-]?\d+(?:\.\d*)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<punct>[(),]))"
)


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    pos = 0
    n = len(text)
    while pos < n:
        if text[pos:].strip() == "":
            return
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            stripped = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise ParseError(_where(text, stripped, f"unexpected character {text[stripped]!r}"))
        kind = m.lastgroup or ""
        value = m.group(kind)
        yield kind, value, m.start(kind)
        pos = m.end()


def _where(text: str, pos: int, message: str) -> str:
    snippet = text if len(text) <= 80 else text[max(0, pos - 40) : pos + 40]
    caret = pos if len(text) <= 80 else min(pos, 40)
    return f"{message} at position {pos}:\n  {snippet}\n  {' ' * caret}^"


def parse(text: str) -> Tree:
    """Parse an expression such as ``"mul(-1, mul(y, log(fx)))"`` into a :class:`Tree`.

    The grammar is ``expr := terminal | name '(' expr (',' expr)* ')'`` where
    names and arities come from Table 1 and terminals are ``y``, ``fx``, ``1``
    and ``-1`` (``+1`` is accepted as ``1``). Raises :class:`ParseError`
    (a ``ValueError``) naming the problem and its position. Parsing only
    matches known names; it never evaluates anything.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    if not text.strip():
        raise ParseError("empty expression")
    nodes: list[str] = []
    # Each stack entry: [name, arguments still expected, position of name].
    stack: list[list] = []
    expect = "expr"  # one of: expr, open, sep (',' or ')'), end
    for kind, value, pos in _tokens(text):
        if expect == "end":
            raise ParseError(
                _where(text, pos, f"unexpected {value!r} after the end of the expression")
            )
        if expect == "expr":
            if kind == "num":
                const = value.lstrip("+")
                if const not in CONSTANTS:
                    raise ParseError(
                        _where(
                            text, pos, f"unknown constant {value!r} (only 1 and -1 are terminals)"
                        )
                    )
                nodes.append(const)
            elif kind == "name":
                if value in VARIABLES:
                    nodes.append(value)
                elif value in PRIMITIVES:
                    nodes.append(value)
                    stack.append([value, PRIMITIVES[value].arity, pos])
                    expect = "open"
                    continue
                else:
                    raise ParseError(
                        _where(
                            text,
                            pos,
                            f"unknown name {value!r}; expected one of "
                            f"{sorted(PRIMITIVES)} or a terminal {list(TERMINALS)}",
                        )
                    )
            else:
                raise ParseError(_where(text, pos, f"expected an expression, found {value!r}"))
            if len(nodes) > MAX_PARSE_NODES:
                raise ParseError(f"expression has more than {MAX_PARSE_NODES} nodes")
            # A complete operand: close it against the enclosing call.
            if not stack:
                expect = "end"
            else:
                stack[-1][1] -= 1
                expect = "sep"
        elif expect == "open":
            if value != "(":
                raise ParseError(
                    _where(text, pos, f"expected '(' after {stack[-1][0]!r}, found {value!r}")
                )
            expect = "expr"
        elif expect == "sep":
            name, remaining, _ = stack[-1]
            if value == "," and remaining > 0:
                expect = "expr"
            elif value == ")" and remaining == 0:
                stack.pop()
                if not stack:
                    expect = "end"
                else:
                    stack[-1][1] -= 1
            elif value == ",":
                raise ParseError(
                    _where(
                        text,
                        pos,
                        f"too many arguments to {name!r} (takes {PRIMITIVES[name].arity})",
                    )
                )
            elif value == ")":
                raise ParseError(
                    _where(
                        text, pos, f"too few arguments to {name!r} (takes {PRIMITIVES[name].arity})"
                    )
                )
            else:
                raise ParseError(_where(text, pos, f"expected ',' or ')', found {value!r}"))
    if expect != "end":
        where = len(text.rstrip())
        if stack:
            raise ParseError(
                _where(text, where, f"unexpected end of expression inside {stack[-1][0]!r}")
            )
        raise ParseError(_where(text, where, "unexpected end of expression"))
    return Tree(tuple(nodes))
