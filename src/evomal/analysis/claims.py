"""The GLO and TaylorGLO papers' claims, each checked as cross-entropy against learned losses.

* :func:`data_utilisation`: test metric when training on 10, 25, 50 and 100%
  of the training split (a learned loss is claimed to need less data);
* :func:`training_speed`: the steps needed to reach a target validation
  metric, with the learning curves (it is claimed to train faster);
* :func:`robustness`: accuracy under FGSM attacks over a grid of epsilons
  (it is claimed to be more robust).

Every model trains with the meta-testing schedule from the same seed for
every loss; every (loss, setting, seed) is one resumable cell
(:class:`~evomal.analysis.cells.CellStore`). Each writes a JSON summary, a
Markdown table and a figure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evomal.analysis.cells import LossSpec, Progress, format_spread, mean_std, run_grid
from evomal.config import SearchConfig
from evomal.errors import ConfigError
from evomal.files import write_json_atomic, write_text_atomic
from evomal.methods.meta_test import meta_test
from evomal.tasks.models.source import ModelLike, resolve_model
from evomal.tasks.task import Split, Task
from evomal.training.loop import train

TaskForSeed = Callable[[int], Task]


def training_subset(task: Task, fraction: float, seed: int) -> Task:
    """The task with only ``fraction`` of its training split (a seeded random subset)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fractions must be in (0, 1], got {fraction}")
    n = len(task.train)
    keep = max(1, round(fraction * n))
    # the chosen rows in their original order: 100% is the task itself, row for row
    order = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(n)[:keep]))
    order = order.to(task.train.x.device)
    return replace(task, train=Split(task.train.x[order], task.train.y[order]))


def parse_fractions(text: str) -> list[float]:
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or values[0] <= 0 or values[-1] > 1:
        raise ConfigError(f"fractions must be in (0, 1], got {text!r}")
    return values


def parse_epsilons(text: str) -> list[float]:
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--epsilons takes comma-separated numbers, got {text!r}") from None
    if not values or values[0] < 0:
        raise ConfigError(f"epsilons must be >= 0, got {text!r}")
    return values


# -- data utilisation ---------------------------------------------------------------


def _train_on_fraction(
    spec: LossSpec, task: Task, fraction: float, model: ModelLike, config: SearchConfig,
    seed: int, say: Progress,
) -> dict[str, Any]:  # fmt: skip
    say(f"{spec.label}: {fraction:.0%} of the training data, seed {seed}")
    result = meta_test(spec.loss, training_subset(task, fraction, seed), model, config, seed=seed)
    return {
        "fraction": fraction,
        "test_metric": None if result.diverged else result.test_metric,
        "diverged": result.diverged,
    }


def data_utilisation(
    losses: Sequence[LossSpec],
    task_for_seed: TaskForSeed,
    model: ModelLike,
    config: SearchConfig,
    fractions: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    progress: Progress | None = None,
) -> dict[str, dict[float, tuple[float | None, float | None]]]:
    """Test metric (mean, std over seeds) per loss and training-set fraction."""
    say = progress or (lambda message: None)

    def cell(spec: LossSpec, task: Task, fraction: float, seed: int) -> dict[str, Any]:
        return _train_on_fraction(spec, task, fraction, model, config, seed, say)

    settings = [(f"data-{fraction:g}", fraction) for fraction in fractions]
    grid = run_grid(out, losses, settings, seeds, task_for_seed, cell)
    table: dict[str, dict[float, tuple[float | None, float | None]]] = {}
    for spec in losses:
        for key, fraction in settings:
            mean, std, _ = mean_std([r["test_metric"] for r in grid[(spec.label, key)]])
            table.setdefault(spec.label, {})[fraction] = (mean, std)
    _write_grid(Path(out), "data_utilisation", table, "share of the training split",
                "test metric", f"{config.meta_test.steps} steps, seeds {list(seeds)}")  # fmt: skip
    return table


# -- training speed -------------------------------------------------------------------


