"""Compile an expression tree once into a pure torch function.

The tree becomes the meta-loss network of the paper's Fig. 3: each edge
carries a weight, ``phi[k]`` for the edge from node ``k + 1`` (prefix order)
to its parent, so ``phi = 1`` reproduces the plain tree. Compilation emits a
straight-line ``torch.fx`` graph (one call per node, weights taken from
``phi.unbind(0)``), which ``torch.fx`` turns into ordinary Python code. A call
therefore does no Python walk of the tree and creates no tensor constants;
constants ``+1``/``-1`` are just their (signed) edge weights.

Because the result is a plain function of its tensor arguments it composes
with ``torch.func.grad``, ``vmap``, ``functional_call`` and double backward.
The graph is built only from whitelisted primitive names, so no text from a
loss file is ever executed.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import torch
import torch.fx
from torch import Tensor

from evomal.symbolic.primitives import CONSTANTS, PRIMITIVES, VARIABLES
from evomal.symbolic.transforms import (
    OUTPUT_ACTIVATIONS,
    REDUCTIONS,
    TASK_KINDS,
    check_choice,
    reduce_output,
    task_inputs,
)
from evomal.symbolic.tree import Tree, parse


def _build_graph(tree: Tree) -> torch.fx.Graph:
    graph = torch.fx.Graph()
    fx_in = graph.placeholder("fx")
    y_in = graph.placeholder("y")
    phi = graph.placeholder("phi")
    weights: list[torch.fx.Node] = []
    if tree.n_edges:
        unbound = graph.call_method("unbind", (phi,))
        weights = [graph.call_function(operator.getitem, (unbound, k)) for k in range(tree.n_edges)]
    inputs = {"fx": fx_in, "y": y_in}
    stack: list[Any] = []
    # Reverse prefix order: children are ready before their parent, and the
    # leftmost child is on top of the stack.
    for i in range(tree.size - 1, -1, -1):
        name = tree.nodes[i]
        if name in VARIABLES:
            value: Any = inputs[name]
            if i > 0:
                value = graph.call_function(operator.mul, (value, weights[i - 1]))
        elif name in CONSTANTS:
            if i > 0:
                w = weights[i - 1]
                value = w if CONSTANTS[name] > 0 else graph.call_function(operator.neg, (w,))
            else:  # a lone constant tree: broadcast to the prediction's shape
                value = graph.call_function(torch.full_like, (fx_in, CONSTANTS[name]))
        else:
            prim = PRIMITIVES[name]
            args = tuple(stack.pop() for _ in range(prim.arity))
            value = graph.call_function(prim.torch_fn, args)
            if i > 0:
                value = graph.call_function(operator.mul, (value, weights[i - 1]))
        stack.append(value)
    graph.output(stack[0])
    graph.lint()
    return graph


@functools.lru_cache(maxsize=8192)
def compile_elementwise(tree: Tree) -> torch.fx.GraphModule:
    """The tree as an elementwise function ``f(fx, y, phi) -> Tensor``.

    Inputs broadcast against each other; ``phi`` is a 1-D tensor of length
    ``tree.n_edges``. Results are cached per tree.
    """
    return torch.fx.GraphModule(torch.nn.Module(), _build_graph(tree), class_name="TreeLoss")


class CompiledLoss:
    """A tree compiled into ``loss(y_pred, y_true, phi) -> scalar``.

    Build it with :func:`compile_tree`. Calling it applies the task's input
    transforms, the elementwise tree with edge weights ``phi``, the output
    activation, a sum over outputs and a mean over the batch (or the
    ``reduction`` asked for).
    """

    def __init__(self, tree: Tree, task: str, output_activation: str) -> None:
        check_choice(task, TASK_KINDS, "task kind")
        check_choice(output_activation, OUTPUT_ACTIVATIONS, "output activation")
        self.tree = tree
        self.task = task
        self.output_activation = output_activation
        self.n_weights = tree.n_edges
        self.elementwise = compile_elementwise(tree)
        self._broadcast = not tree.variables() and tree.size > 1

    def pointwise(self, fx: Tensor, y: Tensor, phi: Tensor) -> Tensor:
        """The tree's value for every (y, fx) pair, shaped like ``fx`` (before reduction)."""
        values = self.elementwise(fx, y, phi)
        if self._broadcast:  # a tree without y or fx is constant; give it a shape
            values = values.expand(fx.shape)
        return values

    def __call__(
        self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean"
    ) -> Tensor:
        fx, y = task_inputs(self.task, y_pred, y_true)
        values = self.pointwise(fx, y, phi)
        if reduction not in REDUCTIONS:
            check_choice(reduction, REDUCTIONS, "reduction")
        return reduce_output(values, self.output_activation, reduction)

    def __reduce__(self) -> tuple[Any, ...]:
        # Travel by value as (tree, transforms); the graph is rebuilt on arrival.
        return (compile_tree, (self.tree, self.task, self.output_activation))

    def __repr__(self) -> str:
        return (
            f"CompiledLoss({str(self.tree)!r}, task={self.task!r}, "
            f"output_activation={self.output_activation!r})"
        )


def compile_tree(
    tree: Tree | str, task: str = "classification", output_activation: str = "identity"
) -> CompiledLoss:
    """Compile ``tree`` once into a pure torch loss ``loss(y_pred, y_true, phi)``.

    ``phi`` is a 1-D tensor with one weight per edge (``tree.n_edges``);
    ``torch.ones(tree.n_edges)`` reproduces the plain tree.
    """
    if isinstance(tree, str):
        tree = parse(tree)
    return CompiledLoss(tree, task, output_activation)


def nonfinite_reason(loss: CompiledLoss, y_pred: Tensor, y_true: Tensor, phi: Tensor) -> str | None:
    """Why ``loss`` is not finite at these inputs, or ``None`` if it is.

    Checks the value and its gradients with respect to ``y_pred`` and ``phi``.
    Deep trees can overflow float32 (for example ``square`` applied five times
    to ``log(0 + eps)`` exceeds 3.4e38); the search uses this check to give
    such candidates the worst fitness instead of training on infinities.
    """
    y_pred = y_pred.detach().requires_grad_(True)
    phi = phi.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss(y_pred, y_true, phi)
        if not torch.isfinite(value):
            return f"loss value is {value.item()}"
        grads = torch.autograd.grad(value, (y_pred, phi), allow_unused=True)
    for name, g in zip(("predictions", "phi"), grads, strict=True):
        if g is not None and not torch.isfinite(g).all():
            return f"gradient with respect to {name} is not finite"
    return None
