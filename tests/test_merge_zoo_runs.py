"""benchmarks/merge_zoo_runs.py: a second zoo run's rows join the first's, or it refuses."""

import importlib.util
from pathlib import Path

import pytest

from evomal.report.tables import method_rows

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "merge_zoo_runs.py"
_spec = importlib.util.spec_from_file_location("merge_zoo_runs", SCRIPT)
assert _spec is not None and _spec.loader is not None
merge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(merge)


def _row(key: str, test: float, val: float) -> dict:
    return {"row": key, "label": key, "test_metric": test, "val_metric": val, "lr_factor": 1.0}


def _zoo(seed: int, pick_val: float, rows: list[dict]) -> dict:
    return {"method": "zoo", "seed": seed, "test_metric": 0.10 + seed / 100, "val_metric": pick_val,
            "baseline": "mae", "metric": "error rate", "rows": rows}  # fmt: skip


def _runs(added_pick_val: float = 0.5, added_ce: float = 0.3) -> tuple[list, list]:
    first = [_zoo(s, 0.4, [_row("ce", 0.3, 0.6), _row("ce_es", 0.25, 0.55), _row("mae", 0.1, 0.4)])
             for s in range(3)]  # fmt: skip
    added = [_zoo(s, added_pick_val, [_row("ce", added_ce, 0.6), _row("brier", 0.2 + s / 50, 0.5)])
             for s in range(3)]  # fmt: skip
    return first, added


def test_the_added_familys_rows_join_each_seed_and_are_tested_against_both_rivals():
    first, added = _runs()
    merged = merge.merge_zoo_rows(first, added)
    keys = [sorted(r["row"] for r in m["rows"]) for m in merged]
    assert keys == [["brier", "ce", "ce_es", "mae"]] * 3
    assert first[0]["rows"][-1]["row"] == "mae"  # the inputs are not changed in place
    rows = {r.key: r for r in method_rows(merged)}
    assert rows["zoo/brier"].per_seed == pytest.approx({0: 0.2, 1: 0.22, 2: 0.24})

    # Holm runs over the merged table: the added row's two tests join the family.
    def tests(records: list) -> list:
        return [c for r in method_rows(records) for c in r.comparisons if c.p_paired is not None]

    assert len(tests(merged)) == len(tests(first)) + 2
    assert {c.comparator for c in tests(merged) if c.row == "zoo/brier"} == {"zoo", "zoo/tuned_ce"}


def test_a_lower_validation_pick_in_the_added_run_is_refused():
    first, added = _runs(added_pick_val=0.39)
    with pytest.raises(SystemExit, match="rerun them rather than merge"):
        merge.merge_zoo_rows(first, added)


def test_a_shared_row_that_differs_is_refused():
    first, added = _runs(added_ce=0.31)
    with pytest.raises(SystemExit, match="not the same setting"):
        merge.merge_zoo_rows(first, added)
