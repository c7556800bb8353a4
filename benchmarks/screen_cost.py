"""The rejection protocol run to convergence, batched over a generation, against a full
LeNet-5 evaluation (issue 10 asks for at most 10%).

A generation's worth of random trees (ramped half-and-half, heights 2-4,
repaired) is screened on a LeNet-5 probe (100 MNIST-shaped samples, 10
classes) for ``--steps`` Adam steps, stacked as in a search, and one by one.
A full evaluation is one candidate's local search (S_meta 250 through one
unrolled step) plus its fitness (S_testing 500 steps) on LeNet-5 at the
paper's batch size. The two are timed alternately in one process; the table
reports medians over ``--repeats`` rounds and the ratio of the per-candidate
screen to the full evaluation.

    python benchmarks/screen_cost.py --out benchmarks/results/screen_cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from _common import mnist_shaped
from evomal.config import GPConfig, build_config
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.gp.filters import rejection_traces
from evomal.gp.operators import repair
from evomal.losses import LearnedLoss
from evomal.methods.stages import FitnessJob, SearchJob, fitness, optimise
from evomal.symbolic import compile_tree, gen_half_and_half
from evomal.symbolic.primitives import PrimitiveSet

TREE = "sub(mul(-1, mul(y, log(fx))), mul(fx, square(sub(fx, y))))"


def random_generation(size: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    config = GPConfig()
    pset = PrimitiveSet(tuple(config.functions), tuple(config.terminals))
    return [str(repair(rng, gen_half_and_half(rng, 2, 4, pset), pset)) for _ in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/screen_cost.json"))
    args = parser.parse_args()
    config = build_config("mnist_lenet5", [f"filters.rejection_steps={args.steps}"])
    ctx = EvaluationContext(ContextSpec((mnist_shaped().without_test(),), "lenet5", config))
    probe = ctx.probes[0]
    trees = random_generation(args.population, 0)
    losses = [compile_tree(t) for t in trees]
    phis = [torch.ones(loss.n_weights) for loss in losses]
    timings: dict[str, list[float]] = {"batched": [], "one_by_one": [], "full": []}
    for r in range(args.repeats + 1):
        start = time.perf_counter()
        rejection_traces(losses, phis, probe, args.steps, config.filters.rejection_lr)
        batched = (time.perf_counter() - start) / len(losses)
        start = time.perf_counter()
        for loss, phi in zip(losses[:5], phis[:5], strict=True):
            rejection_traces([loss], [phi], probe, args.steps, config.filters.rejection_lr)
        alone = (time.perf_counter() - start) / 5
        start = time.perf_counter()
        searched = optimise(ctx, SearchJob(TREE, tuple([1.0] * compile_tree(TREE).n_weights)))
        fitness(ctx, FitnessJob(LearnedLoss(TREE, searched.phi).to_dict()))
        full = time.perf_counter() - start
        if r > 0:  # round 0 warms up
            timings["batched"].append(batched)
            timings["one_by_one"].append(alone)
            timings["full"].append(full)
    med = {k: statistics.median(v) for k, v in timings.items()}
    result = {
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads()},
        "population": args.population,
        "rejection_steps": args.steps,
        "seconds_per_candidate": {k: round(v, 4) for k, v in med.items()},
        "rounds": {k: [round(x, 4) for x in v] for k, v in timings.items()},
        "batched_screen_over_full_evaluation": round(med["batched"] / med["full"], 4),
        "one_by_one_screen_over_full_evaluation": round(med["one_by_one"] / med["full"], 4),
    }
    print(
        f"screen, {args.steps} steps, batched over {args.population}: "
        f"{med['batched']:.3f} s per candidate; one by one: {med['one_by_one']:.3f} s; "
        f"full LeNet-5 evaluation: {med['full']:.2f} s; "
        f"ratio {result['batched_screen_over_full_evaluation']:.3f} (target <= 0.10)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
