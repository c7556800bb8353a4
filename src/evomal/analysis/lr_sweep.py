"""Learning-rate sweep: cross-entropy against learned losses over a grid of base learning rates.

A learned loss can win only because it rescales the gradient, acting as a
different learning rate (paper Section 5, Fig. 11). Training cross-entropy
and the learned loss at every learning rate of a grid, over several seeds,
with the meta-testing schedule, separates the two: the comparison that
counts is each loss at its own best learning rate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evomal.analysis.cells import LossSpec, Progress, format_spread, mean_std, run_grid
from evomal.config import SearchConfig, replace_config
from evomal.errors import ConfigError
from evomal.files import write_json_atomic, write_text_atomic
from evomal.methods.meta_test import meta_test
from evomal.tasks.models.source import ModelLike
from evomal.tasks.task import Task

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class SweepPoint:
    loss: str
    lr: float
    values: tuple[float | None, ...]  # test metric per seed (None: diverged)
    mean: float | None
    std: float | None
    diverged: int


def parse_lrs(text: str) -> list[float]:
    """``0.01,0.03,0.1`` -> floats, positive and distinct, in increasing order."""
    try:
        lrs = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--lrs takes comma-separated numbers, got {text!r}") from None
    if not lrs or lrs[0] <= 0:
        raise ConfigError(f"--lrs needs positive learning rates, got {text!r}")
    return lrs


def lr_sweep(
    losses: Sequence[LossSpec],
    task_for_seed: Any,  # seed -> Task (the validation split follows the seed)
    model: ModelLike,
    config: SearchConfig,
    lrs: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    progress: Progress | None = None,
) -> list[SweepPoint]:
    """Train every loss at every learning rate from every seed; write the results to ``out``."""
    say = progress or (lambda message: None)

    def cell(spec: LossSpec, task: Task, lr: float, seed: int) -> dict[str, Any]:
        trained = replace_config(config, meta_test={"optimizer": {"lr": lr}})
        return _train(spec, task, model, trained, seed, say)

    settings = [(f"lr-{lr:g}", lr) for lr in lrs]
    grid = run_grid(out, losses, settings, seeds, task_for_seed, cell)
    points = []
    for spec in losses:
        for key, lr in settings:
            values = [record["test_metric"] for record in grid[(spec.label, key)]]
            mean, std, diverged = mean_std(values)
            points.append(SweepPoint(spec.label, lr, tuple(values), mean, std, diverged))
    _write(Path(out), points, config, seeds)
    return points


def _train(
    spec: LossSpec, task: Task, model: ModelLike, config: SearchConfig, seed: int, say: Progress
) -> dict[str, Any]:
    lr = config.meta_test.optimizer.lr
    say(f"{spec.label}: lr {lr:g}, seed {seed}")
    result = meta_test(spec.loss, task, model, config, seed=seed)
    return {
        "lr": lr,
        "test_metric": None if result.diverged else result.test_metric,
        "val_metric": None if result.diverged else result.val_metric,
        "diverged": result.diverged,
        "reason": result.reason,
        "seconds": round(result.seconds, 2),
    }


def best_per_loss(points: Sequence[SweepPoint]) -> dict[str, SweepPoint]:
    """Each loss at its own best learning rate (lowest mean test metric)."""
    best: dict[str, SweepPoint] = {}
    for point in points:
        if point.mean is None:
            continue
        if point.loss not in best or point.mean < best[point.loss].mean:  # type: ignore[operator]
            best[point.loss] = point
    return best


def _write(
    out: Path, points: Sequence[SweepPoint], config: SearchConfig, seeds: Sequence[int]
) -> None:
    losses = list(dict.fromkeys(p.loss for p in points))
    lrs = sorted({p.lr for p in points})
    header = ["loss", *(f"lr {lr:g}" for lr in lrs)]
    rows = []
    for loss in losses:
        cells = []
        for lr in lrs:
            point = next(p for p in points if p.loss == loss and p.lr == lr)
            text = format_spread(point.mean, point.std)
            if point.diverged and point.mean is not None:
                text += f" ({point.diverged} diverged)"
            cells.append(text)
        rows.append([loss, *cells])
    best = best_per_loss(points)
    lines = [
        f"Test metric after {config.meta_test.steps} steps, mean ± std over seeds "
        f"{list(seeds)}; each loss at every base learning rate.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Each loss at its own best learning rate:",
        "",
        *(f"* {loss}: lr {p.lr:g}, {format_spread(p.mean, p.std)}" for loss, p in best.items()),
        "",
    ]
    write_text_atomic(out / "lr_sweep.md", "\n".join(lines))
    write_json_atomic(
        out / "lr_sweep.json",
        {
            "steps": config.meta_test.steps,
            "seeds": list(seeds),
            "points": [p.__dict__ | {"values": list(p.values)} for p in points],
            "best": {loss: {"lr": p.lr, "mean": p.mean, "std": p.std} for loss, p in best.items()},
        },
    )
    _plot(out / "lr_sweep.png", points)


def _plot(path: Path, points: Sequence[SweepPoint]) -> None:
    sweep_figure(points).savefig(path, dpi=110, bbox_inches="tight")


def sweep_figure(points: Sequence[SweepPoint]) -> Figure:
    """The sweep as a matplotlib ``Figure``: test metric against learning rate, one line per loss.

    The metric axis is logarithmic when every plotted mean is positive: a
    diverged learning rate (error rate 0.8) next to converged ones
    (0.008-0.04) would otherwise flatten the differences the sweep exists to
    show.
    """
    from matplotlib.figure import Figure  # imported here: the sweep itself needs no matplotlib

    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    for loss in dict.fromkeys(p.loss for p in points):
        mine = [p for p in points if p.loss == loss and p.mean is not None]
        reference = loss in ("cross-entropy", "MSE")
        axis.errorbar(
            [p.lr for p in mine],
            [p.mean or 0.0 for p in mine],
            yerr=[p.std or 0.0 for p in mine],
            marker="o",
            capsize=3,
            label=loss,
            linestyle="--" if reference else "-",
            color="blue" if reference else None,
        )
    axis.set_xscale("log")
    means = [p.mean for p in points if p.mean is not None]
    if means and min(means) > 0:
        axis.set_yscale("log")
    axis.set_xlabel("base learning rate")
    axis.set_ylabel("test metric (mean ± std over seeds)")
    axis.set_title("Learning-rate sweep (paper Fig. 11)")
    axis.legend(fontsize=8)
    return fig
