"""TaylorGLO's loss: a third-order bivariate Taylor polynomial in (y, f(x)).

Gonzalez & Miikkulainen (GECCO 2021) parameterise a loss as a Taylor
polynomial of order k around a learned centre ``(c_y, c_f)``:

    L(y, f) = sum over i + j <= k, j >= 1 of  theta_ij * (y - c_y)^i * (f - c_f)^j

Terms with ``j = 0`` depend on ``y`` alone; their derivative with respect to
``f(x)`` is zero, so they cannot affect training and are dropped. For k = 3
that leaves 6 coefficients, plus the 2 centre coordinates: **8 parameters**,
the count the TaylorGLO paper gives for its third-order losses. The
polynomial is applied elementwise to the same (y, fx) pairs as a tree loss
(softmax probabilities and one-hot labels for classification), summed over
outputs and averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from evomal.errors import LossFileError
from evomal.losses.base import WeightedLoss
from evomal.losses.document import (
    check_header,
    fail,
    float_list,
    read_scale,
    require_fields,
)
from evomal.records import KindFields
from evomal.symbolic.transforms import (
    OUTPUT_ACTIVATIONS,
    TASK_KINDS,
    OutputActivation,
    Reduction,
    TaskKind,
    check_choice,
    reduce_output,
    task_inputs,
)


def taylor_terms(order: int) -> list[tuple[int, int]]:
    """Exponents (i, j) of (y - c_y)^i (f - c_f)^j kept at ``order``: j >= 1, i + j <= order."""
    if order < 1:
        raise LossFileError(f"Taylor order must be >= 1, got {order}")
    return [
        (i, j) for total in range(1, order + 1) for j in range(1, total + 1) for i in [total - j]
    ]


def n_parameters(order: int) -> int:
    """Coefficients plus the two centre coordinates."""
    return len(taylor_terms(order)) + 2


class TaylorLossFunction:
    """``loss(y_pred, y_true, params)`` for a Taylor polynomial of a fixed order.

    ``params = (c_y, c_f, theta_1, ..., theta_m)`` in the order of :func:`taylor_terms`.
    """

    def __init__(
        self, task: str = "classification", order: int = 3, output_activation: str = "identity"
    ) -> None:
        check_choice(task, TASK_KINDS, "task kind")
        check_choice(output_activation, OUTPUT_ACTIVATIONS, "output activation")
        self.task = task
        self.order = order
        self.output_activation = output_activation
        self.terms = taylor_terms(order)
        self.n_weights = len(self.terms) + 2

    def pointwise(self, fx: Tensor, y: Tensor, params: Tensor) -> Tensor:
        """The polynomial for every (y, fx) pair (before reduction)."""
        return self.elementwise(fx, y, params)

    def elementwise(self, fx: Tensor, y: Tensor, params: Tensor) -> Tensor:
        dy = y - params[0]
        df = fx - params[1]
        powers_y = [torch.ones_like(dy), dy]
        powers_f = [torch.ones_like(df), df]
        for _ in range(2, self.order + 1):
            powers_y.append(powers_y[-1] * dy)
            powers_f.append(powers_f[-1] * df)
        total = torch.zeros_like(df)
        for k, (i, j) in enumerate(self.terms):
            total = total + params[2 + k] * powers_y[i] * powers_f[j]
        return total

    def __call__(
        self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean"
    ) -> Tensor:
        fx, y = task_inputs(self.task, y_pred, y_true)
        return reduce_output(self.elementwise(fx, y, phi), self.output_activation, reduction)


class TaylorLoss(WeightedLoss):
    """A TaylorGLO loss as a drop-in criterion, with JSON save/load like :class:`LearnedLoss`."""

    kind = "taylor"
    params: nn.Parameter

    def __init__(
        self,
        params: Sequence[float] | Tensor,
        task: TaskKind = "classification",
        order: int = 3,
        output_activation: OutputActivation = "identity",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.loss_fn = TaylorLossFunction(task, order, output_activation)
        what = f"a Taylor loss of order {order} (2 centre + {len(self.loss_fn.terms)} coefficients)"
        self._set_weights(params, self.loss_fn.n_weights, what)
        self._set_reduction(reduction)
        self.task, self.order, self.output_activation = task, order, output_activation

    @property
    def expression(self) -> str:
        """The polynomial in readable form."""
        p = self.params.detach().tolist()
        dy, df = f"(y - {p[0]:.4g})", f"(fx - {p[1]:.4g})"
        parts = []
        for k, (i, j) in enumerate(self.loss_fn.terms):
            factors = [f"{p[2 + k]:.4g}"]
            factors += [dy if i == 1 else f"{dy}^{i}"] if i else []
            factors += [df if j == 1 else f"{df}^{j}"]
            parts.append("*".join(factors))
        return " + ".join(parts)

    def __str__(self) -> str:
        return f"TaylorLoss({self.task}, order {self.order}): {self.expression}"

    def document_fields(self) -> KindFields:
        return {"order": self.order, "task": self.task, "output_activation": self.output_activation}

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> TaylorLoss:
        require_fields(
            doc,
            {
                "format": str,
                "version": int,
                "kind": str,
                "order": int,
                "params": list,
                "task": str,
                "output_activation": str,
            },
            {"metadata": dict, "scale": (int, float)},
            source,
        )
        check_header(doc, "taylor", source)
        if not 1 <= doc["order"] <= 6:
            raise fail(source, f"Taylor order {doc['order']} is outside 1..6")
        params = float_list(doc["params"], "params", source, n_parameters(doc["order"]))
        try:
            loss = cls(params, doc["task"], doc["order"], doc["output_activation"])
        except ValueError as exc:
            raise fail(source, str(exc)) from None
        loss.set_scale(read_scale(doc, source))
        return loss
