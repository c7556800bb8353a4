"""Issue 10's ablation: which of the new guards make learned losses hold up after full training.

Every variant is EvoMAL on the ``embedded`` preset (or ``--preset``), searched
and meta-tested for the full schedule over the same seeds as cross-entropy.
``before`` switches off everything issue 10 added (the search as it stood);
each other variant adds one deliverable to it; ``all`` is the preset itself:

* ``selection``: the final selection stage (deliverable 1);
* ``seed_task_loss``: the task loss in generation 0 (2);
* ``unroll``: the local search unrolls 5 steps of the real optimiser (3);
* ``unroll_normalised``: the same with the loss's gradient scale normalised (3);
* ``screen``: the rejection protocol for 1,000 steps, with the late-rise check (5).

Each (task, variant) is an ``evomal experiment`` directory under ``--out``, so
re-running the command skips finished seeds and resumes interrupted
searches. ``--report`` writes the table (Markdown) and a JSON summary::

    python benchmarks/ablation.py --tasks mnist1d digits --seeds 0-4 --out runs/ablation
    python benchmarks/ablation.py --out runs/ablation --report docs/results/ablation
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from evomal.experiment import ExperimentSpec, load_cells, run_experiment
from evomal.methods.meta_test import parse_seeds
from evomal.report.tables import _welch

BEFORE = [
    "selection.k=0",
    "gp.seed_task_loss=false",
    "local_search.unroll_optimizer=false",
    "local_search.base_steps=1",
    "local_search.normalise_scale=false",
    "filters.rejection_steps=50",
    "filters.reject_late_rise=false",
]
VARIANTS: dict[str, list[str]] = {
    "before": BEFORE,
    "selection": [*BEFORE, "selection.k=5"],
    "seed_task_loss": [*BEFORE, "gp.seed_task_loss=true"],
    "unroll": [*BEFORE, "local_search.unroll_optimizer=true", "local_search.base_steps=5"],
    "unroll_normalised": [
        *BEFORE,
        "local_search.unroll_optimizer=true",
        "local_search.base_steps=5",
        "local_search.normalise_scale=true",
    ],
    "screen": [*BEFORE, "filters.rejection_steps=1000", "filters.reject_late_rise=true"],
    "all": [],
}
LABELS = {
    "before": "as before issue 10",
    "selection": "+ final selection (1)",
    "seed_task_loss": "+ task loss in generation 0 (2)",
    "unroll": "+ optimiser-unrolled local search (3)",
    "unroll_normalised": "+ optimiser-unrolled, normalised scale (3)",
    "screen": "+ stricter screen (5)",
    "all": "all of them",
}


def run(args: argparse.Namespace) -> None:
    seeds = tuple(parse_seeds(args.seeds))
    for task in args.tasks:
        base = ExperimentSpec(
            methods=("baseline",), task=task, model=args.model, seeds=seeds, preset=args.preset
        )
        run_experiment(base, Path(args.out) / task / "baseline", progress=_say)
        for variant in args.variants:
            spec = ExperimentSpec(
                methods=(args.method,),
                task=task,
                model=args.model,
                seeds=seeds,
                preset=args.preset,
                overrides=(*VARIANTS[variant], *args.set),
            )
            run_experiment(spec, Path(args.out) / task / variant, progress=_say)


def _say(message: str) -> None:
    print(message, flush=True)


def summarise(root: Path, method: str = "evomal") -> dict[str, dict[str, dict[str, object]]]:
    """Per task and variant: per-seed test metrics and the comparison with the baseline."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        baseline = {
            r["seed"]: r["test_metric"] for r in load_cells(task_dir / "baseline", ["baseline"])
        }
        if not baseline:
            continue
        base_values = list(baseline.values())
        base_mean = statistics.mean(base_values)
        base_std = statistics.stdev(base_values) if len(base_values) > 1 else 0.0
        rows: dict[str, dict[str, object]] = {
            "baseline": {"per_seed": baseline, "mean": base_mean, "std": base_std}
        }
        for variant in VARIANTS:
            records = load_cells(task_dir / variant, [method])
            if not records:
                continue
            per_seed = {r["seed"]: r["test_metric"] for r in records}
            values = [v for v in per_seed.values() if v is not None and math.isfinite(v)]
            t, p = _welch(values, base_values)
            limit = base_mean + 2 * base_std
            rows[variant] = {
                "per_seed": per_seed,
                "mean": statistics.mean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "welch_t": t,
                "welch_p": p,
                "worse_than_baseline": sum(
                    1
                    for s, v in per_seed.items()
                    if s in baseline and (v is None or v > baseline[s])
                ),
                "beyond_2_std": sum(1 for v in per_seed.values() if v is None or v > limit),
                "task_loss_returned": sum(1 for r in records if r.get("task_loss")),
                "expressions": {r["seed"]: r.get("expression") for r in records},
                "work_seconds": statistics.mean(r["work_seconds"] for r in records),
            }
        out[task_dir.name] = rows
    return out


