"""benchmarks/search_work.py counts what a run did from its records."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "search_work.py"


def load_script():
    spec = importlib.util.spec_from_file_location("search_work", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def write_run(root: Path) -> Path:
    run = root / "run"
    run.mkdir()
    config = {
        "local_search": {"steps": 250},
        "fitness": {"steps": 500},
        "meta_test": {"steps": 10000},
        "selection": {"steps": None},
    }
    (run / "config.json").write_text(json.dumps(config))
    events = [
        # evaluated: local search and fitness
        {"seconds": {"screen": 0.2, "local_search": 9.0, "fitness": 6.0}},
        # screened out before its local search
        {"seconds": {"screen": 0.2, "local_search": 0.0, "fitness": 0.0}},
        # rejected after its local search
        {"seconds": {"screen": 0.2, "local_search": 9.0}},
        # answered from the cache
        {"verdict": "cached"},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    selection = {
        "total": 2,
        "finalists": [
            {"seeds": [{"seed": 0}, {"seed": 1, "steps": 4000}]},
            {"seeds": [{"seed": 0}]},
        ],
    }
    (run / "selection.json").write_text(json.dumps(selection))
    return run


def test_counts_only_stages_that_ran_and_prices_them(tmp_path: Path) -> None:
    module = load_script()
    work = module.read_work(write_run(tmp_path))
    assert (work.local_searches, work.fitness_runs) == (2, 1)
    assert work.selection_steps == 10000 + 4000 + 10000
    cost = work.priced(meta_step=0.03, train_step=0.01)
    assert cost["search"] == pytest.approx(2 * 250 * 0.03 + 1 * 500 * 0.01)
    assert cost["selection"] == pytest.approx(24000 * 0.01)
    assert cost["total"] == pytest.approx(cost["search"] + cost["selection"])


def test_prices_come_from_the_lenet5_case_of_a_candidate_cost_record() -> None:
    module = load_script()
    meta_step, train_step = module.unit_prices(module.DEFAULT_PRICES)
    record = json.loads(module.DEFAULT_PRICES.read_text())["after_issue_10"]["cases"][0]
    seconds = record["seconds"]["evomal"]
    assert meta_step == pytest.approx(seconds["local_search"] / record["meta_steps"])
    assert train_step == pytest.approx(seconds["fitness"] / record["fitness_steps"])
