"""The figures of a report, after the paper's Section 5, drawn from run records only.

Each function takes :class:`~evomal.report.sources.RunData` records (or loss
modules) and returns a matplotlib ``Figure``, built without pyplot (no
global state, no display needed); :func:`png` turns one into PNG bytes.

* :func:`loss_shape`: the loss against the predicted probability of the true
  class, for a binary and a 10-class case, against cross-entropy (Fig. 7);
  for regression, against the prediction error.
* :func:`meta_training_curves`: best fitness per generation, mean +- std over
  runs, one line per method (Fig. 5).
* :func:`filter_activity`: per generation, how many candidates each filter
  cached or rejected and how many were evaluated (Fig. 6).
* :func:`primitive_frequencies`: primitives in the runs' top losses (Fig. 8).
* :func:`time_breakdown`: seconds in local search, fitness, filters and the
  final selection.
* :func:`finalist_curves`: validation learning curves of the final
  selection's finalists over the full schedule, the task loss highlighted.
* :func:`online_trajectory`: what an online loss adapted over one training
  run (each weight, or the lr multiplier), and its meta-objective;
  :func:`weights_at` gives the loss at a snapshot, for :func:`loss_shape`.
"""

from __future__ import annotations

import io
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from evomal.events import CACHED, EVALUATED, FAILED, GRADIENT_EQUIVALENT, INVARIANT, REJECTED
from evomal.losses.learned import task_loss_name
from evomal.methods.registry import tree_methods
from evomal.report.sources import RunData
from evomal.report.tables import method_label, method_order
from evomal.symbolic.primitives import PRIMITIVES

#: Verdicts in the order the filter-activity bars stack them.
VERDICTS = (EVALUATED, CACHED, GRADIENT_EQUIVALENT, REJECTED, INVARIANT, FAILED)
_VERDICT_LABELS = {
    EVALUATED: "evaluated",
    CACHED: "equivalence cache",
    GRADIENT_EQUIVALENT: "gradient equivalence",
    REJECTED: "rejection protocol",
    INVARIANT: "invariant filter",
    FAILED: "failed",
}
#: Stages whose seconds the events record, and how the report names them.
STAGES = {"screen": "filters (screening)", "local_search": "local search", "fitness": "fitness"}


def png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


# -- loss shape (Fig. 7) ------------------------------------------------------


