"""Plots from experiment directories: meta-training curves and per-seed test metrics.

Reads ``generations.jsonl`` and ``meta_test.json`` files only. Uses the Agg
backend, so it works without a display.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evomal.report.tables import (
    TUNED_TASK_LOSS,
    MethodRow,
    method_label,
    method_order,
    method_rows,
)


def fitness_curves(root: str | os.PathLike[str]) -> dict[str, list[list[float | None]]]:
    """Best fitness so far per generation, per method, one list per seed (paper Fig. 5)."""
    curves: dict[str, list[list[float | None]]] = {}
    for path in sorted(Path(root).glob("*/seed-*/search/generations.jsonl")):
        method = path.parts[-4]
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        curves.setdefault(method, []).append([line.get("best_so_far") for line in lines])
    return curves


def plot_experiment(root: str | os.PathLike[str], records: list[dict[str, Any]], out: Path) -> Path:
    """Two panels: mean best fitness by generation, and test metric per seed by method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = fitness_curves(root)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for method in [m for m in method_order() if m in curves and any(curves[m])]:
        runs = curves[method]
        length = max(len(r) for r in runs)
        means = []
        for g in range(length):
            values = [float(v) for r in runs if g < len(r) and (v := r[g]) is not None]
            means.append(sum(values) / len(values) if values else float("nan"))
        left.plot(range(length), means, marker="o", markersize=3, label=method_label(method))
    left.set_xlabel("generation")
    left.set_ylabel("best fitness so far (validation metric)")
    left.set_title("Meta-training (mean over seeds)")
    left.legend(fontsize=8)
    shown = _shown_rows(records)
    for x, row in enumerate(shown):
        values = list(row.values)
        right.scatter([x] * len(values), values, alpha=0.7)
        if values:
            right.hlines(sum(values) / len(values), x - 0.3, x + 0.3, colors="black")
    right.set_xticks(range(len(shown)), [_short(row.label) for row in shown], rotation=20,
                     ha="right", fontsize=8)  # fmt: skip
    right.set_ylabel("test metric (per seed; bar = mean)")
    right.set_title("Meta-testing")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _shown_rows(records: list[dict[str, Any]]) -> list[MethodRow]:
    """Each method's row, and with the zoo its rivals: the task loss at the preset's lr, tuned
    cross-entropy (chosen by validation) and the zoo's pick (the zoo's own row)."""
    keep = {"zoo/ce_preset", TUNED_TASK_LOSS}
    return [row for row in method_rows(records) if "/" not in row.key or row.key in keep]


def _short(label: str) -> str:
    return label.replace(" (± early stopping, by validation)", "").replace(" (by validation)", "")
