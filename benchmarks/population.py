"""Population batching: K candidates evaluated together against one by one.

For K candidate trees, times (a) the local search and (b) the fitness
training, once with the batched implementations
(:func:`~evomal.meta.population_search.optimise_phi_population`,
:func:`~evomal.training.population.train_population`) and once one candidate
after another (:func:`~evomal.meta.local_search.optimise_phi`,
:func:`~evomal.training.train`), alternately in the same process, and
reports the throughput ratio (candidates per second, batched / one by one).
Target: at least 3x for MLP-scale tasks.

    python benchmarks/population.py --k 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from _common import mnist_shaped
from evomal.losses import LearnedLoss
from evomal.meta.base_learner import BaseLearner
from evomal.meta.local_search import initial_phi, optimise_phi
from evomal.meta.population_search import optimise_phi_population
from evomal.symbolic import compile_tree
from evomal.tasks import Task, get_task
from evomal.training import SGDConfig, train
from evomal.training.population import train_population
from evomal.training.unrolled_sgd import UnrolledSGD

TREES = [
    "mul(-1, mul(y, log(fx)))",
    "square(sub(fx, y))",
    "abs(sub(fx, y))",
    "sub(square(fx), mul(y, fx))",
    "abs(log(mul(y, fx)))",
    "square(sub(add(fx, fx), y))",
    "mul(-1, mul(y, tanh(fx)))",
    "sub(mul(-1, mul(y, log(fx))), mul(fx, square(sub(fx, y))))",
    "div(square(sub(fx, y)), add(fx, 1))",
    "max(sub(fx, y), mul(y, log(fx)))",
    "sqrt(square(sub(y, fx)))",
    "mul(sub(fx, y), tanh(sub(fx, y)))",
    "add(square(sub(fx, y)), mul(-1, mul(y, log(fx))))",
    "square(mul(sub(fx, y), fx))",
    "abs(mul(y, log(square(fx))))",
    "sub(abs(sub(fx, y)), mul(y, fx))",
]


def population_trees(k: int) -> list[str]:
    """The first k of :data:`TREES`, then random generation-0 trees (seeded) beyond 16."""
    if k <= len(TREES):
        return TREES[:k]
    from screen_cost import random_generation

    return TREES + random_generation(k - len(TREES), 7)


def time_stage(
    task: Task, model: str, k: int, meta_steps: int, fit_steps: int, batch: int, batched: bool
) -> dict[str, float]:
    learner = BaseLearner(task.without_test(), model)
    trees = population_trees(k)
    losses = [compile_tree(t) for t in trees]
    phis = [initial_phi(loss.n_weights, 1e-3, i) for i, loss in enumerate(losses)]
    kw = {
        "steps": meta_steps,
        "base_steps": 1,
        "optimizer": UnrolledSGD.plain(0.01),
        "meta_lr": 1e-3,
        "batch_size": batch,
        "run_seed": 0,
    }
    start = time.perf_counter()
    if batched:
        optimise_phi_population(losses, phis, [learner], **kw)
    else:
        for loss, phi in zip(losses, phis, strict=True):
            optimise_phi(loss, phi, [learner], **kw)
    local = time.perf_counter() - start
    criteria = [LearnedLoss(t, p.tolist()) for t, p in zip(trees, phis, strict=True)]
    config = SGDConfig(lr=0.01, momentum=0.9)
    start = time.perf_counter()
    if batched:
        train_population(
            [learner.build(0) for _ in criteria],
            criteria,
            learner.task,
            fit_steps,
            config,
            batch_size=batch,
            seed=0,
        )
    else:
        for criterion in criteria:
            train(
                learner.build(0),
                criterion,
                learner.task,
                fit_steps,
                config,
                batch_size=batch,
                seed=0,
            )
    return {"local_search": local, "fitness": time.perf_counter() - start}


def run_case(name: str, task: Task, model: str, args: argparse.Namespace, k: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"batched": [], "serial": []}
    for r in range(args.repeats + 1):
        order = (True, False) if r % 2 == 0 else (False, True)
        for batched in order:
            t = time_stage(task, model, k, args.meta_steps, args.fitness_steps, args.batch, batched)
            if r > 0:
                runs["batched" if batched else "serial"].append(t)
    med = {
        w: {s: statistics.median(x[s] for x in runs[w]) for s in ("local_search", "fitness")}
        for w in runs
    }
    return {
        "case": name,
        "k": k,
        "meta_steps": args.meta_steps,
        "fitness_steps": args.fitness_steps,
        "seconds": med,
        # every timed round, in the order run (round 0, the warm-up, is not timed)
        "rounds": runs,
        "speedup": {s: round(med["serial"][s] / med["batched"][s], 2) for s in med["serial"]},
        "speedup_total": round(sum(med["serial"].values()) / sum(med["batched"].values()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--meta-steps", type=int, default=30)
    parser.add_argument("--fitness-steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--case", choices=["mlp", "lenet5", "both"], default="both")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/population.json"))
    args = parser.parse_args()
    cases = []
    for k in args.k:
        if args.case in ("mlp", "both"):
            cases.append(run_case("mlp / digits", get_task("digits"), "mlp", args, k))
        if args.case in ("lenet5", "both"):
            cases.append(run_case("lenet5 / MNIST-shaped", mnist_shaped(), "lenet5", args, k))
    print(f"{'case':<24}{'K':>4}{'local search x':>16}{'fitness x':>11}{'total x':>9}")
    for c in cases:
        print(
            f"{c['case']:<24}{c['k']:>4}{c['speedup']['local_search']:>16}"
            f"{c['speedup']['fitness']:>11}{c['speedup_total']:>9}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    args.out.write_text(json.dumps({"environment": meta, "cases": cases}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