def true_class_logits(p: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Logits whose softmax gives the true class (0) probability ``p``, the rest equal shares."""
    rest = ((1 - p) / (n_classes - 1)).clamp_min(1e-12)
    logits = torch.log(rest).unsqueeze(1).repeat(1, n_classes)
    logits[:, 0] = torch.log(p)
    return logits


def loss_values(loss: nn.Module, y_pred: torch.Tensor, y_true: torch.Tensor) -> list[float]:
    """The loss of each sample on its own (so any reduction a module has is the sample's)."""
    values = []
    with torch.no_grad():
        for i in range(y_pred.shape[0]):
            values.append(float(loss(y_pred[i : i + 1], y_true[i : i + 1])))
    return values


def loss_shape(losses: Sequence[tuple[str, nn.Module]], kind: str = "classification") -> Figure:
    """Each loss against cross-entropy (or MSE): binary and 10-class panels, or regression."""
    from evomal.losses.learned import LearnedLoss

    reference = LearnedLoss.cross_entropy() if kind == "classification" else LearnedLoss.mse()
    name = task_loss_name(kind)
    if kind != "classification":
        fig = Figure(figsize=(5.5, 4))
        axis = fig.subplots()
        error = torch.linspace(-3, 3, 121)
        y_true = torch.zeros(len(error), 1)
        x = error.unsqueeze(1)
        axis.plot(error, loss_values(reference, x, y_true), "b--", label=name)
        for label, loss in losses:
            axis.plot(error, loss_values(loss, x, y_true), label=label)
        axis.set_xlabel("prediction - target")
        axis.set_ylabel("loss")
        axis.legend(fontsize=7)
        return fig
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    p = torch.linspace(0.01, 0.99, 99)
    for axis, classes in zip(axes, (2, 10), strict=True):
        logits, y_true = true_class_logits(p, classes), torch.zeros(len(p), dtype=torch.long)
        axis.plot(p, rescaled(loss_values(reference, logits, y_true)), "b--", label=name)
        for label, loss in losses:
            axis.plot(p, rescaled(loss_values(loss, logits, y_true)), label=label)
        axis.set_xlabel("predicted probability of the true class")
        axis.set_ylabel("loss, rescaled (see caption)")
        axis.set_title(f"{classes} classes")
        axis.legend(fontsize=7)
    return fig


def rescaled(values: list[float]) -> list[float]:
    """``(L - L_last) / |L_first - L_last|``: shapes on one scale, direction kept.

    A learned loss may be shifted or scaled (the local search and the scale
    normalisation change both); neither changes what it rewards. Dividing by
    the absolute range keeps an increasing loss increasing.
    """
    finite = [v if math.isfinite(v) else math.nan for v in values]
    first, last = finite[0], finite[-1]
    span = abs(first - last)
    if not math.isfinite(span) or span < 1e-12:
        return [v - last for v in finite] if math.isfinite(last) else finite
    return [(v - last) / span for v in finite]


# -- meta-training and filters (Figs. 5 and 6) ----------------------------------


def _by_method(runs: Sequence[RunData]) -> dict[str, list[RunData]]:
    grouped: dict[str, list[RunData]] = {}
    for run in runs:
        grouped.setdefault(run.method, []).append(run)
    order = {m: i for i, m in enumerate(method_order())}
    return dict(sorted(grouped.items(), key=lambda item: order.get(item[0], len(order))))


def mean_std(columns: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per position, the mean and (population) standard deviation of the values present."""
    means, stds = [], []
    for values in columns:
        means.append(statistics.fmean(values) if values else math.nan)
        stds.append(statistics.pstdev(values) if len(values) > 1 else 0.0)
    return means, stds


def best_so_far_columns(runs: Sequence[RunData]) -> list[list[float]]:
    """Column g holds every run's best fitness so far after generation g (where finite)."""
    length = max((len(r.generations) for r in runs), default=0)
    columns: list[list[float]] = [[] for _ in range(length)]
    for run in runs:
        for g, summary in enumerate(run.generations):
            value = summary.best_so_far
            if value is not None and math.isfinite(value):
                columns[g].append(float(value))
    return columns


def meta_training_curves(runs: Sequence[RunData]) -> Figure:
    """Best fitness so far per generation, mean +- std over each method's runs (Fig. 5)."""
    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    for method, group in _by_method(runs).items():
        means, stds = mean_std(best_so_far_columns(group))
        xs = list(range(len(means)))
        label = f"{method_label(method)} ({len(group)} run{'s' * (len(group) > 1)})"
        axis.plot(xs, means, marker="o", markersize=3, label=label)
        low = [m - s for m, s in zip(means, stds, strict=True)]
        high = [m + s for m, s in zip(means, stds, strict=True)]
        axis.fill_between(xs, low, high, alpha=0.2)
    axis.set_xlabel("generation")
    axis.set_ylabel("best fitness so far (validation metric)")
    axis.set_title("Meta-training (mean ± std over runs)")
    axis.legend(fontsize=8)
    return fig


def verdict_counts(runs: Sequence[RunData]) -> dict[str, list[float]]:
    """Per verdict, the mean count per generation over the runs (from events.jsonl)."""
    length = max(
        (max((e["generation"] for e in r.events), default=-1) + 1 for r in runs), default=0
    )
    totals = {v: [0.0] * length for v in VERDICTS}
    for run in runs:
        for event in run.events:
            verdict = event.get("verdict")
            if verdict in totals:
                totals[verdict][event["generation"]] += 1
    return {v: [c / len(runs) for c in counts] for v, counts in totals.items()} if runs else totals


def filter_activity(runs: Sequence[RunData]) -> Figure:
    """Stacked bars per generation: evaluated, cached, gradient-equivalent, rejected, failed.

    Only runs of the methods whose candidates are trees count
    (:func:`~evomal.methods.registry.tree_methods`): the others
    have no filters to show.
    """
    runs = [r for r in runs if r.method in tree_methods()] or list(runs)
    counts = verdict_counts(runs)
    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    bottom = [0.0] * len(counts[EVALUATED])
    xs = list(range(len(bottom)))
    for verdict in VERDICTS:
        axis.bar(xs, counts[verdict], bottom=bottom, label=_VERDICT_LABELS[verdict])
        bottom = [b + c for b, c in zip(bottom, counts[verdict], strict=True)]
    axis.set_xlabel("generation")
    axis.set_ylabel(f"candidates per generation (mean over {len(runs)} runs)")
    axis.set_title("Filter activity")
    axis.legend(fontsize=8)
    return fig


# -- primitives, time, finalists ---------------------------------------------------


def primitive_counts(expressions: Sequence[str]) -> Counter[str]:
    """How often each primitive function appears in the expressions."""
    counts: Counter[str] = Counter()
    for expression in expressions:
        for name in re.findall(r"([a-z_]+)\(", expression):
            if name in PRIMITIVES:
                counts[name] += 1
    return counts


def primitive_frequencies(expressions: Sequence[str]) -> Figure:
    """A bar per primitive: its share of all primitive uses in the given losses (Fig. 8)."""
    counts = primitive_counts(expressions)
    total = sum(counts.values()) or 1
    names = [name for name, _ in counts.most_common()]
    fig = Figure(figsize=(6.5, 3.5))
    axis = fig.subplots()
    axis.bar(names, [counts[n] / total for n in names])
    axis.set_ylabel("share of primitive uses")
    axis.set_title(f"Primitives in the top losses ({len(expressions)} losses)")
    axis.tick_params(axis="x", rotation=30)
    return fig


def stage_seconds(run: RunData) -> dict[str, float]:
    """Seconds per stage: the candidates' stages from events.jsonl, and the final selection."""
    totals = {label: 0.0 for label in STAGES.values()}
    for event in run.events:
        for stage, seconds in (event.get("seconds") or {}).items():
            label = STAGES.get(stage, stage)
            totals[label] = totals.get(label, 0.0) + float(seconds)
    totals["final selection"] = sum(
        float(seed.get("seconds") or 0.0) for f in run.selection for seed in f.get("seeds", [])
    )
    return totals


def time_breakdown(runs: Sequence[RunData]) -> Figure:
    """Horizontal stacked bars: where each run's work time went."""
    fig = Figure(figsize=(7, 0.6 * len(runs) + 1.6))
    axis = fig.subplots()
    rows = [stage_seconds(run) for run in runs]
    stages = list(dict.fromkeys(stage for row in rows for stage in row))
    left = [0.0] * len(runs)
    for stage in stages:
        values = [row.get(stage, 0.0) for row in rows]
        axis.barh([r.label for r in runs], values, left=left, label=stage)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axis.set_xlabel("seconds of work (summed over workers)")
    axis.set_title("Where the time went")
    axis.legend(fontsize=8)
    return fig


def finalist_curves(run: RunData) -> Figure:
    """Validation metric over the full schedule for each finalist (mean over its seeds)."""
    fig = Figure(figsize=(6.5, 4))
    axis = fig.subplots()
    for record in run.selection:
        curves = [seed.get("val_curve") or [] for seed in record.get("seeds", [])]
        curves = [c for c in curves if c]
        if not curves:
            continue
        steps = [int(step) for step, _ in curves[0]]
        means = [
            statistics.fmean(float(c[i][1]) for c in curves if i < len(c))
            for i in range(len(steps))
        ]
        task = bool(record.get("task_loss"))
        label = _short(record.get("label", "?"), 48)
        style: dict[str, Any] = {"color": "blue", "linestyle": "--", "linewidth": 2} if task else {}
        axis.plot(steps, means, label=label, **style)
    axis.set_xlabel("training step")
    axis.set_ylabel("validation metric")
    axis.set_title(f"Final selection: {run.label}")
    axis.legend(fontsize=6)
    return fig


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- online adaptation ---------------------------------------------------------

#: Above this many weights (an ML3 network), the trajectory shows their relative change.
MAX_WEIGHT_LINES = 24


def online_trajectory(trace: Any, title: str) -> Figure:
    """Left: what adapted against the training step (each weight of a tree; a network's
    relative change ||phi_t - phi_0|| / ||phi_0||; the lr multiplier). Right: the
    meta-objective (the task loss on the next batch after each update), window means."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    steps = [int(step) for step, _ in trace["snapshots"]]
    values = torch.tensor([list(v) for _, v in trace["snapshots"]], dtype=torch.float64)
    if trace["adapts"] == "lr":
        left.plot(steps, values[:, 0], marker=".")
        left.set_ylabel("learning-rate multiplier")
    elif values.shape[1] <= MAX_WEIGHT_LINES:
        for i in range(values.shape[1]):
            left.plot(steps, values[:, i], label=f"phi[{i}]")
        left.set_ylabel("edge weight")
        left.legend(fontsize=6, ncol=2)
    else:
        change = (values - values[0]).norm(dim=1) / values[0].norm().clamp_min(1e-12)
        left.plot(steps, change, marker=".")
        left.set_ylabel(f"relative change of the {values.shape[1]} weights")
    left.set_xlabel("training step")
    left.set_title(title)
    curve = trace.get("meta_loss") or []
    right.plot([p[0] for p in curve], [p[1] for p in curve])
    right.set_xlabel("training step")
    right.set_ylabel("meta-objective (task loss, next batch)")
    return fig


def weights_at(loss: nn.Module, values: Sequence[float]) -> nn.Module:
    """A copy of the loss ``loss`` with its weights set to ``values`` (a snapshot)."""
    import copy

    at = copy.deepcopy(loss)
    weights: torch.Tensor = getattr(at, "weights")  # noqa: B009 (a WeightedLoss's vector)
    with torch.no_grad():
        weights.copy_(torch.as_tensor(list(values), dtype=weights.dtype))
    return at
