"""What screening candidates before the local search does to run time and final quality.

The paper screens (rejection protocol) after the local search, so a rejected
candidate has already paid for its whole local search. ``filters.screening``
``before`` screens with the initial weights and skips the local search of
candidates that fail; ``both`` screens before and again after. For each
order and seed this runs the same search (quick preset unless overridden),
then meta-tests the best loss and cross-entropy from the same seed.

    python benchmarks/screening_order.py --seeds 0 1 2 --orders after before
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from evomal.config import build_config
from evomal.gp.loop import CandidateEvent
from evomal.methods.meta_test import meta_test
from evomal.search import search
from evomal.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--orders", nargs="+", default=["after", "before", "both"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/screening_order.json"))
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        task = get_task(args.task, seed=seed)
        for order in args.orders:
            config = build_config(
                args.preset, [*args.overrides, f"filters.screening={order}", f"seed={seed}"]
            )
            stage_seconds: dict[str, float] = {}

            def listen(event: object, totals: dict[str, float] = stage_seconds) -> None:
                if isinstance(event, CandidateEvent):
                    for stage, value in event.outcome.seconds.items():
                        totals[stage] = totals.get(stage, 0.0) + value

            start = time.perf_counter()
            result = search(task, args.model, config, listener=listen)
            seconds = time.perf_counter() - start
            loss = "task" if result.task_loss else result.best
            learned = meta_test(loss, task, args.model, config, seed=seed) if loss else None
            baseline = meta_test("task", task, args.model, config, seed=seed)
            row = {
                "seed": seed,
                "screening": order,
                "search_seconds": round(seconds, 1),
                "best_fitness": result.best_fitness,
                "best_expression": getattr(result.best, "expression", None),
                "learned_test": learned.test_metric if learned else None,
                "baseline_test": baseline.test_metric,
                "verdicts": result.verdicts,
                "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    print(f"\n{'screening':<10}{'mean s':>9}{'mean fitness':>14}{'mean test':>11}{'CE test':>9}")
    summary = {}
    for order in args.orders:
        mine = [r for r in rows if r["screening"] == order]
        secs = statistics.mean(r["search_seconds"] for r in mine)
        fits = [r["best_fitness"] for r in mine if r["best_fitness"] is not None]
        tests = [r["learned_test"] for r in mine if r["learned_test"] is not None]
        base = statistics.mean(r["baseline_test"] for r in mine)
        summary[order] = {
            "mean_search_seconds": secs,
            "mean_best_fitness": statistics.mean(fits) if fits else None,
            "mean_learned_test": statistics.mean(tests) if tests else None,
            "mean_baseline_test": base,
        }
        fit_text = f"{statistics.mean(fits):.4f}" if fits else "-"
        test_text = f"{statistics.mean(tests):.4f}" if tests else "-"
        print(f"{order:<10}{secs:>9.1f}{fit_text:>14}{test_text:>11}{base:>9.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"args": vars(args) | {"out": str(args.out)}, "runs": rows, "summary": summary},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
