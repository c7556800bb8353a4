"""ML3's loss: a small network over (f(x), y) (Bechtle et al., ICPR 2021).

The network takes the concatenation of the prediction and the target for
each sample (softmax probabilities and one-hot labels for classification,
raw values for regression), has two hidden layers of 50 ReLU units and a
softplus output, and the loss is the batch mean of its output. Its weights
live in one flat vector so that the same unrolled meta-gradient procedure
as EvoMAL's local search (:func:`evomal.meta.local_search.optimise_phi`) can
train them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
from evomal.symbolic.transforms import TASK_KINDS, check_choice, task_inputs


def layer_shapes(width: int, hidden: Sequence[int]) -> list[tuple[tuple[int, int], tuple[int]]]:
    """(weight, bias) shapes of the network for ``width`` outputs per sample."""
    sizes = [2 * width, *hidden, 1]
    return [((n_out, n_in), (n_out,)) for n_in, n_out in itertools.pairwise(sizes)]


def n_parameters(width: int, hidden: Sequence[int]) -> int:
    return sum(w[0] * w[1] + b[0] for w, b in layer_shapes(width, hidden))


class NeuralLossFunction:
    """``loss(y_pred, y_true, params)`` for an ML3 network of fixed shape."""

    def __init__(
        self, width: int, task: str = "classification", hidden: Sequence[int] = (50, 50)
    ) -> None:
        check_choice(task, TASK_KINDS, "task kind")
        if width < 1 or not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"invalid network shape: width {width}, hidden {tuple(hidden)}")
        self.width, self.task, self.hidden = width, task, tuple(hidden)
        self.shapes = layer_shapes(width, self.hidden)
        self.n_weights = n_parameters(width, self.hidden)

    def initial_params(self, seed: int) -> Tensor:
        """PyTorch's default ``nn.Linear`` initialisation, drawn from ``seed``, flattened."""
        generator = torch.Generator().manual_seed(seed)
        chunks = []
        for (n_out, n_in), _ in self.shapes:
            bound = 1.0 / math.sqrt(n_in)
            chunks.append((torch.rand(n_out * n_in, generator=generator) * 2 - 1) * bound)
            chunks.append((torch.rand(n_out, generator=generator) * 2 - 1) * bound)
        return torch.cat(chunks)

    def per_sample(self, fx: Tensor, y: Tensor, params: Tensor) -> Tensor:
        h = torch.cat([fx.reshape(fx.shape[0], -1), y.reshape(y.shape[0], -1)], dim=1)
        if h.shape[1] != 2 * self.width:
            raise ValueError(
                f"this ML3 loss was built for {self.width} outputs per sample, the predictions "
                f"have {h.shape[1] // 2}; ML3 losses transfer only between tasks of equal width"
            )
        offset = 0
        for k, ((n_out, n_in), _) in enumerate(self.shapes):
            weight = params[offset : offset + n_out * n_in].reshape(n_out, n_in)
            offset += n_out * n_in
            bias = params[offset : offset + n_out]
            offset += n_out
            h = F.linear(h, weight, bias)
            h = F.relu(h) if k < len(self.shapes) - 1 else F.softplus(h)
        return h.reshape(-1)

    def __call__(
        self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean"
    ) -> Tensor:
        fx, y = task_inputs(self.task, y_pred, y_true)
        values = self.per_sample(fx, y, phi)
        if reduction == "mean":
            return values.mean()
        return values.sum() if reduction == "sum" else values


def loss_width(task: str, n_outputs: int) -> int:
    """Values per sample the network sees: binary single-logit tasks use two (1 - p, p)."""
    return 2 if task == "classification" and n_outputs == 1 else n_outputs


class NeuralLoss(JsonLoss, nn.Module):
    """An ML3 loss network as a drop-in criterion, saved as plain JSON numbers."""

    kind = "neural"

    def __init__(
        self,
        params: Sequence[float] | Tensor,
        width: int,
        task: str = "classification",
        hidden: Sequence[int] = (50, 50),
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.loss_fn = NeuralLossFunction(width, task, hidden)
        weights = torch.as_tensor(params, dtype=torch.get_default_dtype()).detach().clone()
        if weights.shape != (self.loss_fn.n_weights,):
            raise ValueError(
                f"an ML3 network of width {width} and hidden {tuple(hidden)} has "
                f"{self.loss_fn.n_weights} parameters; got {tuple(weights.shape)}"
            )
        self.params = nn.Parameter(weights, requires_grad=False)
        self.width, self.task, self.hidden, self.reduction = width, task, tuple(hidden), reduction
        self.output_activation = "softplus"

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.loss_fn(y_pred, y_true, self.params, self.reduction)

    @property
    def expression(self) -> str:
        return f"ML3 network {2 * self.width}-{'-'.join(map(str, self.hidden))}-1 (softplus)"

    def __str__(self) -> str:
        return f"NeuralLoss({self.task}): {self.expression}, {self.loss_fn.n_weights} weights"

    def to_dict(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "width": self.width,
            "hidden": list(self.hidden),
            "task": self.task,
            "params": [float(v) for v in self.params.detach().tolist()],
        }
        if metadata:
            doc["metadata"] = metadata
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> NeuralLoss:
        require_fields(
            doc,
            {
                "format": str,
                "version": int,
                "kind": str,
                "width": int,
                "hidden": list,
                "task": str,
                "params": list,
            },
            {"metadata": dict},
            source,
        )
        check_header(doc, cls.kind, source)
        hidden = doc["hidden"]
        if not hidden or not all(
            isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 4096 for h in hidden
        ):
            raise fail(source, "field 'hidden' must be a list of layer sizes between 1 and 4096")
        if not 0 < doc["width"] <= 100_000:
            raise fail(source, "field 'width' must be between 1 and 100000")
        params = float_list(doc["params"], "params", source, n_parameters(doc["width"], hidden))
        try:
            return cls(params, doc["width"], doc["task"], hidden)
        except ValueError as exc:
            raise fail(source, str(exc)) from None
