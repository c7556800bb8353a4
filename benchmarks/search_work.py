"""The work a finished (or partial) search did, counted and priced in one set of unit costs.

Wall times taken on different days are not comparable on a shared machine
(docs/performance.md measured the same code 1.2-1.5x slower on one day than
on another). What a search did is: how many local searches and fitness runs
it ran, and how many training steps its final selection took. This script
counts them from a run directory's records (``events.jsonl``,
``selection.json``, ``config.json``) and prices them with the per-step costs
of one ``benchmarks/candidate_cost.py`` run (``--prices``), so that two
searches are compared in the same units.

    python benchmarks/search_work.py runs/paper_cost_both runs/paper_cost_after
    python benchmarks/search_work.py --counts 281 137 0 --label "before issue 10, paper order"

``--counts LS FIT SEL`` prices a search known only by its counts (local
searches, fitness runs, selection steps), e.g. one reported in an older
document. A local search is counted when it ran (a tree screened out before
its local search is not); the screen itself is left out (about 1% of an
evaluation, docs/performance.md). The prices are LeNet-5's, so the totals
mean something only for LeNet-5 searches.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evomal.runs.store import RunStore

DEFAULT_PRICES = Path(__file__).parent / "results" / "candidate_cost_issue10.json"


@dataclass(frozen=True)
class Work:
    """What a search did, in counts that do not depend on the machine."""

    label: str
    local_searches: int
    meta_steps: int
    fitness_runs: int
    fitness_steps: int
    selection_steps: int

    def priced(self, meta_step: float, train_step: float) -> dict[str, float]:
        """Seconds of each part at ``meta_step`` seconds per meta step, ``train_step`` per step."""
        search = self.local_searches * self.meta_steps * meta_step
        search += self.fitness_runs * self.fitness_steps * train_step
        selection = self.selection_steps * train_step
        return {"search": search, "selection": selection, "total": search + selection}


def read_work(run: Path) -> Work:
    """Count the local searches, fitness runs and selection steps recorded in ``run``."""
    config = json.loads((run / "config.json").read_text())
    store = RunStore(run)
    local_searches = fitness_runs = 0
    for event in store.read_events():
        seconds = event.get("seconds") or {}
        local_searches += seconds.get("local_search", 0.0) > 0
        fitness_runs += seconds.get("fitness", 0.0) > 0
    default_steps = config["selection"].get("steps") or config["meta_test"]["steps"]
    selection_steps = sum(
        int(seed.get("steps", default_steps))
        for finalist in store.load_selection()
        for seed in finalist["seeds"]
    )
    return Work(
        str(run),
        local_searches,
        int(config["local_search"]["steps"]),
        fitness_runs,
        int(config["fitness"]["steps"]),
        selection_steps,
    )


def unit_prices(path: Path) -> tuple[float, float]:
    """Seconds per meta step and per training step from a candidate_cost.py record."""
    record: dict[str, Any] = json.loads(path.read_text())
    run = record.get("after_issue_10", record)
    case = next(c for c in run["cases"] if c["case"].startswith("lenet5"))
    seconds = case["seconds"]["evomal"]
    return seconds["local_search"] / case["meta_steps"], seconds["fitness"] / case["fitness_steps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories")
    parser.add_argument("--counts", nargs=3, type=int, metavar=("LS", "FIT", "SEL"))
    parser.add_argument("--label", default="given counts")
    parser.add_argument("--meta-steps", type=int, default=250, help="S_meta for --counts")
    parser.add_argument("--fitness-steps", type=int, default=500, help="S_testing for --counts")
    parser.add_argument("--prices", type=Path, default=DEFAULT_PRICES)
    args = parser.parse_args(argv)
    works = [read_work(run) for run in args.runs]
    if args.counts:
        ls, fit, sel = args.counts
        works.append(Work(args.label, ls, args.meta_steps, fit, args.fitness_steps, sel))
    if not works:
        parser.error("give run directories or --counts")
    meta_step, train_step = unit_prices(args.prices)
    print(f"prices: {meta_step * 1000:.1f} ms per meta step, {train_step * 1000:.1f} ms per step")
    print("| search | local searches | fitness runs | selection steps | search min | total min |")
    print("| --- | --- | --- | --- | --- | --- |")
    for work in works:
        cost = work.priced(meta_step, train_step)
        print(
            f"| {work.label} | {work.local_searches} | {work.fitness_runs} | "
            f"{work.selection_steps} | {cost['search'] / 60:.1f} | {cost['total'] / 60:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
