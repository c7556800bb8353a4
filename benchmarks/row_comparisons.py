"""Paired comparisons a table does not make, recomputed from its committed CSV alone.

    python benchmarks/row_comparisons.py docs/results/online/mnist1d_sym04/results.csv \\
        adalfl/best_learned:ml3/best_learned evomal/best_online:evomal/best_learned

Each ``ROW:OTHER`` pair is tested over the seeds where both rows have a finite test
metric (paired t, two-sided), and Holm's correction runs over the pairs given. The
values come from the CSV's per-(row, seed) block (``row,seed,test_metric,...``), which
every experiment's ``results.csv`` carries since the online tables; docs/results.md cites
these numbers for the online tables' extra comparisons.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from evomal.report.comparison import compare, holm

PER_SEED_HEADER = ["row", "seed", "test_metric"]


def per_seed_values(path: Path) -> dict[str, dict[int, float | None]]:
    """Each row's test metric per seed, from the CSV's per-(row, seed) block."""
    block: list[list[str]] | None = None
    with path.open(newline="") as handle:
        for line in csv.reader(handle):
            if line[:3] == PER_SEED_HEADER:
                block = []
            elif block is not None and line:
                block.append(line)
    if block is None:
        raise SystemExit(
            f"{path}: no per-(row, seed) block (a header starting row,seed,test_metric); "
            "rebuild the CSV from the experiment's directory with `evomal report DIR`"
        )
    values: dict[str, dict[int, float | None]] = {}
    for line in block:
        value = float(line[2]) if line[2] not in ("", "None") else None
        values.setdefault(line[0], {})[int(line[1])] = value
    return values


def compare_pairs(
    values: dict[str, dict[int, float | None]], pairs: list[tuple[str, str]]
) -> list[dict[str, object]]:
    """Per pair: the seeds used, the mean difference, paired t and p, seeds worse, Holm p.

    Each pair is tested by the tables' own :func:`~evomal.report.comparison.compare` (the
    same pairing of seeds, divergences and "worse" count); Holm runs over the pairs given.
    """
    out: list[dict[str, object]] = []
    for mine, other in pairs:
        missing = [name for name in (mine, other) if name not in values]
        if missing:
            raise SystemExit(f"no row {missing[0]!r} in the CSV; its rows are {sorted(values)}")
        (c,) = compare({mine: values[mine], other: values[other]}, [other])
        out.append({"row": mine, "other": other, "seeds": c.pairs,
                    "difference": c.mean_difference, "t": c.t_paired, "p": c.p_paired,
                    "worse": c.worse})  # fmt: skip
    for entry, adjusted in zip(out, holm([e["p"] for e in out]), strict=True):  # type: ignore[misc]
        entry["holm_p"] = adjusted
    return out


def main(args: list[str]) -> None:
    if len(args) < 2 or any(":" not in a for a in args[1:]):
        raise SystemExit("usage: row_comparisons.py RESULTS.csv ROW:OTHER [ROW:OTHER ...]")
    pairs = [tuple(a.split(":", 1)) for a in args[1:]]
    for e in compare_pairs(per_seed_values(Path(args[0])), pairs):  # type: ignore[arg-type]
        diff = "-" if e["difference"] is None else f"{e['difference']:+.4f}"
        p = "-" if e["p"] is None else f"{e['p']:.3f}"
        print(f"{e['row']} vs {e['other']}: {e['seeds']} seeds, difference {diff} "
              f"(worse on {e['worse']}), p {p}, Holm p {e['holm_p']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