def _fmt(value: object, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"  # type: ignore[str-format]


def markdown(summary: dict[str, dict[str, dict[str, object]]], metric: str) -> str:
    lines = []
    for task, rows in summary.items():
        base = rows["baseline"]
        lines += [
            f"**{task}** (cross-entropy: {_fmt(base['mean'])} ± {_fmt(base['std'])}; "
            f"mean + 2 std = {_fmt(float(base['mean']) + 2 * float(base['std']))})",  # type: ignore[arg-type]
            "",
            f"| variant | test {metric} (mean ± std) | Welch t vs CE | p | seeds worse than CE "
            "(same seed) | seeds beyond CE mean + 2 std | task loss returned | candidate + "
            "selection work (s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for variant, label in LABELS.items():
            row = rows.get(variant)
            if row is None:
                continue
            n = len(row["per_seed"])  # type: ignore[arg-type]
            lines.append(
                f"| {label} | {_fmt(row['mean'])} ± {_fmt(row['std'])} | "
                f"{_fmt(row['welch_t'], 2)} | {_fmt(row['welch_p'], 3)} | "
                f"{row['worse_than_baseline']} of {n} | {row['beyond_2_std']} of {n} | "
                f"{row['task_loss_returned']} | {_fmt(row['work_seconds'], 0)} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, dict[str, object]]], out: Path, metric: str) -> None:
    """Per task: every seed's test metric per variant, against cross-entropy's mean ± 2 std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 4), squeeze=False)
    for ax, (task, rows) in zip(axes[0], summary.items(), strict=True):
        base = rows["baseline"]
        mean, std = float(base["mean"]), float(base["std"])  # type: ignore[arg-type]
        ax.axhspan(mean - 2 * std, mean + 2 * std, color="tab:blue", alpha=0.12)
        ax.axhline(mean, color="tab:blue", label="cross-entropy mean ± 2 std")
        variants = [v for v in LABELS if v in rows]
        for x, variant in enumerate(variants):
            values = [v for v in rows[variant]["per_seed"].values() if v is not None]  # type: ignore[attr-defined]
            ax.scatter([x] * len(values), values, color="black", s=14)
        ax.set_xticks(range(len(variants)), [LABELS[v] for v in variants], rotation=30, ha="right")
        ax.set_ylabel(f"test {metric} (one dot per seed)")
        ax.set_title(task)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "digits"])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--method", default="evomal", help="evomal, or ml3 (same local search)")
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every variant")
    parser.add_argument("--out", required=True, help="root of the experiment directories")
    parser.add_argument("--report", help="write table.md and summary.json here instead of running")
    parser.add_argument("--metric", default="error rate")
    args = parser.parse_args(argv)
    if args.report:
        summary = summarise(Path(args.out), args.method)
        report = Path(args.report)
        report.mkdir(parents=True, exist_ok=True)
        (report / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        (report / "table.md").write_text(markdown(summary, args.metric))
        plot(summary, report / "ablation.png", args.metric)
        print(markdown(summary, args.metric))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
