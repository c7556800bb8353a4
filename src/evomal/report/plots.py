"""Plots from experiment directories: meta-training curves and per-seed test metrics.

Reads ``generations.jsonl`` and ``meta_test.json`` files only. Uses the Agg
backend, so it works without a display.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evomal.report.tables import METHOD_LABELS, METHOD_ORDER


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
    for method in [m for m in METHOD_ORDER if m in curves]:
        runs = curves[method]
        length = max(len(r) for r in runs)
        means = []
        for g in range(length):
            values = [float(v) for r in runs if g < len(r) and (v := r[g]) is not None]
            means.append(sum(values) / len(values) if values else float("nan"))
        left.plot(
            range(length), means, marker="o", markersize=3, label=METHOD_LABELS.get(method, method)
        )
    left.set_xlabel("generation")
    left.set_ylabel("best fitness so far (validation metric)")
    left.set_title("Meta-training (mean over seeds)")
    left.legend(fontsize=8)
    methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in records)]
    for x, method in enumerate(methods):
        values = [
            float(r["test_metric"])
            for r in records
            if r["method"] == method and r.get("test_metric") is not None
        ]
        right.scatter([x] * len(values), values, alpha=0.7)
        if values:
            right.hlines(sum(values) / len(values), x - 0.3, x + 0.3, colors="black")
    right.set_xticks(range(len(methods)), [METHOD_LABELS.get(m, m) for m in methods], rotation=20)
    right.set_ylabel("test metric (per seed; bar = mean)")
    right.set_title("Meta-testing")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
