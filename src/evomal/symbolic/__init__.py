"""Symbolic loss representation: primitives, trees, compilation, sympy forms, equivalence."""

from evomal.symbolic.compile import (
    CompiledLoss,
    compile_elementwise,
    compile_tree,
    nonfinite_reason,
)
from evomal.symbolic.equivalence import equivalence_key
from evomal.symbolic.generate import gen_full, gen_grow, gen_half_and_half
from evomal.symbolic.primitives import EPS, PRIMITIVES, TERMINALS, Primitive, PrimitiveSet
from evomal.symbolic.sympy_form import to_latex, to_sympy
from evomal.symbolic.tree import ParseError, Tree, parse

__all__ = [
    "EPS",
    "PRIMITIVES",
    "TERMINALS",
    "CompiledLoss",
    "ParseError",
    "Primitive",
    "PrimitiveSet",
    "Tree",
    "compile_elementwise",
    "compile_tree",
    "equivalence_key",
    "gen_full",
    "gen_grow",
    "gen_half_and_half",
    "nonfinite_reason",
    "parse",
    "to_latex",
    "to_sympy",
]
