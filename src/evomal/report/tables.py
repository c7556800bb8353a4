"""Table 2-style results: one row per method (and per tuned baseline), tested against the rivals.

Built from the ``meta_test.json`` records of an experiment directory. Each
record gives a method's row for one seed; a record may add rows of its own
(``rows``): the zoo method's tuned members (cross-entropy at the preset's
lr, tuned cross-entropy with and without early stopping, each tuned family),
and a learned method's best learned finalist. Every row is tested against the
*comparators* (:mod:`evomal.report.comparison`): with the zoo in the
experiment, tuned cross-entropy (per seed, the better on validation of with
and without early stopping) and the zoo's validation pick; otherwise the
baseline method. The comparators are chosen by validation, never by test.
The primary test is the paired t-test over the same seeds, Welch's beside
it, Holm's correction over every row and comparator of the table.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evomal.losses.learned import task_loss_name
from evomal.methods.registry import REGISTRY, method_names
from evomal.report.comparison import Comparison, compare


def method_order() -> tuple[str, ...]:
    """Methods in display order, as registered (read when a table is built)."""
    return method_names()


def method_label(method: str) -> str:
    """A method's display label (its name if it is not registered)."""
    spec = REGISTRY.get(method)
    return spec.label if spec is not None else method


#: The derived row: per seed, the better of tuned cross-entropy with and without early stopping.
TUNED_TASK_LOSS = "zoo/tuned_ce"


@dataclass(frozen=True)
class MethodRow:
    """One row of the table: a method's returned loss, or one of the rows a record adds."""

    key: str
    label: str
    method: str
    per_seed: dict[int, float | None]
    mean_work_seconds: float | None = None
    task_loss_returned: int | None = None
    other_metric: dict[int, float | None] = field(default_factory=dict)
    memorisation: dict[int, float | None] = field(default_factory=dict)
    lr_factors: dict[int, float] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    #: per seed, what the returned loss is: "learned", the baseline's name, "= X" for a
    #: tree that equals the known loss X up to a positive scale, or "task loss"
    returned_as: dict[int, str] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.per_seed))

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(v for _, v in sorted(self.per_seed.items()) if _ok(v))  # type: ignore[misc]

    @property
    def diverged(self) -> int:
        return len(self.per_seed) - len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def against(self, comparator: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.comparator == comparator), None)


