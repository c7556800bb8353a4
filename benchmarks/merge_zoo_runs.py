"""One table from an experiment and a zoo-only experiment that adds families to its zoo.

    python benchmarks/merge_zoo_runs.py runs/mnist_lenet5_sym04_gplfl \\
        runs/mnist_lenet5_sym04_zoo4 docs/results/where_a_loss_matters/mnist_lenet5_sym04

When a table's zoo was cut to fit a machine, the families left out can run later as
``--methods zoo`` over the same task, scenario, seeds and schedule (its cache seeded
with the first run's). This merges the second run's tuned rows into the first run's zoo
records, seed by seed, and writes ``table_merged.md`` and
``results_merged.csv`` with the library's own table code, so Holm's correction
runs over every test of the merged table.

It refuses, rather than guess, when the merge would change what the first run's
methods were selected against: when a row both runs hold differs (the runs are not of
the same setting), or when a family added second scored lower on validation than the
first run's pick on some seed (the methods' selections would then need rerunning).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evomal.report.sources import load_cells
from evomal.report.tables import csv_table, markdown_table, method_rows


def merge_zoo_rows(
    records: Sequence[dict[str, Any]], added: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``records`` with each zoo record's rows extended by ``added``'s zoo rows of its seed."""
    extra = {r["seed"]: r for r in added if r["method"] == "zoo"}
    merged = []
    for record in records:
        if record["method"] != "zoo":
            merged.append(record)
            continue
        seed = record["seed"]
        if seed not in extra:
            raise SystemExit(f"the added zoo run has no seed {seed}; run it for every seed first")
        other = extra[seed]
        if other["val_metric"] < record["val_metric"]:
            raise SystemExit(
                f"seed {seed}: the added run's pick {other['baseline']} scored "
                f"{other['val_metric']:.4f} on validation, below the first run's pick "
                f"{record['baseline']} ({record['val_metric']:.4f}); the first run's methods "
                "were selected against a weaker zoo, so rerun them rather than merge"
            )
        record = copy.deepcopy(record)
        have = {row["row"]: row for row in record["rows"]}
        for row in other["rows"]:
            same = have.get(row["row"])
            if same is None:
                record["rows"].append(row)
            elif same["test_metric"] != row["test_metric"]:
                raise SystemExit(
                    f"seed {seed}: row {row['row']} tests {row['test_metric']} in the added run "
                    f"and {same['test_metric']} in the first: not the same setting"
                )
        merged.append(record)
    return merged


def main(argv: Sequence[str]) -> None:
    if len(argv) != 3:
        raise SystemExit("usage: merge_zoo_runs.py FIRST_EXPERIMENT ADDED_ZOO_EXPERIMENT OUT_DIR")
    first, added, out = (Path(a) for a in argv)
    records = merge_zoo_rows(load_cells(first), load_cells(added))
    rows = method_rows(records)
    metric = f"test {records[0].get('metric') or 'error rate'}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table_merged.md").write_text(markdown_table(rows, metric))
    (out / "results_merged.csv").write_text(csv_table(records, rows))
    for record in records:
        if record["method"] == "zoo":
            print(f"seed {record['seed']}: pick {record['baseline']} ({record['val_metric']:.4f})")
    print(f"wrote {out / 'table_merged.md'} and {out / 'results_merged.csv'}")


if __name__ == "__main__":
    main(sys.argv[1:])
