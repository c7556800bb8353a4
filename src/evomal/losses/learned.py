"""``LearnedLoss``: a symbolic loss as a drop-in ``torch.nn.Module`` criterion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
from torch import Tensor, nn

from evomal.losses.base import WeightedLoss
from evomal.losses.document import (
    check_header,
    fail,
    float_list,
    read_scale,
    require_fields,
)
from evomal.records import KindFields
from evomal.symbolic.compile import compile_tree
from evomal.symbolic.primitives import EPS
from evomal.symbolic.sympy_form import to_latex, to_sympy
from evomal.symbolic.transforms import OutputActivation, Reduction, TaskKind
from evomal.symbolic.tree import ParseError, Tree, parse

CROSS_ENTROPY_EXPRESSION = "mul(-1, mul(y, log(fx)))"
SQUARED_ERROR_EXPRESSION = "square(sub(fx, y))"


class LearnedLoss(WeightedLoss):
    """A learned symbolic loss: an expression tree with one weight per edge.

    Use it like any PyTorch criterion::

        criterion = LearnedLoss.from_string("mul(-1, mul(y, log(fx)))")
        loss = criterion(logits, labels)

    ``phi`` is an ``nn.Parameter`` with one entry per edge (paper Fig. 3). It is
    frozen by default (``requires_grad=False``) because ordinary training uses
    the loss as fixed; call ``criterion.phi.requires_grad_(True)`` to tune it.
    The tree is compiled once at construction.
    """

    kind = "symbolic"
    weight_name = "phi"
    phi: nn.Parameter

    def __init__(
        self,
        tree: Tree | str,
        phi: Sequence[float] | Tensor | None = None,
        task: TaskKind = "classification",
        output_activation: OutputActivation = "identity",
        reduction: Reduction = "mean",
        trainable: bool = False,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.tree = parse(tree) if isinstance(tree, str) else tree
        self._set_reduction(reduction)
        self.loss_fn = compile_tree(self.tree, task, output_activation)
        self._set_weights(phi, self.tree.n_edges, f"{self.expression!r} (phi: one weight per edge)")
        self.phi.requires_grad_(trainable)
        self.task = task
        self.output_activation = output_activation
        self.set_scale(scale)

    # -- construction --------------------------------------------------------

    @classmethod
    def from_string(
        cls,
        expression: str,
        task: TaskKind = "classification",
        phi: Sequence[float] | Tensor | None = None,
        output_activation: OutputActivation = "identity",
        reduction: Reduction = "mean",
    ) -> LearnedLoss:
        """Build a loss from an expression string such as ``"square(sub(fx, y))"``."""
        return cls(parse(expression), phi, task, output_activation, reduction)

    @classmethod
    def cross_entropy(cls) -> LearnedLoss:
        """Cross-entropy as a tree, ``-y * log(fx)`` over softmax probabilities."""
        return cls.from_string(CROSS_ENTROPY_EXPRESSION, task="classification")

    @classmethod
    def mse(cls) -> LearnedLoss:
        """Squared error as a tree, ``(fx - y)^2`` summed over outputs."""
        return cls.from_string(SQUARED_ERROR_EXPRESSION, task="regression")

    # -- use -----------------------------------------------------------------

    @property
    def expression(self) -> str:
        return str(self.tree)

    # -- display -------------------------------------------------------------

    def to_sympy(self, weights: bool = True, digits: int = 4, simplify: bool = False) -> sympy.Expr:
        """The loss as a sympy expression in ``y`` and ``fx`` (with edge weights by default)."""
        phi = self.phi.detach().cpu().tolist() if weights else None
        expr = to_sympy(self.tree, phi, digits=digits if weights else None)
        if weights and self.scale != 1.0:
            expr = sympy.Float(self.scale, digits) * expr
        return sympy.simplify(expr) if simplify else expr

    def latex(self, weights: bool = True, digits: int = 4) -> str:
        """LaTeX for the loss, with ``fx`` written as f(x)."""
        return to_latex(self.to_sympy(weights=weights, digits=digits))

    def __str__(self) -> str:
        weights = ", ".join(f"{w:.4g}" for w in self.phi.detach().cpu().tolist())
        scale = f"  scale:   {self.scale:.4g}\n" if self.scale != 1.0 else ""
        return (
            f"LearnedLoss({self.task}, output={self.output_activation})\n"
            f"  tree:    {self.expression}\n"
            f"  phi:     [{weights}]\n"
            f"{scale}"
            f"  formula: {self.to_sympy()}"
        )

    def extra_repr(self) -> str:
        return (
            f"{self.expression!r}, task={self.task!r}, output_activation={self.output_activation!r}"
        )

    # -- persistence ---------------------------------------------------------

    def document_fields(self) -> KindFields:
        return {
            "expression": self.expression,
            "task": self.task,
            "output_activation": self.output_activation,
            "eps": EPS,
        }

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> LearnedLoss:
        """Validate a document and build the loss. Raises ``ValueError`` naming any problem."""
        require_fields(
            doc,
            {
                "format": str,
                "version": int,
                "kind": str,
                "expression": str,
                "phi": list,
                "task": str,
                "output_activation": str,
            },
            {"eps": (int, float), "metadata": dict, "scale": (int, float)},
            source,
        )
        check_header(doc, "symbolic", source)
        try:
            tree = parse(doc["expression"])
        except ParseError as exc:
            raise fail(source, f"invalid expression: {exc}") from None
        if tree.height > MAX_FILE_HEIGHT or tree.size > MAX_FILE_NODES:
            raise fail(
                source,
                f"the tree has height {tree.height} and {tree.size} nodes, over the limits "
                f"{MAX_FILE_HEIGHT} and {MAX_FILE_NODES} (searches keep trees to gp.max_height, "
                "10 by default); the file was not written by evomal or was edited",
            )
        phi = float_list(doc["phi"], "phi", source, length=tree.n_edges)
        if "eps" in doc and float(doc["eps"]) != EPS:
            raise fail(
                source,
                f"written with protected-operator eps={doc['eps']}, but this "
                f"evomal uses eps={EPS}; the loss would not be the same function",
            )
        try:
            loss = cls(tree, phi, doc["task"], doc["output_activation"])
        except ValueError as exc:
            raise fail(source, str(exc)) from None
        loss.set_scale(read_scale(doc, source))
        return loss


#: Trees in loss files above these are refused: far beyond any search (gp.max_height is 10
#: by default), they could only be crafted, and would cost minutes to compile.
MAX_FILE_HEIGHT = 64
MAX_FILE_NODES = 4096


def task_loss_name(kind: str) -> str:
    """What tables and messages call the task loss of ``kind``."""
    return "cross-entropy" if kind == "classification" else "MSE"


def task_loss_tree(kind: str) -> LearnedLoss:
    """The task loss of ``kind`` as a tree: cross-entropy (classification) or squared error."""
    return LearnedLoss.cross_entropy() if kind == "classification" else LearnedLoss.mse()
