"""Wall time of whole searches: the quick preset, and the paper preset on MNIST / LeNet-5.

* ``quick``: ``evomal search``'s default (MLP on MNIST-1D), searched to the end.
* ``executors``: the paper preset, screening first, with ``--executor
  process`` (one worker per core, one torch thread each) against the serial
  executor (one process using every core), for ``--generations`` generations.
* ``lenet5``: the mnist_lenet5 preset (population 25, S_meta 250, S_testing 500) on
  MNIST with LeNet-5 for ``--generations`` generations, in two settings run
  one after the other: the paper's (screen after the local search, no
  batching) and evomal's optimised one (screen first, automatic batching).
  The 50-generation time is extrapolated as ``t(generation 0) + 49 x mean
  t(later generations)``: later generations re-use cached results, so this
  estimate is conservative only if their cache-hit rate does not fall.

    python benchmarks/search_cost.py --which quick lenet5 --generations 2
    python benchmarks/search_cost.py --which executors --generations 3 \
        --out benchmarks/results/executors.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from evomal.config import build_config
from evomal.events import CandidateEvent, GenerationEvent
from evomal.search import search
from evomal.tasks import get_task


def timed_search(task_name: str, model: str, preset: str, overrides: list[str]) -> dict[str, Any]:
    task = get_task(task_name, seed=0)
    config = build_config(preset, overrides)
    marks: list[float] = []
    verdicts: list[dict[str, int]] = []
    stage: dict[str, float] = {}

    def listen(event: object) -> None:
        if isinstance(event, GenerationEvent):
            marks.append(time.perf_counter())
            verdicts.append(event.summary["verdicts"])
        elif isinstance(event, CandidateEvent):
            for name, seconds in event.outcome.seconds.items():
                stage[name] = stage.get(name, 0.0) + seconds

    start = time.perf_counter()
    result = search(task, model, config, listener=listen)
    total = time.perf_counter() - start
    per_generation = [b - a for a, b in zip([start, *marks[:-1]], marks, strict=True)]
    return {
        "task": task_name,
        "model": model,
        "preset": preset,
        "overrides": overrides,
        "seconds": round(total, 1),
        "per_generation_seconds": [round(t, 1) for t in per_generation],
        "verdicts_per_generation": verdicts,
        "stage_seconds": {k: round(v, 1) for k, v in stage.items()},
        "best_fitness": result.best_fitness,
        "best_expression": getattr(result.best, "expression", None),
    }


def extrapolate(run: dict[str, Any], generations: int = 50) -> float | None:
    times = run["per_generation_seconds"]
    if len(times) < 2:
        return None
    later = sum(times[1:]) / len(times[1:])
    return times[0] + (generations - 1) * later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--which",
        nargs="+",
        default=["quick", "lenet5"],
        choices=["quick", "lenet5", "executors"],
    )
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--task", default="mnist", help="task for the paper preset")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search_cost.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads()}
    }
    if "quick" in args.which:
        results["quick"] = timed_search("mnist1d", "mlp", "quick", [])
        print(f"quick preset: {results['quick']['seconds']} s")
    if "lenet5" in args.which:
        base = [f"gp.generations={args.generations}"]
        settings = {
            "paper_order_unbatched": [
                *base,
                "filters.screening=after",
                "execution.batch_candidates=1",
            ],
            "screen_first_auto_batching": [
                *base,
                "filters.screening=before",
                "execution.batch_candidates=0",
            ],
        }
        for label, overrides in settings.items():
            run = timed_search(args.task, "lenet5", "mnist_lenet5", overrides)
            run["extrapolated_50_generations_seconds"] = extrapolate(run)
            results[label] = run
            minutes = (run["extrapolated_50_generations_seconds"] or 0) / 60
            print(
                f"{label}: {run['seconds']} s for {args.generations} generations, "
                f"extrapolated to 50: {minutes:.0f} min"
            )
    if "executors" in args.which:
        # Two single-threaded worker processes against one two-threaded process.
        for name in ("process", "serial"):
            overrides = [
                f"gp.generations={args.generations}",
                "filters.screening=before",
                f"execution.executor={name}",
            ]
            run = timed_search(args.task, "lenet5", "mnist_lenet5", overrides)
            results[f"executor_{name}"] = run
            print(f"executor {name}: {run['seconds']} s for {args.generations} generations")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