def _ok(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _work_seconds(record: dict[str, Any]) -> float | None:
    """The search's candidate work plus its selection (``work_seconds``, which survives
    resumes); the wall time of the search call for records from before it existed."""
    value = record.get("work_seconds", record.get("search_seconds"))
    return None if value is None else float(value)


def _other_metric(record: dict[str, Any]) -> float | None:
    """The classification metric the table does not lead with: error under the balanced
    error, balanced error under the error."""
    details = record.get("details") or {}
    if "balanced" in str(record.get("metric", "")):
        return details.get("test_error")
    return details.get("test_balanced_error")


def _memorisation(record: dict[str, Any]) -> float | None:
    return ((record.get("details") or {}).get("memorisation") or {}).get("memorised")


def _row_label(method: str, key: str, kind: str) -> str:
    task = task_loss_name(kind)
    label = method_label(method)
    if method == "zoo":
        fixed = {
            "ce": f"tuned {task}",
            "mse": "tuned MSE",
            "ce_es": f"tuned {task} + early stopping",
            "mse_es": "tuned MSE + early stopping",
            "ce_preset": f"{task}, the preset's lr",
        }
        return fixed.get(key, f"tuned {key}")
    if key == "best_learned":
        return f"{label}, best learned finalist"
    if key == "best_online":
        return f"{label}, best online finalist (the online tree)"
    return f"{label}: {key}"


def _order(key: str) -> tuple[int, int, str]:
    method, _, sub = key.partition("/")
    order = method_order()
    position = order.index(method) if method in order else len(order)
    zoo_first = ["ce_preset", "ce", "mse", "ce_es", "mse_es", "tuned_ce"]
    if method == "zoo":
        inner = zoo_first.index(sub) if sub in zoo_first else (len(zoo_first) if sub else 99)
    else:
        inner = 1 if sub else 0
    return position, inner, sub


def method_rows(records: Sequence[dict[str, Any]]) -> list[MethodRow]:
    """Every row of the table, in display order, each tested against the comparators."""
    kind = "regression" if any(r.get("metric") == "MSE" for r in records) else "classification"
    cells: dict[str, dict[str, Any]] = {}

    def add(key: str, label: str, method: str, seed: int, record: dict[str, Any]) -> None:
        cell = cells.setdefault(key, {"label": label, "method": method, "seeds": {}})
        cell["seeds"][seed] = record

    for record in records:
        method, seed = record["method"], record["seed"]
        label = "zoo pick (by validation)" if method == "zoo" else method_label(method)
        add(method, label, method, seed, record)
        for extra in record.get("rows") or []:
            key = extra["row"]
            add(f"{method}/{key}", _row_label(method, key, kind), method, seed, extra)
    _add_tuned_task_loss(cells, kind)
    rows = [_row(key, cell) for key, cell in cells.items()]
    rows.sort(key=lambda r: _order(r.key))
    comparators = comparators_of(rows)
    tests = compare({r.key: r.per_seed for r in rows}, comparators)
    return [
        MethodRow(**{**row.__dict__, "comparisons": tuple(c for c in tests if c.row == row.key)})
        for row in rows
    ]


def _add_tuned_task_loss(cells: dict[str, dict[str, Any]], kind: str) -> None:
    """Tuned cross-entropy: per seed, whichever of with and without early stopping scored
    better on validation (never chosen by test)."""
    plain = cells.get("zoo/ce")
    stopped = cells.get("zoo/ce_es") or cells.get("zoo/mse_es")
    if plain is None or stopped is None:
        return
    task = task_loss_name(kind)
    chosen = {}
    for seed, record in plain["seeds"].items():
        other = stopped["seeds"].get(seed)
        pick = record
        if (
            other is not None
            and _ok(other.get("val_metric"))
            and (not _ok(record.get("val_metric")) or other["val_metric"] < record["val_metric"])
        ):
            pick = other
        chosen[seed] = pick
    cells[TUNED_TASK_LOSS] = {"label": f"tuned {task} (± early stopping, by validation)",
                              "method": "zoo", "seeds": chosen}  # fmt: skip


def _row(key: str, cell: dict[str, Any]) -> MethodRow:
    seeds: dict[int, dict[str, Any]] = cell["seeds"]
    works = [w for w in (_work_seconds(r) for r in seeds.values() if "method" in r)
             if w is not None]  # fmt: skip
    main = "/" not in key
    returned = None
    if main and _learns(cell["method"]):
        returned = sum(1 for r in seeds.values() if r.get("task_loss"))
    return MethodRow(
        key=key,
        label=cell["label"],
        method=cell["method"],
        per_seed={s: r.get("test_metric") for s, r in seeds.items()},
        mean_work_seconds=statistics.mean(works) if works else None,
        task_loss_returned=returned,
        other_metric={s: _other_metric(r) for s, r in seeds.items()},
        memorisation={s: _memorisation(r) for s, r in seeds.items()},
        lr_factors={s: float(r.get("lr_factor", 1.0)) for s, r in seeds.items()},
        returned_as=_returned_as(key, cell, seeds),
    )


def _returned_as(
    key: str, cell: dict[str, Any], seeds: dict[int, dict[str, Any]]
) -> dict[int, str]:
    """What each seed's returned loss is, for the rows of a searching method."""
    if not _learns(cell["method"]):
        return {}
    out = {}
    for seed, record in seeds.items():
        if "learned" not in record:  # an older record does not say
            continue
        if record["learned"]:
            out[seed] = "learned"
        elif key.endswith(("/best_learned", "/best_online")) or record.get("row") in (
            "best_learned",
            "best_online",
        ):
            out[seed] = f"= {record['equals']}" if record.get("equals") else "learned"
        elif record.get("baseline"):
            out[seed] = str(record["baseline"])
        elif record.get("equals"):
            out[seed] = f"= {record['equals']}"
        else:
            out[seed] = "task loss"
    return out


def _learns(method: str) -> bool:
    """Whether a method can return a learned loss (not the baseline, not the zoo)."""
    spec = REGISTRY.get(method)
    return spec is None or spec.learns


#: A rival every row is also tested against when it ran: the learned learning-rate schedule
#: an online loss's gain must survive (issue: could the gain be a schedule?).
SCHEDULE = "hypergrad"


def comparators_of(rows: Sequence[MethodRow]) -> list[str]:
    """Tuned cross-entropy and the zoo pick when the zoo ran, else the baseline method; and
    hypergrad's learning-rate schedule when it ran.

    The schedule is hypergrad's best learned finalist (the online schedule that scored
    best on validation, meta-tested whether or not selection returned it), not the loss
    hypergrad returned: with the zoo as the selection's rivals hypergrad returns the zoo's
    pick whenever its schedule loses on validation, and testing against that would repeat
    the zoo-pick comparison instead of asking whether a gain is a schedule. Records without
    that row fall back to the returned loss.
    """
    keys = {r.key for r in rows}
    if "zoo" in keys:
        found = [k for k in (TUNED_TASK_LOSS, "zoo") if k in keys]
    else:
        found = [m for m in method_order() if m in keys and REGISTRY[m].reference][:1]
    schedule = next((k for k in (f"{SCHEDULE}/best_learned", SCHEDULE) if k in keys), None)
    return found + ([schedule] if schedule else [])


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(values: Sequence[float | None]) -> str:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    spread = f" ± {statistics.stdev(finite):.4f}" if len(finite) > 1 else " (1 run)"
    return f"{statistics.mean(finite):.4f}{spread}"


def _other_name(metric: str) -> str:
    return "test error rate" if "balanced" in metric else "test balanced error"


def table_cells(
    rows: Sequence[MethodRow], metric: str = "test error rate"
) -> tuple[list[str], list[list[str]]]:
    """Header and cells: each row's test metric (mean ± std), and for every comparator the
    paired difference, its t and p, the Holm-adjusted p, Welch's p and the seeds worse."""
    comparators = comparators_of(rows)
    names = {r.key: r.label for r in rows}
    other = any(_ok(v) for r in rows for v in r.other_metric.values())
    remembered = any(_ok(v) for r in rows for v in r.memorisation.values())
    factors = any(f != 1.0 for r in rows for f in r.lr_factors.values())
    header = ["row", "seeds", f"{metric} (mean ± std)"]
    header += [_other_name(metric)] if other else []
    header += ["memorised (flipped labels fitted)"] if remembered else []
    header += ["lr factor per seed"] if factors else []
    marked = any(r.returned_as for r in rows)
    header += ["returned loss per seed (learned, or the known loss it is)"] if marked else []
    for c in comparators:
        header += [f"vs {names[c]}: Δ (paired t)", "p / Holm p", "Welch p", "seeds worse"]
    header += ["task loss returned", "search + selection work (s)"]
    cells = []
    for row in rows:
        spread = f"{_fmt(row.mean)} ± {_fmt(row.std)}" if row.mean is not None else "-"
        if row.diverged:
            spread += f" ({row.diverged} diverged)"
        line = [row.label, str(len(row.seeds)), spread]
        line += [_spread(list(row.other_metric.values()))] if other else []
        line += [_spread(list(row.memorisation.values()))] if remembered else []
        if factors:
            line += [", ".join(f"{row.lr_factors[s]:.3g}" for s in row.seeds)]
        if marked:
            line += ["; ".join(row.returned_as.get(s, "-") for s in row.seeds)
                     if row.returned_as else "-"]  # fmt: skip
        for c in comparators:
            test = row.against(c)
            if test is None:
                line += ["-", "-", "-", "-"]
                continue
            t = "" if test.t_paired is None else f" (t {test.t_paired:.2f})"
            diff = "-" if test.mean_difference is None else f"{test.mean_difference:+.4f}{t}"
            line += [diff, f"{_fmt(test.p_paired, 3)} / {_fmt(test.p_holm, 3)}",
                     _fmt(test.p_welch, 3), str(test.worse)]  # fmt: skip
        line += ["-" if row.task_loss_returned is None else str(row.task_loss_returned),
                 _fmt(row.mean_work_seconds, 0)]  # fmt: skip
        cells.append(line)
    return header, cells


def markdown_table(rows: Sequence[MethodRow], metric: str = "test error rate") -> str:
    """The results table (:func:`table_cells`) in Markdown."""
    header, cells = table_cells(rows, metric)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def csv_table(records: Sequence[dict[str, Any]], rows: Sequence[MethodRow]) -> str:
    """CSV in three blocks, each after a blank line: one line per (method, seed), one summary
    line per row and comparator, and one line per (row, seed) with the row's per-seed values,
    so that every comparison of the table can be recomputed from the CSV alone."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["method", "seed", "test_metric", "best_fitness", "work_seconds", "task_loss",
         "expression", "lr_factor", "baseline", "equals", "learned"]
    )  # fmt: skip
    for r in sorted(records, key=lambda r: (r["method"], r["seed"])):
        writer.writerow(
            [r["method"], r["seed"], r.get("test_metric"), r.get("best_fitness"),
             _work_seconds(r), r.get("task_loss"), r.get("expression"),
             r.get("lr_factor", 1.0), r.get("baseline"), r.get("equals"), r.get("learned")]
        )  # fmt: skip
    writer.writerow([])
    writer.writerow(
        ["row", "label", "n", "mean", "std", "mean_work_seconds", "comparator", "pairs",
         "mean_difference", "paired_t", "paired_p", "holm_p", "welch_t", "welch_p"]
    )  # fmt: skip
    for row in rows:
        base = [row.key, row.label, len(row.values), row.mean, row.std, row.mean_work_seconds]
        if not row.comparisons:
            writer.writerow(base)
        for c in row.comparisons:
            writer.writerow([*base, c.comparator, c.pairs, c.mean_difference, c.t_paired,
                             c.p_paired, c.p_holm, c.t_welch, c.p_welch])  # fmt: skip
    writer.writerow([])
    writer.writerow(["row", "seed", "test_metric", "other_metric", "memorisation", "lr_factor",
                     "returned_as"])  # fmt: skip
    for row in rows:
        for seed in row.seeds:
            writer.writerow([row.key, seed, row.per_seed[seed], row.other_metric.get(seed),
                             row.memorisation.get(seed), row.lr_factors.get(seed),
                             row.returned_as.get(seed)])  # fmt: skip
    return out.getvalue()
