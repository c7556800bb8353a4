"""The zoo's grid batched against one by one: K (loss, parameter, lr factor) cells.

``--method zoo`` and ``selection.baselines=zoo`` train every cell of the zoo's
parameter grid (each multi-parameter family's settings times
``zoo.lr_factors``) for the meta-testing schedule. Many losses with one
architecture is the population case, so the grid trains as one population
(:func:`~evomal.training.population.train_population`, one learning rate per
member through :class:`~evomal.optim.StackedSGD`). This script trains the
same K cells both ways in one process, on MNIST-1D with the MLP (batch 64,
3,000 steps, SGD momentum 0.9 at the ``embedded`` preset's lr 0.05), and
reports the ratio of the one-by-one time to the batched time. Target:
at least 3x at K = 16. It also reports the largest difference between the
two ways' validation errors (float rounding only: same seed, same batches).

    python benchmarks/zoo_batching.py --k 16 32 --out benchmarks/results/zoo_batching.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from evomal.config import build_config
from evomal.losses.zoo import FAMILIES, ZooLoss, default_families
from evomal.runs.tasks import task_for
from evomal.tasks.models.source import resolve_model
from evomal.training import SGDConfig, train
from evomal.training.population import train_population


def grid_cells(k: int, factors: tuple[float, ...]) -> list[tuple[str, tuple[float, ...], float]]:
    """The first ``k`` cells of the default classification grid (multi-parameter families,
    every setting times every factor), repeated if the grid is smaller than ``k``."""
    cells = [
        (name, params, factor)
        for name in default_families("classification")
        if len(FAMILIES[name].grid) > 1
        for params in FAMILIES[name].grid
        for factor in factors
    ]
    return [cells[i % len(cells)] for i in range(k)]


def run(k: int, steps: int, seed: int) -> dict[str, Any]:
    config = build_config("embedded")
    task = task_for("mnist1d", config, seed=seed).without_test()
    optimizer: SGDConfig = config.meta_test.optimizer
    cells = grid_cells(k, config.zoo.lr_factors)
    model = resolve_model("mlp")

    def build() -> torch.nn.Module:
        return model.build(task.input_shape, task.n_outputs, seed=seed)

    def loss(name: str, params: tuple[float, ...]) -> ZooLoss:
        return ZooLoss(name, list(params))

    start = time.perf_counter()
    batched = train_population(
        [build() for _ in cells], [loss(n, p) for n, p, _ in cells], task, steps, optimizer,
        batch_size=config.meta_test.batch_size, seed=seed,
        lr_factors=[f for _, _, f in cells],
    )  # fmt: skip
    batched_seconds = time.perf_counter() - start

    start = time.perf_counter()
    alone = []
    for name, params, factor in cells:
        sgd = SGDConfig(
            lr=optimizer.lr * factor,
            momentum=optimizer.momentum,
            nesterov=optimizer.nesterov,
            weight_decay=optimizer.weight_decay,
        )
        alone.append(train(build(), loss(name, params), task, steps, sgd,
                           batch_size=config.meta_test.batch_size, seed=seed))  # fmt: skip
    alone_seconds = time.perf_counter() - start
    gaps = [
        abs(a.val_metric - b.val_metric)
        for a, b in zip(batched, alone, strict=True)
        if a.val_metric is not None and b.val_metric is not None
    ]
    return {
        "k": k,
        "steps": steps,
        "cells": [[n, list(p), f] for n, p, f in cells],
        "batched_seconds": round(batched_seconds, 2),
        "one_by_one_seconds": round(alone_seconds, 2),
        "ratio": round(alone_seconds / batched_seconds, 3),
        "max_val_difference": max(gaps) if gaps else None,
        "diverged": {
            "batched": sum(r.diverged for r in batched),
            "one_by_one": sum(r.diverged for r in alone),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "runs": [run(k, args.steps, args.seed) for k in args.k],
    }
    for r in results["runs"]:
        print(
            f"K = {r['k']}: one by one {r['one_by_one_seconds']} s, batched "
            f"{r['batched_seconds']} s, ratio {r['ratio']}x (max validation difference "
            f"{r['max_val_difference']})"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
