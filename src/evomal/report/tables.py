"""Table 2-style results: mean +- std of the test metric per method, Welch's t-test vs baseline.

Built from the ``meta_test.json`` records of an experiment directory. The
t-test is Welch's (unequal variances, ``scipy.stats.ttest_ind(...,
equal_var=False)``) of each method's per-seed test metrics against the
baseline's; with fewer than two finite values on either side, or zero
variance on both, there is no test and the cell says so. Every method and
the baseline share initial conditions per seed, so the table also counts the
seeds on which a method ended worse than the baseline of the same seed, and
the seeds on which the selection stage handed back the task loss itself.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from evomal.methods.registry import METHODS, REGISTRY

METHOD_ORDER = METHODS
METHOD_LABELS = {name: spec.label for name, spec in REGISTRY.items()}


@dataclass(frozen=True)
class MethodRow:
    method: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    diverged: int
    mean: float | None
    std: float | None
    t_statistic: float | None
    p_value: float | None
    mean_work_seconds: float | None
    worse_than_baseline: int | None = None
    task_loss_returned: int = 0


def _welch(values: Sequence[float], baseline: Sequence[float]) -> tuple[float | None, float | None]:
    if len(values) < 2 or len(baseline) < 2:
        return None, None
    if statistics.pvariance(values) == 0 and statistics.pvariance(baseline) == 0:
        return None, None
    with warnings.catch_warnings():
        # near-identical samples: scipy warns about precision; the p-value is still reported
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(values, baseline, equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    return (t if math.isfinite(t) else None), (p if math.isfinite(p) else None)


def _work_seconds(record: dict[str, Any]) -> float | None:
    """The search's candidate work plus its selection (``work_seconds``, which survives
    resumes); the wall time of the search call for records from before it existed."""
    value = record.get("work_seconds", record.get("search_seconds"))
    return None if value is None else float(value)


def method_rows(records: Sequence[dict[str, Any]]) -> list[MethodRow]:
    """One row per method, in the paper's column order."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_method.setdefault(record["method"], []).append(record)
    order = [m for m in METHOD_ORDER if m in by_method] + sorted(set(by_method) - set(METHOD_ORDER))
    baseline = [
        r["test_metric"] for r in by_method.get("baseline", []) if r.get("test_metric") is not None
    ]
    baseline_by_seed = {
        r["seed"]: r["test_metric"]
        for r in by_method.get("baseline", [])
        if r.get("test_metric") is not None
    }
    rows = []
    for method in order:
        cells = sorted(by_method[method], key=lambda r: r["seed"])
        values = [r["test_metric"] for r in cells if r.get("test_metric") is not None]
        finite = [v for v in values if math.isfinite(v)]
        t, p = _welch(finite, baseline) if method != "baseline" else (None, None)
        searches = [s for s in map(_work_seconds, cells) if s is not None]
        paired = [
            (r.get("test_metric"), baseline_by_seed[r["seed"]])
            for r in cells
            if r["seed"] in baseline_by_seed
        ]
        worse = None
        if method != "baseline" and paired:
            worse = sum(1 for value, base in paired if value is None or value > base)
        rows.append(
            MethodRow(
                method,
                tuple(r["seed"] for r in cells),
                tuple(finite),
                len(cells) - len(finite),
                statistics.mean(finite) if finite else None,
                statistics.stdev(finite) if len(finite) > 1 else None,
                t,
                p,
                statistics.mean(searches) if searches else None,
                worse,
                sum(1 for r in cells if r.get("task_loss")) if method != "baseline" else 0,
            )
        )
    return rows


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_cells(
    rows: Sequence[MethodRow], metric: str = "test error rate"
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table: method, n, mean +- std, Welch t and p, time."""
    header = [
        "method",
        "seeds",
        f"{metric} (mean ± std)",
        "Welch t vs baseline",
        "p",
        "seeds worse than baseline",
        "task loss returned",
        "search + selection work (s)",
    ]
    cells = []
    for row in rows:
        spread = f"{_fmt(row.mean)} ± {_fmt(row.std)}" if row.mean is not None else "-"
        if row.diverged:
            spread += f" ({row.diverged} diverged)"
        baseline = row.method == "baseline"
        cells.append(
            [
                METHOD_LABELS.get(row.method, row.method),
                str(len(row.seeds)),
                spread,
                "-" if baseline else _fmt(row.t_statistic, 2),
                "-" if baseline else _fmt(row.p_value, 3),
                "-" if row.worse_than_baseline is None else str(row.worse_than_baseline),
                "-" if baseline else str(row.task_loss_returned),
                _fmt(row.mean_work_seconds, 0),
            ]
        )
    return header, cells


def markdown_table(rows: Sequence[MethodRow], metric: str = "test error rate") -> str:
    """The results table (:func:`table_cells`) in Markdown."""
    header, cells = table_cells(rows, metric)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def csv_table(records: Sequence[dict[str, Any]], rows: Sequence[MethodRow]) -> str:
    """CSV with one line per (method, seed) and one summary line per method."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "method",
            "seed",
            "test_metric",
            "best_fitness",
            "work_seconds",
            "task_loss",
            "expression",
        ]
    )
    for r in sorted(records, key=lambda r: (r["method"], r["seed"])):
        writer.writerow(
            [
                r["method"],
                r["seed"],
                r.get("test_metric"),
                r.get("best_fitness"),
                _work_seconds(r),
                r.get("task_loss"),
                r.get("expression"),
            ]
        )
    writer.writerow([])
    writer.writerow(["method", "n", "mean", "std", "welch_t", "welch_p", "mean_work_seconds"])
    for row in rows:
        writer.writerow(
            [
                row.method,
                len(row.values),
                row.mean,
                row.std,
                row.t_statistic,
                row.p_value,
                row.mean_work_seconds,
            ]
        )
    return out.getvalue()
