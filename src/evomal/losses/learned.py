"""``LearnedLoss``: a symbolic loss as a drop-in ``torch.nn.Module`` criterion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch
from torch import Tensor, nn

from evomal.losses.document import (
    FORMAT_TAG,
    FORMAT_VERSION,
    JsonLoss,
    check_header,
    fail,
    float_list,
    require_fields,
)
from evomal.symbolic.compile import compile_tree
from evomal.symbolic.primitives import EPS
from evomal.symbolic.sympy_form import to_latex, to_sympy
from evomal.symbolic.transforms import REDUCTIONS, check_choice
from evomal.symbolic.tree import ParseError, Tree, parse

CROSS_ENTROPY_EXPRESSION = "mul(-1, mul(y, log(fx)))"
SQUARED_ERROR_EXPRESSION = "square(sub(fx, y))"


class LearnedLoss(JsonLoss, nn.Module):
    """A learned symbolic loss: an expression tree with one weight per edge.

    Use it like any PyTorch criterion::

        criterion = LearnedLoss.from_string("mul(-1, mul(y, log(fx)))")
        loss = criterion(logits, labels)

    ``phi`` is an ``nn.Parameter`` with one entry per edge (paper Fig. 3). It is
    frozen by default (``requires_grad=False``) because ordinary training uses
    the loss as fixed; call ``criterion.phi.requires_grad_(True)`` to tune it.
    The tree is compiled once at construction.
    """

    def __init__(
        self,
        tree: Tree | str,
        phi: Sequence[float] | Tensor | None = None,
        task: str = "classification",
        output_activation: str = "identity",
        reduction: str = "mean",
        trainable: bool = False,
    ) -> None:
        super().__init__()
        self.tree = parse(tree) if isinstance(tree, str) else tree
        check_choice(reduction, REDUCTIONS, "reduction")
        self.loss_fn = compile_tree(self.tree, task, output_activation)
        if phi is None:
            weights = torch.ones(self.tree.n_edges)
        else:
            weights = torch.as_tensor(phi, dtype=torch.get_default_dtype()).detach().clone()
        if weights.shape != (self.tree.n_edges,):
            raise ValueError(
                f"phi must have shape ({self.tree.n_edges},), one weight per edge of "
                f"{self.expression!r}; got {tuple(weights.shape)}"
            )
        self.phi = nn.Parameter(weights, requires_grad=trainable)
        self.task = task
        self.output_activation = output_activation
        self.reduction = reduction

    # -- construction --------------------------------------------------------

    @classmethod
    def from_string(
        cls,
        expression: str,
        task: str = "classification",
        phi: Sequence[float] | Tensor | None = None,
        output_activation: str = "identity",
        reduction: str = "mean",
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

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.loss_fn(y_pred, y_true, self.phi, self.reduction)

    @property
    def weights(self) -> Tensor:
        """The parameter vector the loss function takes (the edge weights phi)."""
        return self.phi

    @property
    def expression(self) -> str:
        return str(self.tree)

    # -- display -------------------------------------------------------------

    def to_sympy(self, weights: bool = True, digits: int = 4, simplify: bool = False) -> sympy.Expr:
        """The loss as a sympy expression in ``y`` and ``fx`` (with edge weights by default)."""
        phi = self.phi.detach().cpu().tolist() if weights else None
        expr = to_sympy(self.tree, phi, digits=digits if weights else None)
        return sympy.simplify(expr) if simplify else expr

    def latex(self, weights: bool = True, digits: int = 4) -> str:
        """LaTeX for the loss, with ``fx`` written as f(x)."""
        return to_latex(self.to_sympy(weights=weights, digits=digits))

    def __str__(self) -> str:
        weights = ", ".join(f"{w:.4g}" for w in self.phi.detach().cpu().tolist())
        return (
            f"LearnedLoss({self.task}, output={self.output_activation})\n"
            f"  tree:    {self.expression}\n"
            f"  phi:     [{weights}]\n"
            f"  formula: {self.to_sympy()}"
        )

    def extra_repr(self) -> str:
        return (
            f"{self.expression!r}, task={self.task!r}, output_activation={self.output_activation!r}"
        )

    # -- persistence ---------------------------------------------------------

    def to_dict(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """The loss as a plain JSON-ready document."""
        doc: dict[str, Any] = {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "kind": "symbolic",
            "expression": self.expression,
            "phi": [float(w) for w in self.phi.detach().cpu().tolist()],
            "task": self.task,
            "output_activation": self.output_activation,
            "eps": EPS,
        }
        if metadata:
            doc["metadata"] = metadata
        return doc

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
            {"eps": (int, float), "metadata": dict},
            source,
        )
        check_header(doc, "symbolic", source)
        try:
            tree = parse(doc["expression"])
        except ParseError as exc:
            raise fail(source, f"invalid expression: {exc}") from None
        phi = float_list(doc["phi"], "phi", source, length=tree.n_edges)
        if "eps" in doc and float(doc["eps"]) != EPS:
            raise fail(
                source,
                f"written with protected-operator eps={doc['eps']}, but this "
                f"evomal uses eps={EPS}; the loss would not be the same function",
            )
        try:
            return cls(tree, phi, doc["task"], doc["output_activation"])
        except ValueError as exc:
            raise fail(source, str(exc)) from None
