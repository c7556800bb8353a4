"""Does a regression search search? Screen pass rate and distinct trees, per setting.

Runs the ``regression`` preset's search (no final selection: it does not
change what the GP saw) on each task and seed, for each setting given as a
list of ``--set`` overrides, and reports from the run's events:

* the share of the new trees of generations >= 1 that passed the screen
  (evaluated, or reused from a candidate that passed: the equivalence cache or
  gradient equivalence), the screen itself unchanged;
* how many distinct trees (by equivalence key) were evaluated, and how many of
  them are not MSE or another zoo member up to a positive scale, as found or as
  a tree (:func:`evomal.losses.identity.known_equal_document`).

    python benchmarks/regression_search.py --tasks boston diabetes --seeds 0 1 2 \
        --setting "before=gp.keep_minimum=0 gp.seed_losses=auto" \
        --setting "keep_minimum=gp.keep_minimum=0.5 gp.seed_losses=[mse,l1]" \
        --out benchmarks/results/regression_search.json

(``keep_minimum`` is the ``regression`` preset's setting now; ``before`` is what it was.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import write_rows
from evomal.config import build_config
from evomal.events import CACHED, EVALUATED, GRADIENT_EQUIVALENT
from evomal.losses.identity import known_equal_document, known_losses
from evomal.losses.learned import LearnedLoss
from evomal.runs.tasks import task_for
from evomal.search import search

PASSED = (EVALUATED, CACHED, GRADIENT_EQUIVALENT)


def measure(task_name: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    config = build_config(
        "regression", [f"seed={seed}", "selection.k=0", "execution.executor=serial", *overrides]
    )
    task = task_for(task_name, config)
    events: list[Any] = []
    start = time.perf_counter()
    search(task, "mlp", config, listener=events.append)
    seconds = time.perf_counter() - start
    outcomes = [(e.generation, e.outcome) for e in events if hasattr(e, "outcome")]
    later = [o for g, o in outcomes if g >= 1]
    passed = [o for o in later if o.verdict in PASSED and o.fitness is not None]
    evaluated = {}
    for _, o in outcomes:
        if o.verdict == EVALUATED:
            evaluated.setdefault(o.key or o.expression, o)
    known = known_losses("regression", task.n_outputs)
    new = []
    for o in evaluated.values():
        document = LearnedLoss(o.expression, o.phi, "regression", config.gp.output_activation)
        if known_equal_document(document.to_dict(), known, "regression", task.n_outputs) is None:
            new.append(o.expression)
    return {
        "task": task_name,
        "seed": seed,
        "later_trees": len(later),
        "later_passed": len(passed),
        "pass_rate": round(len(passed) / len(later), 3) if later else None,
        "distinct_evaluated": len(evaluated),
        "distinct_not_known": len(new),
        "seconds": round(seconds, 1),
        "not_known": new,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["boston", "diabetes"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--setting", action="append", default=[],
        help="NAME=OVERRIDES (space-separated --set items); repeatable",
    )  # fmt: skip
    default_out = Path("benchmarks/results/regression_search.json")
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    settings = [s.split("=", 1) for s in args.setting or ["today="]]
    rows = []
    for name, overrides in settings:
        for task in args.tasks:
            for seed in args.seeds:
                items = overrides.split()
                row = {"setting": name, "overrides": items, **measure(task, seed, items)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
