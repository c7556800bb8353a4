"""results.csv carries every row's per-seed values, so every comparison in the table can be
recomputed from the CSV alone. Oracle: scipy's paired t-test and a hand-written Holm
step-down on the per-seed block give the summary block's numbers."""

import csv
import io
import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evomal.report.tables import csv_table, method_rows

SEEDS = range(5)
value = st.one_of(st.none(), st.integers(0, 1000).map(lambda k: k / 1000))
per_seed = st.lists(value, min_size=5, max_size=5)


def _records(zoo, ce, ce_es, ml3, ml3_best, schedule, vals):
    records = []
    for s in SEEDS:
        records.append({"method": "zoo", "seed": s, "test_metric": zoo[s], "rows": [
            {"row": "ce", "label": "ce", "test_metric": ce[s], "val_metric": vals[s]},
            {"row": "ce_es", "label": "ce_es", "test_metric": ce_es[s], "val_metric": 0.5},
        ]})  # fmt: skip
        records.append({"method": "ml3", "seed": s, "test_metric": ml3[s], "learned": True,
                        "rows": [{"row": "best_learned", "test_metric": ml3_best[s]}]})  # fmt: skip
        records.append({"method": "hypergrad", "seed": s, "test_metric": zoo[s],
                        "rows": [{"row": "best_learned", "test_metric": schedule[s]}]})  # fmt: skip
    return records


def _blocks(text):
    """The CSV's blocks (split at its empty lines), each as dicts under its own header."""
    blocks: list[list[list[str]]] = [[]]
    for line in csv.reader(io.StringIO(text)):
        if line:
            blocks[-1].append(line)
        else:
            blocks.append([])
    assert len(blocks) == 3, "per (method, seed), summary, per (row, seed)"
    # a summary line without comparisons stops after its own columns
    return [[dict(zip(b[0], line + [""] * (len(b[0]) - len(line)), strict=True))
             for line in b[1:]] for b in blocks]  # fmt: skip


def _holm(ps):
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def _num(text):
    return None if text in ("", "None") else float(text)


@settings(max_examples=40, deadline=None)
@given(per_seed, per_seed, per_seed, per_seed, per_seed, per_seed,
       st.lists(st.integers(0, 1000).map(lambda k: k / 1000), min_size=5, max_size=5))  # fmt: skip
def test_every_comparison_recomputes_from_the_per_seed_block(
    zoo, ce, ce_es, ml3, ml3_best, schedule, vals
):
    _, summary, seeds = _blocks(csv_table(*(lambda r: (r, method_rows(r)))(
        _records(zoo, ce, ce_es, ml3, ml3_best, schedule, vals))))  # fmt: skip
    values = {}
    for line in seeds:
        values.setdefault(line["row"], {})[int(line["seed"])] = _num(line["test_metric"])

    def ok(v):
        return v is not None and math.isfinite(v)

    tested = [line for line in summary if line["comparator"]]
    assert tested, "the table compares rows with tuned CE, the zoo pick and the schedule"
    p_values = []
    for line in tested:
        mine, theirs = values[line["row"]], values[line["comparator"]]
        pairs = [(mine[s], theirs[s]) for s in mine if s in theirs and ok(mine[s])
                 and ok(theirs[s])]  # fmt: skip
        assert int(line["pairs"]) == len(pairs)
        finite = [v for v in mine.values() if ok(v)]
        if finite:
            assert math.isclose(_num(line["mean"]), statistics.fmean(finite), rel_tol=1e-9)
        else:
            assert _num(line["mean"]) is None
        diffs = [a - b for a, b in pairs]
        expected_p = None
        if len(pairs) >= 2 and all(d == 0 for d in diffs):
            expected_p = 1.0
        elif len(pairs) >= 2 and statistics.pvariance(diffs) > 0:
            expected_p = float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
        got = _num(line["paired_p"])
        if expected_p is None:
            assert got is None or math.isnan(got)
        else:
            assert math.isclose(got, expected_p, rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(_num(line["mean_difference"]), statistics.fmean(diffs),
                                rel_tol=1e-9, abs_tol=1e-12)  # fmt: skip
        p_values.append((line, got))
    # Holm over every comparison of the table; one without a p (under 2 pairs) counts as 1
    usable = [(line, 1.0 if p is None or math.isnan(p) else p) for line, p in p_values]
    for (line, _), holm_p in zip(usable, _holm([p for _, p in usable]), strict=True):
        assert math.isclose(_num(line["holm_p"]), holm_p, rel_tol=1e-9, abs_tol=1e-12)


def test_the_per_seed_block_gives_each_rows_seeds_lr_factors_and_what_was_returned():
    records = [
        {"method": "ml3", "seed": s, "test_metric": 0.1 * (s + 1), "lr_factor": 3.0,
         "learned": s == 0, "baseline": None if s == 0 else "mae", "expression": "x"}
        for s in (0, 1)
    ]  # fmt: skip
    _, _, seeds = _blocks(csv_table(records, method_rows(records)))
    assert [(r["row"], r["seed"], r["test_metric"], r["lr_factor"]) for r in seeds] == [
        ("ml3", "0", "0.1", "3.0"),
        ("ml3", "1", "0.2", "3.0"),
    ]
    assert seeds[0]["returned_as"] == "learned"
