"""K stacked dense networks without ``vmap``: batched matrix products, layer by layer.

:class:`~evomal.training.population.StackedModel` runs any architecture under
``torch.func.vmap``. For a plain stack of dense layers (``nn.Sequential`` of
``Flatten``, ``Linear`` and elementwise activations: evomal's ``mlp`` and
``linear``) the same arithmetic is a ``baddbmm`` per layer, and written out
directly it skips ``vmap``'s per-operation dispatch: the forward and backward of
16 stacked MLPs took 2.8 ms against 4.4 ms under ``vmap`` on 2 CPU cores
(``benchmarks/zoo_batching.py`` uses it). Member k computes exactly
``models[k](x)`` up to float rounding (tested against ``vmap`` in float64).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

#: Elementwise layers the stacked forward applies as they are.
ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu,
    nn.Tanh: torch.tanh,
    nn.Sigmoid: torch.sigmoid,
    nn.Identity: lambda h: h,
}

#: One layer: ("linear", weight name, bias name or None), ("flatten",), or ("act", function).
Layer = tuple


def dense_layers(model: nn.Module) -> list[Layer] | None:
    """The layers of a plain dense ``nn.Sequential``, or None for any other model.

    Only exact types count (a subclass may change ``forward``), and ``Flatten``
    only from dimension 1 to the last.
    """
    if type(model) is not nn.Sequential or any(True for _ in model.buffers()):
        return None
    layers: list[Layer] = []
    for name, child in model.named_children():
        kind = type(child)
        if kind is nn.Linear:
            bias = f"{name}.bias" if child.bias is not None else None
            layers.append(("linear", f"{name}.weight", bias))
        elif kind is nn.Flatten and child.start_dim == 1 and child.end_dim == -1:
            layers.append(("flatten",))
        elif kind in ACTIVATIONS and not getattr(child, "inplace", False):
            layers.append(("act", ACTIVATIONS[kind]))
        else:
            return None
    return layers if any(layer[0] == "linear" for layer in layers) else None


def dense_forward(layers: list[Layer], params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Outputs ``[K, batch, ...]`` of the K stacked networks for one shared input batch."""
    k = next(params[layer[1]].shape[0] for layer in layers if layer[0] == "linear")
    h = x.unsqueeze(0).expand(k, *x.shape)
    for layer in layers:
        if layer[0] == "flatten":
            h = h.reshape(k, h.shape[1], -1)
        elif layer[0] == "act":
            h = layer[1](h)
        else:
            weight = params[layer[1]].transpose(1, 2)
            if h.ndim != 3:  # a Linear on more than one trailing dimension: vmap's case
                raise ValueError("stacked dense layers take [batch, features] inputs")
            if layer[2] is None:
                h = torch.bmm(h, weight)
            else:
                h = torch.baddbmm(params[layer[2]].unsqueeze(1), h, weight)
    return h
