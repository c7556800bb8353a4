"""Filter-normalised 2-D loss landscapes (Li et al., NeurIPS 2018; paper Figs. 9-10).

A model is trained with a loss (the meta-testing schedule); the loss is then
evaluated on a plane through the trained parameters, spanned by two random
directions. Each direction is *filter-normalised*: every filter (a slice of
a weight tensor along its first dimension: an output channel or an output
unit) is rescaled to the norm of the same filter of the trained weights, and
one-dimensional parameters (biases, BatchNorm) get no component, as in Li et
al. This removes the scale invariance that would otherwise make sharp and
flat minima incomparable. Cross-entropy and a learned loss are drawn side by
side, each on its own model and its own loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from evomal.analysis.cells import LossSpec, Progress
from evomal.config import SearchConfig
from evomal.errors import ConfigError
from evomal.files import write_json_atomic
from evomal.methods.meta_test import meta_test
from evomal.tasks.models.source import ModelLike, resolve_model
from evomal.tasks.task import Task
from evomal.training.loop import resolve_loss

State = dict[str, Tensor]


def filter_normalised_direction(params: State, generator: torch.Generator) -> State:
    """A Gaussian direction, each filter scaled to the norm of the same filter in ``params``."""
    direction = {}
    for name, weight in params.items():
        if weight.dim() <= 1:
            direction[name] = torch.zeros_like(weight)
            continue
        noise = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
        noise = noise.to(weight.device)
        dims = tuple(range(1, weight.dim()))
        norms = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
        scale = norms / torch.linalg.vector_norm(noise, dim=dims, keepdim=True).clamp_min(1e-12)
        direction[name] = noise * scale
    return direction


def surface(
    model: nn.Module,
    loss_fn: Any,
    params: State,
    buffers: State,
    directions: tuple[State, State],
    x: Tensor,
    y: Tensor,
    coordinates: Sequence[float],
) -> Tensor:
    """``loss(params + a d1 + b d2)`` on the grid ``a, b in coordinates`` (rows: b, columns: a)."""
    d1, d2 = directions
    values = torch.empty(len(coordinates), len(coordinates))
    model.eval()
    with torch.no_grad():
        for i, b in enumerate(coordinates):
            for j, a in enumerate(coordinates):
                moved = {k: p + a * d1[k] + b * d2[k] for k, p in params.items()}
                values[i, j] = loss_fn(functional_call(model, (moved, buffers), (x,)), y)
    return values


@dataclass(frozen=True)
class Landscape:
    label: str
    coordinates: list[float]
    values: list[list[float]]
    test_metric: float | None


def landscapes(
    losses: Sequence[LossSpec],
    task: Task,
    model: ModelLike,
    config: SearchConfig,
    *,
    seed: int,
    out: str | os.PathLike[str],
    points: int = 21,
    span: float = 1.0,
    samples: int = 1000,
    progress: Progress | None = None,
) -> list[Landscape]:
    """Train with each loss from ``seed``, then map its landscape; write JSON and a figure."""
    if points < 3:
        raise ConfigError(f"--points must be at least 3, got {points}")
    if span <= 0:
        raise ConfigError(f"--span must be positive, got {span}")
    say = progress or (lambda message: None)
    coordinates = torch.linspace(-span, span, points).tolist()
    x = task.augmentation.eval_batch(task.train.x[:samples])
    y = task.train.y[:samples]
    source = resolve_model(model)
    found = []
    for spec in losses:
        say(f"{spec.label}: training for {config.meta_test.steps} steps (seed {seed})")
        trained = source.build(task.input_shape, task.n_outputs, seed=seed, **config.model_options)
        result = meta_test(spec.loss, task, trained, config, seed=seed)
        params = {k: v.detach() for k, v in trained.named_parameters()}
        buffers = {k: v.detach() for k, v in trained.named_buffers()}
        generator = torch.Generator().manual_seed(seed)
        directions = (
            filter_normalised_direction(params, generator),
            filter_normalised_direction(params, generator),
        )
        say(f"{spec.label}: evaluating the loss on a {points} x {points} grid")
        values = surface(
            trained, resolve_loss(spec.loss, task), params, buffers, directions, x, y, coordinates
        )
        test = None if result.diverged else result.test_metric
        found.append(Landscape(spec.label, coordinates, values.tolist(), test))
    root = Path(out)
    write_json_atomic(
        root / "landscape.json",
        {"seed": seed, "span": span, "points": points, "samples": int(x.shape[0]),
         "landscapes": [ls.__dict__ for ls in found]},
    )  # fmt: skip
    _plot(root / "landscape.png", found)
    return found


def _plot(path: Path, found: Sequence[Landscape]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(found), 4.2))
    axes = fig.subplots(1, len(found), squeeze=False)[0]
    for axis, ls in zip(axes, found, strict=True):
        grid = torch.tensor(ls.values)
        finite = grid[torch.isfinite(grid)]
        levels = 30 if finite.numel() and float(finite.max() - finite.min()) > 0 else 1
        contour = axis.contourf(ls.coordinates, ls.coordinates, grid.numpy(), levels=levels)
        fig.colorbar(contour, ax=axis)
        axis.plot([0], [0], "w+", markersize=10)
        test = "" if ls.test_metric is None else f" (test {ls.test_metric:.4f})"
        axis.set_title(f"{ls.label}{test}", fontsize=9)
        axis.set_xlabel("direction 1")
        axis.set_ylabel("direction 2")
    fig.savefig(path, dpi=110, bbox_inches="tight")
