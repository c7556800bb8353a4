"""ML3's loss: a small network over (f(x), y) (Bechtle et al., ICPR 2021).

The network reads one (prediction, target) pair at a time: for
classification the softmax probability of a class and its one-hot label, for
regression a predicted value and its target. It has two hidden layers of 50
ReLU units and a softplus output; like a tree loss, it is applied to every
pair, summed over outputs and averaged over the batch. Reading pairs (rather
than whole output vectors) is how EvoMAL's authors set ML3 up for their
comparison: it keeps the loss model-agnostic, transferable across numbers of
classes, and its gradients at initialisation on the scale of cross-entropy's
(weights are He-normal, biases zero).

The weights live in one flat vector so that the same unrolled meta-gradient
procedure as EvoMAL's local search
(:func:`evomal.meta.local_search.optimise_phi`) can train them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
    TASK_KINDS,
    Reduction,
    TaskKind,
    check_choice,
    reduce_output,
    task_inputs,
)

#: Inputs per pair: the prediction and the target.
PAIR = 2


def layer_shapes(hidden: Sequence[int]) -> list[tuple[int, int]]:
    """(out, in) shape of each linear layer; every layer has a bias of size ``out``."""
    sizes = [PAIR, *hidden, 1]
    return [(n_out, n_in) for n_in, n_out in itertools.pairwise(sizes)]


def n_parameters(hidden: Sequence[int]) -> int:
    return sum(n_out * n_in + n_out for n_out, n_in in layer_shapes(hidden))


class NeuralLossFunction:
    """``loss(y_pred, y_true, params)`` for an ML3 network of fixed shape."""

    def __init__(self, task: str = "classification", hidden: Sequence[int] = (50, 50)) -> None:
        check_choice(task, TASK_KINDS, "task kind")
        if not hidden or any(h < 1 for h in hidden):
            raise LossFileError(f"invalid hidden layer sizes {tuple(hidden)}")
        self.task, self.hidden = task, tuple(hidden)
        self.shapes = layer_shapes(self.hidden)
        self.n_weights = n_parameters(self.hidden)
        self.output_activation = "identity"  # softplus is the network's own last layer

    def initial_params(self, seed: int) -> Tensor:
        """He-normal weights (for ReLU) and zero biases, drawn from ``seed``, flattened."""
        generator = torch.Generator().manual_seed(seed)
        chunks = []
        for n_out, n_in in self.shapes:
            std = math.sqrt(2.0 / n_in)
            chunks.append(torch.randn(n_out * n_in, generator=generator) * std)
            chunks.append(torch.zeros(n_out))
        return torch.cat(chunks)

    def pointwise(self, fx: Tensor, y: Tensor, phi: Tensor) -> Tensor:
        """The network's output for every (fx, y) pair, shaped like ``fx``."""
        h = torch.stack(torch.broadcast_tensors(fx, y), dim=-1)
        offset = 0
        for k, (n_out, n_in) in enumerate(self.shapes):
            weight = phi[offset : offset + n_out * n_in].reshape(n_out, n_in)
            offset += n_out * n_in
            bias = phi[offset : offset + n_out]
            offset += n_out
            h = F.linear(h, weight, bias)
            h = F.relu(h) if k < len(self.shapes) - 1 else F.softplus(h)
        return h.squeeze(-1)

    def __call__(
        self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean"
    ) -> Tensor:
        fx, y = task_inputs(self.task, y_pred, y_true)
        return reduce_output(self.pointwise(fx, y, phi), "identity", reduction)


class NeuralLoss(WeightedLoss):
    """An ML3 loss network as a drop-in criterion, saved as plain JSON numbers."""

    kind = "neural"
    params: nn.Parameter

    def __init__(
        self,
        params: Sequence[float] | Tensor,
        task: TaskKind = "classification",
        hidden: Sequence[int] = (50, 50),
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.loss_fn = NeuralLossFunction(task, hidden)
        self._set_weights(params, self.loss_fn.n_weights, f"an ML3 network {tuple(hidden)}")
        self._set_reduction(reduction)
        self.task, self.hidden = task, tuple(hidden)
        self.output_activation = "identity"

    @property
    def expression(self) -> str:
        return f"ML3 network 2-{'-'.join(map(str, self.hidden))}-1 (ReLU, softplus output)"

    def __str__(self) -> str:
        return f"NeuralLoss({self.task}): {self.expression}, {self.loss_fn.n_weights} weights"

    def document_fields(self) -> KindFields:
        return {"hidden": list(self.hidden), "task": self.task}

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> NeuralLoss:
        require_fields(
            doc,
            {"format": str, "version": int, "kind": str, "hidden": list, "task": str,
             "params": list},
            {"metadata": dict, "scale": (int, float)},
            source,
        )  # fmt: skip
        check_header(doc, cls.kind, source)
        hidden = doc["hidden"]
        valid = all(
            isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 4096 for h in hidden
        )
        if not hidden or not valid or len(hidden) > 16:
            raise fail(source, "field 'hidden' must list 1 to 16 layer sizes between 1 and 4096")
        params = float_list(doc["params"], "params", source, n_parameters(hidden))
        try:
            loss = cls(params, doc["task"], hidden)
        except ValueError as exc:
            raise fail(source, str(exc)) from None
        loss.set_scale(read_scale(doc, source))
        return loss
