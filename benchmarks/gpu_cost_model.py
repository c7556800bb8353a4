"""GPU cost model: per-stage times for 1, 8 and 32 candidates at once, and the paper-budget
MNIST/LeNet-5 search predicted from them (and, with ``--search``, measured).

    python benchmarks/gpu_cost_model.py --device cuda            # stages and the prediction
    python benchmarks/gpu_cost_model.py --device cuda --search   # ... and the real search, timed

Each stage runs on an MNIST-shaped task (12,000 random 28x28 images, so no
data is needed) with LeNet-5 and the ``mnist_lenet5`` preset, for K
candidate trees at once (population batching, one :class:`PopulationProgram`
for the K trees), briefly, and is scaled to its full length:

* **screen**: the rejection protocol, ``filters.rejection_steps`` Adam steps
  on the probe (timed over ``--screen-steps``);
* **local search**: ``local_search.steps`` meta steps (timed over ``--meta-steps``);
* **fitness**: ``fitness.steps`` SGD steps (timed over ``--fitness-steps``);
* **finalist**: the ``meta_test.steps`` schedule of one selection finalist.

The prediction multiplies these by the work of a paper-budget search: how
many candidates are screened, local-searched and trained for fitness per
generation, and the ``selection.k + 1`` finalists. The defaults are the
counts of the measured seed-0 run of today's ``mnist_lenet5`` preset on the
CPU (``runs/paper_cost_both`` in docs/performance.md: 50 generations, 623
screens before and after the local search, 189 local searches, 182 fitness
runs); pass ``--screened``/``--searched``/``--fitted`` for another run.
Each generation's candidates are batched K at a time with K the largest
measured size not above the generation's count.

``--search`` then runs ``evomal search --task mnist --model lenet5 --preset
mnist_lenet5`` on the device (MNIST must be in the data directory; see the
README) and prints its wall time beside the prediction. Run on a CPU, the
same script checks the model against the CPU timings in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _common import mnist_shaped
from evomal.config import build_config
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.gp.filters import rejection_traces
from evomal.losses import LearnedLoss
from evomal.meta.population_search import optimise_phi_population
from evomal.methods.stages import search_kwargs
from evomal.symbolic import compile_tree
from evomal.training.population import train_population
from screen_cost import random_generation


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_stages(ctx: EvaluationContext, k: int, args: argparse.Namespace) -> dict[str, float]:
    """Seconds for K candidates at once, per stage, scaled to the stage's full length."""
    config = ctx.config
    device = config.execution.device
    trees = random_generation(k, 1)
    losses = [compile_tree(t) for t in trees]
    phis = [torch.ones(loss.n_weights, device=ctx.tasks[0].device) for loss in losses]
    learner = ctx.learners[0]
    out: dict[str, float] = {}

    def timed(name: str, fn: Any, done: int, full: int) -> None:
        fn()  # warm-up (allocator, kernels, compiled graphs)
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        out[name] = (time.perf_counter() - start) * full / done

    filters = config.filters
    timed(
        "screen",
        lambda: rejection_traces(
            losses, phis, ctx.probes[0], args.screen_steps, filters.rejection_lr
        ),
        args.screen_steps,
        filters.rejection_steps,
    )
    kwargs = {**search_kwargs(ctx), "steps": args.meta_steps}
    timed(
        "local_search",
        lambda: optimise_phi_population(losses, phis, [learner], **kwargs),
        args.meta_steps,
        config.local_search.steps,
    )
    criteria = [
        LearnedLoss(t, [1.0] * loss.n_weights) for t, loss in zip(trees, losses, strict=True)
    ]

    def train(steps: int, optimizer: Any, batch: int) -> None:
        models = [learner.build(0) for _ in criteria]
        train_population(models, criteria, learner.task, steps, optimizer, batch_size=batch,
                         seed=0, evaluate_val=False)  # fmt: skip

    timed("fitness", lambda: train(args.fitness_steps, ctx.sgd, config.fitness.batch_size),
          args.fitness_steps, config.fitness.steps)  # fmt: skip
    mt = config.meta_test
    timed("finalist", lambda: train(args.fitness_steps, mt.optimizer, mt.batch_size),
          args.fitness_steps, config.selection_steps)  # fmt: skip
    return out


def predict(
    stages: dict[int, dict[str, float]], args: argparse.Namespace, config: Any
) -> dict[str, float]:
    """Minutes of a paper-budget search from the per-stage times of K candidates at once."""
    sizes = sorted(stages)

    def batch_seconds(stage: str, n: float) -> float:
        """n candidates of one generation, in batches of the largest measured K <= n."""
        if n <= 0:
            return 0.0
        k = max([s for s in sizes if s <= max(1.0, n)] or [1])
        return math.ceil(n / k) * stages[k][stage]

    generations = config.gp.generations
    screened = args.screened / generations
    screen = generations * batch_seconds("screen", screened)
    local = generations * batch_seconds("local_search", args.searched / generations)
    fit = generations * batch_seconds("fitness", args.fitted / generations)
    finalists = config.selection.k + 1
    selection = (
        batch_seconds("finalist", finalists)
        if args.batch_finalists
        else (finalists * stages[1]["finalist"])
    )
    parts = {"screen": screen, "local_search": local, "fitness": fit, "selection": selection}
    return {name: seconds / 60 for name, seconds in parts.items()} | {
        "total": sum(parts.values()) / 60
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--screen-steps", type=int, default=100)
    parser.add_argument("--meta-steps", type=int, default=10)
    parser.add_argument("--fitness-steps", type=int, default=50)
    parser.add_argument("--screened", type=float, default=623, help="screens run")
    parser.add_argument("--searched", type=float, default=189, help="local searches run")
    parser.add_argument("--fitted", type=float, default=182, help="fitness runs")
    parser.add_argument("--batch-finalists", action="store_true",
                        help="predict the selection finalists trained together")  # fmt: skip
    parser.add_argument("--search", action="store_true", help="also run and time the real search")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_cost_model.json"))
    args = parser.parse_args()
    config = build_config("mnist_lenet5", [f"execution.device={args.device}"])
    ctx = EvaluationContext(ContextSpec((mnist_shaped().without_test(),), "lenet5", config))
    stages = {k: time_stages(ctx, k, args) for k in args.k}
    print(f"device {args.device}, torch {torch.__version__}; seconds for K candidates at once")
    print(f"{'K':>4}{'screen':>10}{'local search':>14}{'fitness':>10}{'finalist':>10}")
    for k, t in stages.items():
        print(f"{k:>4}{t['screen']:>10.2f}{t['local_search']:>14.2f}{t['fitness']:>10.2f}"
              f"{t['finalist']:>10.2f}")  # fmt: skip
    predicted = predict(stages, args, config)
    print("predicted paper-budget search (minutes): "
          + ", ".join(f"{k} {v:.1f}" for k, v in predicted.items()))  # fmt: skip
    result: dict[str, Any] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "stages_seconds": stages,
        "workload": {"screened": args.screened, "searched": args.searched, "fitted": args.fitted},
        "predicted_minutes": predicted,
    }
    if args.search:
        command = [sys.executable, "-m", "evomal.cli", "search", "--task", "mnist", "--model",
                   "lenet5", "--preset", "mnist_lenet5", "--device", args.device,
                   "--no-meta-test"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True)
        result["measured_minutes"] = (time.perf_counter() - start) / 60
        print(f"measured: {result['measured_minutes']:.1f} min against predicted "
              f"{predicted['total']:.1f} min")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
