"""benchmarks/row_comparisons.py: the docs' extra comparisons from a CSV's per-seed block."""

import csv
import io
import math
import subprocess
import sys
from pathlib import Path

from evomal.report.tables import csv_table, method_rows

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "row_comparisons.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from row_comparisons import compare_pairs, per_seed_values  # noqa: E402


def _records():
    ce = [0.30, 0.32, 0.29, None, 0.31]
    es = [0.28, 0.33, 0.27, 0.30, 0.30]
    ml3 = [0.25, 0.35, 0.26, 0.29, 0.33]
    out = []
    for s in range(5):
        out.append({"method": "zoo", "seed": s, "test_metric": 0.26 + 0.01 * s, "rows": [
            {"row": "ce", "label": "ce", "test_metric": ce[s], "val_metric": 0.5},
            {"row": "ce_es", "label": "ce_es", "test_metric": es[s], "val_metric": 0.4},
        ]})  # fmt: skip
        out.append({"method": "ml3", "seed": s, "test_metric": 0.27, "learned": False,
                    "rows": [{"row": "best_learned", "test_metric": ml3[s]}]})  # fmt: skip
    return out


def test_a_pair_the_table_also_tests_gives_the_tables_numbers(tmp_path):
    """Oracle: ml3's best finalist against tuned CE is in the table's summary block; the
    script, reading only the per-seed block, must give the same pairs, difference and p.
    Holm then runs over the pairs asked for, checked by hand."""
    records = _records()
    path = tmp_path / "results.csv"
    path.write_text(csv_table(records, method_rows(records)))
    summary = {}
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = next(r for r in rows if r[:2] == ["row", "label"])
    for line in rows[rows.index(header) + 1 :]:
        if not line:
            break
        if len(line) > 6:
            entry = dict(zip(header, line, strict=False))
            summary[(entry["row"], entry["comparator"])] = entry
    pairs = [("ml3/best_learned", "zoo/tuned_ce"), ("zoo/ce", "zoo/ce_es")]
    got = compare_pairs(per_seed_values(path), pairs)
    for entry in got:
        table = (
            summary[(entry["row"], entry["other"])] if entry["other"] == "zoo/tuned_ce" else None
        )
        if table is not None:
            assert entry["seeds"] == int(table["pairs"])
            assert math.isclose(entry["difference"], float(table["mean_difference"]))
            assert math.isclose(entry["p"], float(table["paired_p"]))
    assert got[1]["seeds"] == 4  # seed 3 diverged for plain CE
    p1, p2 = got[0]["p"], got[1]["p"]
    low, high = sorted([p1, p2])
    by_hand = {low: min(1.0, 2 * low), high: max(min(1.0, 2 * low), min(1.0, high))}
    assert [e["holm_p"] for e in got] == [by_hand[p1], by_hand[p2]]


def test_a_csv_without_the_per_seed_block_gets_one_clear_line(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("method,seed,test_metric\nbaseline,0,0.1\n")
    done = subprocess.run([sys.executable, str(SCRIPT), str(path), "a:b"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "no per-(row, seed) block" in done.stderr and "evomal report" in done.stderr
