"""A run's hall of fame: its best distinct losses, with complexity and readable formulas.

Built from the run directory alone (``events.jsonl`` and ``selection.json``),
so it works for a finished, stopped or resumed run. "Distinct" uses the
search's own key (the equivalence cache's canonical form for trees), and
each loss keeps its best search fitness. Complexity is the tree's size (its
number of nodes), as in the paper's analysis of parsimony (Section 5.4).
The formula is the tree simplified with sympy with the weights phi omitted,
as in the paper's Table 5; :func:`latex_table` writes that table.

Search fitness is a short-horizon signal; where the selection stage ran, the
finalists' validation metric under full training is shown beside it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from evomal.errors import ConfigError, LossFileError, RunDirectoryError
from evomal.events import EVALUATED
from evomal.runs.store import RunStore
from evomal.symbolic.sympy_form import display_form
from evomal.symbolic.tree import parse


@dataclass(frozen=True)
class FameEntry:
    """One distinct loss of a run."""

    rank: int
    expression: str
    fitness: float
    generation: int | None
    size: int | None  # tree nodes; None for a parametric (TaylorGLO, ML3) loss
    formula: str  # simplified, weights omitted
    latex: str
    val_metric: float | None = None  # selection stage, full training (finalists only)
    returned: bool = False  # the loss the search handed back

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "expression": self.expression,
            "fitness": self.fitness,
            "generation": self.generation,
            "size": self.size,
            "formula": self.formula,
            "latex": self.latex,
            "val_metric": self.val_metric,
            "returned": self.returned,
        }


def hall_of_fame(
    run_dir: str | os.PathLike[str], k: int = 10, timeout: float | None = 10.0
) -> list[FameEntry]:
    """The ``k`` distinct losses with the best search fitness, best first.

    ``timeout`` bounds sympy's simplification of each formula (seconds).
    """
    if k < 1:
        raise ConfigError(f"--top must be at least 1, got {k}")
    store = RunStore(run_dir)
    if not store.events_path.exists():
        raise RunDirectoryError(f"{run_dir} has no events.jsonl: not an evomal run directory")
    best: dict[str, dict[str, Any]] = {}
    for event in store.read_events():
        fitness = event.get("fitness")
        if event.get("verdict") != EVALUATED or fitness is None or not math.isfinite(fitness):
            continue
        key = event.get("key") or event["expression"]
        if key not in best or fitness < best[key]["fitness"]:
            best[key] = event
    chosen = sorted(best.values(), key=lambda e: e["fitness"])[:k]
    kind = _task_kind(store)
    validation, returned = _finalists(store)
    return [
        _entry(
            rank,
            event,
            validation.get(event["expression"]),
            event["expression"] == returned,
            kind,
            timeout,
        )
        for rank, event in enumerate(chosen, start=1)
    ]


def _task_kind(store: RunStore) -> str:
    """The run's task kind: recorded in ``run.json``, or read off its loss file (older runs)."""
    kind = store.load_spec().get("task_kind")
    if kind is None and store.best_loss_path.exists():
        from evomal.files import read_json

        kind = read_json(store.best_loss_path, "loss file", LossFileError).get("task")
    return str(kind or "classification")


def _finalists(store: RunStore) -> tuple[dict[str, float], str | None]:
    """Validation metric per finalist expression, and the expression the run returned."""
    validation: dict[str, float] = {}
    for record in store.load_selection():
        expression = (record.get("document") or {}).get("expression")
        if expression is not None and record.get("val_metric") is not None:
            validation[expression] = float(record["val_metric"])
    returned = None
    if store.best_loss_path.exists() and store.result_path.exists():
        from evomal.files import read_json

        returned = read_json(store.best_loss_path, "loss file", LossFileError).get("expression")
    return validation, returned


def _entry(
    rank: int,
    event: dict[str, Any],
    val: float | None,
    returned: bool,
    kind: str,
    timeout: float | None,
) -> FameEntry:
    expression = event["expression"]
    try:
        tree = parse(expression)
    except ValueError:
        tree = None
    if tree is None:  # TaylorGLO's polynomial or ML3's network: shown as written
        formula, latex, size = expression, r"\texttt{" + _escape(expression) + "}", None
    else:
        form = display_form(tree, kind, timeout)
        formula, latex, size = str(form), form.latex, tree.size
    return FameEntry(
        rank=rank,
        expression=expression,
        fitness=float(event["fitness"]),
        generation=event.get("generation"),
        size=size,
        formula=formula,
        latex=latex,
        val_metric=val,
        returned=returned,
    )


def returned_label(run_dir: str | os.PathLike[str]) -> str | None:
    """The loss a finished run handed back, as its expression ("(the task loss)" marked);
    None before the run has finished or when it returned no tree."""
    summary = RunStore(run_dir).load_result()
    expression = None if summary is None else summary.get("best_expression")
    if expression is None:
        return None
    return str(expression) + (" (the task loss)" if summary and summary.get("task_loss") else "")


def latex_table(entries: list[FameEntry], caption: str | None = None) -> str:
    """The entries as a LaTeX table in the style of the paper's Table 5 (a., b., ... rows)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lccl}",
        r"\hline",
        r" & Fitness & Size & Loss function \\",
        r"\hline",
    ]
    for entry in entries:
        letter = _letter(entry.rank)
        size = "-" if entry.size is None else str(entry.size)
        formula = entry.latex if entry.size is None else f"${entry.latex}$"
        lines.append(f"{letter}. & {entry.fitness:.4f} & {size} & {formula} \\\\")
    lines += [r"\hline", r"\end{tabular}"]
    text = caption or (
        "Loss functions found by the search, simplified, with the weights $\\phi$ omitted; "
        "fitness is the search's short-horizon validation metric."
    )
    lines += [f"\\caption{{{text}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _letter(rank: int) -> str:
    letters = ""
    while rank > 0:
        rank, rem = divmod(rank - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return letters


def _escape(text: str) -> str:
    return "".join("\\" + c if c in "&%$#_{}" else c for c in text)
