"""Holm-adjusted p for the older method tables of docs/results.md, from their committed CSVs.

    python benchmarks/holm_tables.py docs/results/mnist1d_mlp/results.csv [...]

Each CSV's summary block (``method,n,mean,std,welch_t,welch_p,...``) holds every
method's Welch test against the baseline over the same seeds; the table's
comparisons are one family, so Holm's correction runs over all of them.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from evomal.report.comparison import holm


def summary_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV's summary block (after its blank line)."""
    text = path.read_text().split("\n\n", 1)
    if len(text) < 2:
        raise SystemExit(f"{path}: no summary block (method,n,mean,std,welch_t,welch_p,...)")
    reader = csv.DictReader(text[1].splitlines())
    if not {"method", "welch_p"} <= set(reader.fieldnames or []):
        # The "Where a loss matters" tables' CSVs compare every row with two rivals,
        # paired; their report already gives Holm p (table.md beside the CSV).
        raise SystemExit(
            f"{path}: its summary block has no method and welch_p columns, so it is not one of "
            "the older method tables; a table with rivals gives its Holm p in table.md beside it"
        )
    return list(reader)


def main(paths: list[str]) -> None:
    for name in paths:
        rows = [r for r in summary_rows(Path(name)) if r["welch_p"]]
        adjusted = holm([float(r["welch_p"]) for r in rows])
        print(f"{name}: {len(rows)} comparisons with the baseline")
        for row, p_holm in zip(rows, adjusted, strict=True):
            print(f"  {row['method']:<10} p {float(row['welch_p']):.3f}  Holm p {p_holm:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
