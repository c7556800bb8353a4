"""An experiment directory's own report files: ``table.md``, ``results.csv`` and ``results.png``.

``evomal experiment`` writes them when it finishes and ``evomal report`` rewrites
them from the cells' records, so a table always matches the records beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evomal.errors import RunDirectoryError
from evomal.report.plots import plot_experiment
from evomal.report.sources import load_cells
from evomal.report.tables import csv_table, markdown_table, method_rows


@dataclass(frozen=True)
class ExperimentFiles:
    """What :func:`write_experiment_files` wrote, and the table as Markdown (to print)."""

    table: str
    markdown: Path
    csv: Path
    plot: Path


def write_experiment_files(root: str | os.PathLike[str]) -> ExperimentFiles:
    """Write the table, CSV and plot of the experiment at ``root`` from its cells' records."""
    root = Path(root)
    records = load_cells(root)
    if not records:
        raise RunDirectoryError(f"{root} holds no finished (method, seed) results yet")
    rows = method_rows(records)
    metric = f"test {records[0].get('metric') or 'error rate'}"
    table = markdown_table(rows, metric)
    (root / "table.md").write_text(table)
    (root / "results.csv").write_text(csv_table(records, rows))
    plot = plot_experiment(root, records, root / "results.png")
    return ExperimentFiles(table, root / "table.md", root / "results.csv", plot)
