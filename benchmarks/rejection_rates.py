"""How often the screen rejects random trees, per task kind, and that the task loss passes.

Random trees of the search's generation 0 (ramped half-and-half, heights 2-4,
repaired) are screened with phi = 1 on each task's probe (100 training
samples and an untrained MLP's predictions), with the default screen
(``filters.*`` of ``--preset``). Reported per task: how many were rejected
for a low score, how many for a late rise, how many were non-finite, and the
task loss's own score (it must pass).

    python benchmarks/rejection_rates.py --tasks mnist1d digits diabetes boston \
        --out benchmarks/results/rejection_rates.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from _common import write_rows
from evomal.config import GPConfig, build_config
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.gp.filters import rejection_reason, rejection_traces
from evomal.gp.operators import repair
from evomal.losses.learned import task_loss_tree
from evomal.runs.tasks import task_for
from evomal.symbolic import compile_tree, gen_half_and_half, nonfinite_reason
from evomal.symbolic.primitives import PrimitiveSet


def rates(task_name: str, preset: str, trees: list[str]) -> dict[str, object]:
    config = build_config(preset)
    task = task_for(task_name, config)
    ctx = EvaluationContext(ContextSpec((task.without_test(),), "mlp", config))
    probe = ctx.probes[0]
    f = config.filters
    counts = {"passed": 0, "rejected_score": 0, "rejected_late_rise": 0, "non_finite": 0}
    finite = []
    for expression in trees:
        loss = compile_tree(expression, task.kind)
        phi = torch.ones(loss.n_weights)
        if nonfinite_reason(loss, probe.predictions, probe.targets, phi) is not None:
            counts["non_finite"] += 1
        else:
            finite.append((loss, phi))
    traces = rejection_traces(
        [loss for loss, _ in finite], [phi for _, phi in finite], probe, f.rejection_steps,
        f.rejection_lr,
    )  # fmt: skip
    for trace in traces:
        reason = rejection_reason(
            trace.score, trace.late_rise, f.rejection_threshold, True, f.late_rise_tolerance
        )
        if reason is None:
            counts["passed"] += 1
        elif "late" in reason:
            counts["rejected_late_rise"] += 1
        else:
            counts["rejected_score"] += 1
    own = task_loss_tree(task.kind)
    (trace,) = rejection_traces(
        [own.loss_fn], [torch.ones(own.tree.n_edges)], probe, f.rejection_steps, f.rejection_lr
    )
    return {
        "task": task_name,
        "kind": task.kind,
        "trees": len(trees),
        **counts,
        "rejected_fraction": round(1 - counts["passed"] / len(trees), 3),
        "task_loss": own.expression,
        "task_loss_score": None if math.isinf(trace.score) else round(trace.score, 4),
        "task_loss_late_rise": round(trace.late_rise, 4),
        "task_loss_passes": rejection_reason(
            trace.score, trace.late_rise, f.rejection_threshold, True, f.late_rise_tolerance
        )
        is None,
        "screen": {
            "steps": f.rejection_steps,
            "lr": f.rejection_lr,
            "threshold": f.rejection_threshold,
            "late_rise_tolerance": f.late_rise_tolerance,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "digits", "diabetes", "boston"])
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rejection_rates.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    config = GPConfig()
    pset = PrimitiveSet(tuple(config.functions), tuple(config.terminals))
    trees = [str(repair(rng, gen_half_and_half(rng, 2, 4, pset), pset)) for _ in range(args.trees)]
    rows = []
    for task in args.tasks:
        preset = "regression" if task in ("diabetes", "boston", "california") else "embedded"
        row = rates(task, preset, trees)
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
