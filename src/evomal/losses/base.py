"""What every learned-loss module shares: one weight vector, forward, JSON document.

A learned loss is a pure loss function ``loss_fn(y_pred, y_true, weights)``
(a compiled tree, a Taylor polynomial, an ML3 network) plus one frozen
``nn.Parameter`` holding its weights, and a constant ``scale`` the value is
multiplied by (1 unless the local search normalised the loss's gradient
scale, see :mod:`evomal.meta.scale`). Subclasses say what their weights are
called (``phi`` for trees) and which other fields their document holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from evomal.errors import LossFileError
from evomal.losses.document import (
    FORMAT_TAG,
    FORMAT_VERSION,
    JsonLoss,
    LossDocument,
    OnlineSettings,
)
from evomal.records import KindFields
from evomal.symbolic.transforms import REDUCTIONS, check_choice


class WeightedLoss(JsonLoss, nn.Module):
    """A loss function with one weight vector, as a drop-in ``nn.Module`` criterion."""

    kind: ClassVar[str]
    weight_name: ClassVar[Literal["phi", "params"]] = "params"
    loss_fn: Any  # the pure function loss_fn(y_pred, y_true, weights, reduction)
    reduction: str
    scale: float = 1.0
    #: set when the loss adapts while it trains (AdaLFL, hypergradient descent)
    online: OnlineSettings | None = None

    def adapting(self, settings: OnlineSettings | None) -> WeightedLoss:
        """This loss (same weights) set to adapt online with ``settings`` (None: fixed)."""
        self.online = settings
        return self

    def set_scale(self, scale: float) -> None:
        """Multiply the loss by ``scale`` (a positive, finite number) from now on."""
        scale = float(scale)
        if not (scale > 0 and math.isfinite(scale)):
            raise LossFileError(f"a loss scale must be positive and finite, got {scale}")
        self.scale = scale

    def _set_weights(
        self, values: Sequence[float] | Tensor | None, n_weights: int, what: str
    ) -> None:
        """Register the frozen weight vector (ones when ``values`` is None) as ``weight_name``."""
        if values is None:
            weights = torch.ones(n_weights)
        else:
            weights = torch.as_tensor(values, dtype=torch.get_default_dtype()).detach().clone()
        if weights.shape != (n_weights,):
            raise LossFileError(f"{what} has {n_weights} weights; got shape {tuple(weights.shape)}")
        setattr(self, self.weight_name, nn.Parameter(weights, requires_grad=False))

    @property
    def weights(self) -> Tensor:
        """The weight vector the loss function takes."""
        return getattr(self, self.weight_name)

    def _set_reduction(self, reduction: str) -> None:
        check_choice(reduction, REDUCTIONS, "reduction")
        self.reduction = reduction

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.at(y_pred, y_true, self.weights)

    def at(self, y_pred: Tensor, y_true: Tensor, weights: Tensor) -> Tensor:
        """The loss with ``weights`` in place of its own (its reduction and scale kept): what
        online adaptation differentiates with respect to the weights."""
        value = self.loss_fn(y_pred, y_true, weights, self.reduction)
        return value * self.scale if self.scale != 1.0 else value

    def document_fields(self) -> KindFields:
        """The kind-specific fields of the JSON document (besides the weights)."""
        raise NotImplementedError

    def to_dict(self, metadata: dict[str, Any] | None = None) -> LossDocument:
        """The loss as a plain JSON-ready document."""
        doc: LossDocument = {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            **self.document_fields(),
        }
        doc[self.weight_name] = [float(v) for v in self.weights.detach().cpu().tolist()]
        if self.scale != 1.0:
            doc["scale"] = self.scale
        if self.online is not None:
            doc["online"] = self.online.as_dict()
        if metadata:
            doc["metadata"] = metadata
        return doc