def _curve(
    spec: LossSpec, task: Task, model: ModelLike, config: SearchConfig, every: int, seed: int,
    say: Progress,
) -> dict[str, Any]:  # fmt: skip
    say(f"{spec.label}: learning curve, seed {seed}")
    result = train(
        model, spec.loss, task, config.meta_test.steps, config.meta_test.optimizer,
        batch_size=config.meta_test.batch_size, seed=seed, device=config.execution.device,
        val_every=every, model_options=dict(config.model_options),
    )  # fmt: skip
    return {
        "curve": [[int(s), float(v)] for s, v in result.val_history],
        "diverged": result.diverged,
    }


def steps_to_reach(curve: Sequence[Sequence[float]], reach: float) -> int | None:
    """The first recorded step whose validation metric is at or below ``reach`` (else None)."""
    for step, value in curve:
        if value <= reach:
            return int(step)
    return None


def training_speed(
    losses: Sequence[LossSpec],
    task_for_seed: TaskForSeed,
    model: ModelLike,
    config: SearchConfig,
    reach: float,
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    every: int = 100,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Per loss: steps to reach ``reach`` per seed, and the mean learning curve."""
    say = progress or (lambda message: None)

    def cell(spec: LossSpec, task: Task, every: int, seed: int) -> dict[str, Any]:
        return _curve(spec, task, model, config, every, seed, say)

    key = f"curve-every-{every}"
    grid = run_grid(out, losses, [(key, every)], seeds, task_for_seed, cell)
    found: dict[str, dict[str, Any]] = {}
    for spec in losses:
        curves = [record["curve"] for record in grid[(spec.label, key)]]
        steps = [steps_to_reach(curve, reach) for curve in curves]
        found[spec.label] = {"steps_to_reach": steps, "curves": curves}
    lines = [
        f"Steps until the validation metric is at or below {reach:g} (checked every {every} "
        f"steps; '-' never within {config.meta_test.steps} steps), seeds {list(seeds)}.",
        "",
        "| loss | " + " | ".join(f"seed {s}" for s in seeds) + " | reached |",
        "| --- | " + " | ".join("---" for _ in seeds) + " | --- |",
    ]
    for label, data in found.items():
        cells = ["-" if s is None else str(s) for s in data["steps_to_reach"]]
        reached = sum(s is not None for s in data["steps_to_reach"])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {reached}/{len(seeds)} |")
    root = Path(out)
    write_text_atomic(root / "training_speed.md", "\n".join(lines) + "\n")
    write_json_atomic(
        root / "training_speed.json", {"reach": reach, "every": every, "losses": found}
    )
    _plot_curves(root / "training_speed.png", found, reach)
    return found


# -- adversarial robustness -----------------------------------------------------------------


def fgsm_accuracy(model: torch.nn.Module, task: Task, epsilons: Sequence[float]) -> list[float]:
    """Test accuracy under FGSM (Goodfellow et al. 2015) at each epsilon.

    The attack perturbs the model's input (after the task's evaluation
    transform) by ``epsilon * sign(grad_x CE)``: the same attack, on the
    cross-entropy of the prediction, for a model trained with any loss.
    """
    test = task.test
    x = task.augmentation.eval_batch(test.x).detach().requires_grad_(True)
    model.eval()
    logits = model(x)
    F.cross_entropy(logits, test.y).backward()
    assert x.grad is not None
    direction = x.grad.sign()
    accuracies = []
    with torch.no_grad():
        for eps in epsilons:
            predicted = model(x + eps * direction).argmax(dim=1)
            accuracies.append(float((predicted == test.y).float().mean()))
    return accuracies


def _attack(
    spec: LossSpec, task: Task, model: ModelLike, config: SearchConfig,
    epsilons: Sequence[float], seed: int, say: Progress,
) -> dict[str, Any]:  # fmt: skip
    say(f"{spec.label}: training then attacking, seed {seed}")
    built = resolve_model(model).build(task.input_shape, task.n_outputs, seed=seed,
                                       **config.model_options)  # fmt: skip
    result = meta_test(spec.loss, task, built, config, seed=seed)
    accuracy = None if result.diverged else fgsm_accuracy(built, task, epsilons)
    return {"epsilons": list(epsilons), "accuracy": accuracy, "diverged": result.diverged}


def robustness(
    losses: Sequence[LossSpec],
    task_for_seed: TaskForSeed,
    model: ModelLike,
    config: SearchConfig,
    epsilons: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    progress: Progress | None = None,
) -> dict[str, dict[float, tuple[float | None, float | None]]]:
    """FGSM test accuracy (mean, std over seeds) per loss and epsilon."""
    say = progress or (lambda message: None)
    if seeds and task_for_seed(seeds[0]).kind != "classification":
        raise ConfigError("FGSM robustness is measured for classification tasks only")

    def cell(spec: LossSpec, task: Task, eps: Sequence[float], seed: int) -> dict[str, Any]:
        return _attack(spec, task, model, config, eps, seed, say)

    key = "fgsm-" + "-".join(f"{e:g}" for e in epsilons)
    grid = run_grid(out, losses, [(key, list(epsilons))], seeds, task_for_seed, cell)
    table: dict[str, dict[float, tuple[float | None, float | None]]] = {}
    for spec in losses:
        runs = [record["accuracy"] for record in grid[(spec.label, key)]]
        for i, eps in enumerate(epsilons):
            mean, std, _ = mean_std([r[i] if r is not None else None for r in runs])
            table.setdefault(spec.label, {})[eps] = (mean, std)
    _write_grid(Path(out), "robustness", table, "FGSM epsilon", "test accuracy",
                f"{config.meta_test.steps} steps, seeds {list(seeds)}")  # fmt: skip
    return table


# -- writing ------------------------------------------------------------------------------------


def _write_grid(
    root: Path, name: str, table: dict[str, dict[float, tuple[float | None, float | None]]],
    x_label: str, y_label: str, note: str,
) -> None:  # fmt: skip
    columns = sorted({x for row in table.values() for x in row})
    lines = [
        f"{y_label} (mean ± std), {note}.",
        "",
        "| loss | " + " | ".join(f"{x:g}" for x in columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for label, row in table.items():
        cells = []
        for x in columns:
            mean, std = row.get(x, (None, None))
            cells.append(format_spread(mean, std))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_text_atomic(root / f"{name}.md", "\n".join(lines) + "\n")
    write_json_atomic(
        root / f"{name}.json",
        {label: {f"{x:g}": list(v) for x, v in row.items()} for label, row in table.items()},
    )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    for label, row in table.items():
        xs = [x for x in columns if row.get(x, (None, None))[0] is not None]
        reference = label in ("cross-entropy", "MSE")
        axis.errorbar(
            xs, [row[x][0] or 0.0 for x in xs], yerr=[row[x][1] or 0.0 for x in xs],
            marker="o", capsize=3, label=label, linestyle="--" if reference else "-",
            color="blue" if reference else None,
        )  # fmt: skip
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.legend(fontsize=8)
    fig.savefig(root / f"{name}.png", dpi=110, bbox_inches="tight")


def _plot_curves(path: Path, found: dict[str, dict[str, Any]], reach: float) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    for label, data in found.items():
        curves = [c for c in data["curves"] if c]
        if not curves:
            continue
        steps = [s for s, _ in curves[0]]
        means = [float(np.mean([c[i][1] for c in curves if i < len(c)])) for i in range(len(steps))]
        reference = label in ("cross-entropy", "MSE")
        axis.plot(steps, means, label=label, linestyle="--" if reference else "-",
                  color="blue" if reference else None)  # fmt: skip
    axis.axhline(reach, color="grey", linewidth=0.8)
    axis.set_xlabel("training step")
    axis.set_ylabel("validation metric (mean over seeds)")
    axis.set_title("Training speed")
    axis.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
