"""``evomal report``: one page that shows what a search learned and why it works.

Built from run directories (and experiment directories) alone; nothing is
re-run. The sections follow the paper's Section 5: the best loss (raw, and
simplified under a time bound, in LaTeX), its shape against cross-entropy,
the meta-training curves, the filters' activity, the primitives in the top
losses, where the time went, the final selection's finalists with the hall
of fame, and the experiment table when an experiment directory is given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from evomal.errors import ConfigError
from evomal.files import read_json, write_text_atomic
from evomal.losses.io import loss_from_dict
from evomal.losses.learned import LearnedLoss
from evomal.methods.registry import tree_methods
from evomal.report import figures
from evomal.report.page import (
    Block,
    Code,
    Formula,
    Image,
    Paragraph,
    Section,
    Table,
    render_latex,
    to_html,
    write_markdown,
)
from evomal.report.sources import RunData, collect, load_cells
from evomal.report.tables import method_rows, table_cells
from evomal.runs.hall_of_fame import FameEntry, hall_of_fame
from evomal.symbolic.sympy_form import display_form

#: At most this many losses are drawn in the loss-shape figure.
MAX_SHAPES = 8


def build_report(
    paths: Sequence[str | os.PathLike[str]], *, top: int = 5, timeout: float = 10.0
) -> tuple[str, list[Section]]:
    """The report's title and sections for the runs under ``paths``."""
    runs, experiments = collect(paths)
    fame = {run.path: hall_of_fame(run.path, top, timeout) for run in runs}
    sections = [
        _overview(runs),
        _best_losses(runs, timeout),
        _loss_shape(runs),
        _meta_training(runs),
        _filters(runs),
        _primitives(runs, fame),
        _time(runs),
        _search_signal(runs),
        _finalists(runs, fame),
    ]
    sections += [_experiment(path) for path in experiments]
    names = sorted({str(run.spec.get("task", "?")) for run in runs})
    return f"evomal report: {', '.join(names)} ({len(runs)} runs)", sections


def write_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    top: int = 5,
    timeout: float = 10.0,
) -> tuple[Path, Path]:
    """Write ``out`` (HTML, self-contained) and its Markdown twin beside it; return both."""
    target = Path(out)
    if target.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {target} must end in .html (the Markdown twin goes beside it)")
    title, sections = build_report(paths, top=top, timeout=timeout)
    write_text_atomic(target, to_html(title, sections))
    markdown = write_markdown(target.with_suffix(".md"), title, sections)
    return target, markdown


# -- sections -----------------------------------------------------------------


def _overview(runs: list[RunData]) -> Section:
    rows = []
    for run in runs:
        result = run.result or {}
        returned = result.get("best_expression") or "-"
        if result.get("task_loss"):
            returned += " (the task loss)"
        rows.append(
            [
                run.label,
                str(run.spec.get("task", "?")),
                str(run.spec.get("model", "?")),
                str(len(run.generations)),
                "finished" if run.result is not None else "stopped",
                returned,
            ]
        )
    header = ["run", "task", "model", "generations", "state", "loss returned"]
    note = Paragraph(
        "Search fitness is a short training run's validation metric, a search signal; "
        "only a meta-test after full training (the experiment table, evomal test) is a result."
    )
    return Section("Runs", [Table(header, rows), note])


def _best_losses(runs: list[RunData], timeout: float) -> Section:
    blocks: list[Block] = []
    for i, run in enumerate(runs):
        if run.best_loss is None:
            continue
        loss = loss_from_dict(run.best_loss, f"{run.path}/best_loss.json")
        blocks.append(Paragraph(f"{run.label}: the loss it handed back, as saved"))
        blocks.append(Code(str(loss)))
        if isinstance(loss, LearnedLoss):
            form = display_form(loss.tree, run.kind, timeout)
            when = "simplified" if form.simplified else f"not simplified within {timeout:g} s"
            blocks.append(Paragraph(f"Weights phi omitted, {when} (paper Table 5 style):"))
            blocks.append(Formula(form.latex, render_latex(form.latex), f"best_{i}"))
    if not blocks:
        blocks.append(Paragraph("No run has handed back a loss yet."))
    return Section("The best loss", blocks)


def _modules(runs: list[RunData]) -> list[tuple[str, nn.Module]]:
    """The returned losses, and for a run that returned the task loss its best learned finalist."""
    seen: set[str] = set()
    losses = []
    for run in runs:
        documents = []
        if run.best_loss is not None:
            documents.append((run.label, run.best_loss))
        learned = [f for f in run.selection if not f.get("task_loss") and f.get("val_metric")]
        if run.result and run.result.get("task_loss") and learned:
            best = min(learned, key=lambda f: f["val_metric"])
            documents.append((f"{run.label}, best learned finalist", best["document"]))
        for label, document in documents:
            loss = loss_from_dict(document, f"{run.path}")
            key = str(loss)
            if key not in seen:
                seen.add(key)
                losses.append((label, loss))
    return losses[:MAX_SHAPES]


def _loss_shape(runs: list[RunData]) -> Section:
    kind = runs[0].kind
    losses = [(label, loss) for label, loss in _modules(runs) if _kind_of(loss) == kind]
    caption = (
        "Each returned loss (and, where a run returned the task loss, its best learned "
        "finalist) against the predicted probability of the true class (the other "
        "classes share the rest), cross-entropy dashed; each curve is shifted and scaled to "
        "run from its value at p = 0.99 (0) by its range, keeping its direction (paper Fig. 7)."
        if kind == "classification"
        else "Each returned loss against the prediction error, MSE dashed."
    )
    image = Image("loss_shape", figures.png(figures.loss_shape(losses, kind)), caption)
    return Section("Loss shape", [image])


def _kind_of(loss: nn.Module) -> str:
    return str(getattr(loss, "task", "classification"))


def _meta_training(runs: list[RunData]) -> Section:
    caption = "Best search fitness so far per generation, mean ± std over runs (paper Fig. 5)."
    return Section(
        "Meta-training",
        [Image("meta_training", figures.png(figures.meta_training_curves(runs)), caption)],
    )


def _filters(runs: list[RunData]) -> Section:
    gp = [r for r in runs if r.method in tree_methods()]
    if not gp:
        return Section("Filter activity", [Paragraph("No GP run (EvoMAL, GP-LFL, GLO) given.")])
    caption = (
        f"Candidates per generation by verdict, mean over {len(gp)} GP runs (paper Fig. 6): "
        "evaluated, reused from the equivalence cache or by gradient equivalence, rejected "
        "by the rejection protocol, or failed."
    )
    return Section(
        "Filter activity", [Image("filters", figures.png(figures.filter_activity(gp)), caption)]
    )


def _search_signal(runs: list[RunData]) -> Section:
    """Per run: how well the first-stage fitness ranks losses (``evomal fidelity``), and
    how many candidates violate TaylorGLO's invariant in each form."""
    rows = []
    for run in runs:
        checked = [e["invariant"] for e in run.events if e.get("invariant")]
        skipped = sum(1 for e in run.events if e.get("verdict") == "invariant")
        path = run.path / "fidelity.json"
        rho = "not measured"
        if path.is_file():
            data = read_json(path)
            low, high = data.get("ci95", [None, None])
            if data.get("spearman_rho") is not None and low is not None:
                rho = f"{data['spearman_rho']:.2f} [{low:.2f}, {high:.2f}], n = {data['sample']}"
        authors = sum(1 for c in checked if not c.get("authors", True))
        softmax = sum(1 for c in checked if not c.get("softmax", True))
        rows.append([run.label, rho, str(len(checked)), str(authors), str(softmax), str(skipped)])
    caption = Paragraph(
        "Fidelity: Spearman's rho between a candidate's first-stage fitness and its "
        "full-schedule validation metric, with its bootstrap 95% interval (`evomal fidelity "
        "RUN_DIR`). Invariant: candidates checked, how many violate TaylorGLO's invariant as "
        "its authors wrote it and in its softmax-correct form, and how many the "
        "`filters.invariant` filter skipped untrained."
    )
    header = ["run", "fidelity rho [95% CI]", "checked", "authors' form fails",
              "softmax form fails", "skipped"]  # fmt: skip
    return Section("Search signal", [caption, Table(header, rows)])


def _primitives(runs: list[RunData], fame: dict[Path, list[FameEntry]]) -> Section:
    expressions = [entry.expression for entries in fame.values() for entry in entries]
    counts = figures.primitive_counts(expressions)
    if not counts:
        return Section("Primitives", [Paragraph("The top losses use no primitive functions.")])
    caption = f"Primitive functions in the top {len(expressions)} losses (paper Fig. 8)."
    image = Image("primitives", figures.png(figures.primitive_frequencies(expressions)), caption)
    table = Table(["primitive", "uses"], [[n, str(c)] for n, c in counts.most_common()])
    return Section("Primitives", [image, table])


def _time(runs: list[RunData]) -> Section:
    per_run = [figures.stage_seconds(run) for run in runs]
    stages = list(dict.fromkeys(stage for row in per_run for stage in row))
    rows = [
        [run.label, *(f"{row.get(s, 0.0):.1f}" for s in stages), f"{sum(row.values()):.1f}"]
        for run, row in zip(runs, per_run, strict=True)
    ]
    caption = "Seconds of work per stage, summed over workers (events.jsonl, selection.json)."
    image = Image("time", figures.png(figures.time_breakdown(runs)), caption)
    return Section("Where the time went", [image, Table(["run", *stages, "total"], rows)])


def _finalists(runs: list[RunData], fame: dict[Path, list[FameEntry]]) -> Section:
    blocks: list[Block] = []
    for i, run in enumerate(runs):
        entries = fame[run.path]
        if run.selection:
            caption = (
                f"{run.label}: validation metric of each finalist over the full schedule "
                "(mean over selection seeds); the task loss dashed."
            )
            blocks.append(
                Image(f"finalists_{i}", figures.png(figures.finalist_curves(run)), caption)
            )
        if entries:
            blocks.append(Paragraph(f"{run.label}: hall of fame (best distinct losses)"))
            blocks.append(Table(*_fame_cells(entries)))
    if not blocks:
        blocks.append(Paragraph("No run reached the final selection."))
    return Section("Finalists and hall of fame", blocks)


def _fame_cells(entries: list[FameEntry]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "fitness", "size", "validation (selection)", "formula (phi omitted)"]
    rows = [
        [
            f"{e.rank}{' (returned)' if e.returned else ''}",
            f"{e.fitness:.4f}",
            "-" if e.size is None else str(e.size),
            "-" if e.val_metric is None else f"{e.val_metric:.4f}",
            e.formula,
        ]
        for e in entries
    ]
    return header, rows


def _experiment(path: Path) -> Section:
    records = load_cells(path)
    if not records:
        return Section(f"Experiment {path.name}", [Paragraph("No finished (method, seed) yet.")])
    metric = f"test {records[0].get('metric') or 'error rate'}"
    header, cells = table_cells(method_rows(records), metric)
    per_seed = [
        [
            str(r["method"]),
            str(r["seed"]),
            _number(r.get("test_metric")),
            "yes" if r.get("task_loss") else "no",
            str(r.get("expression") or "-"),
        ]
        for r in sorted(records, key=lambda r: (r["method"], r["seed"]))
    ]
    note = Paragraph(
        "Meta-tested after full training, from the same initial weights per seed. Each row is "
        "compared with the rivals chosen by validation (tuned cross-entropy and the zoo's pick "
        "when the zoo ran, else the baseline): a two-sided paired t-test over the seeds, "
        "Holm-adjusted over the whole table, with Welch's test beside it."
    )
    seeds = Table(["method", "seed", metric, "task loss returned", "loss"], per_seed)
    parts: list[Any] = [Table(header, cells), note, seeds]
    classes = _per_class_errors(records)
    if classes is not None:
        parts += [Paragraph("Test error of each class (meta-test of the loss each method "
                            "returned; the mean over seeds):"), classes]  # fmt: skip
    parts += _online(path, records)
    return Section(f"Experiment {path.name}", parts)


#: The snapshots of an online loss drawn in its shape figure.
SHAPE_POINTS = 4


def _online(path: Path, records: Sequence[dict[str, Any]]) -> list[Any]:
    """For each method with a loss that adapted online, one seed's meta-test: what adapted
    over training and, for an adapting loss, its shape at several points.

    The returned loss is drawn when it adapted (its first such seed); otherwise the best
    online finalist, which selection scored but did not return, from its own row, so a
    reader sees the trajectory whichever loss won.
    """
    blocks: list[Any] = []
    for method, seed, online, what in _online_picks(records):
        cell = path / method / f"seed-{seed}"
        trace = read_json(cell / str(online["trace"]), "online trace", ConfigError)
        name = f"online_{method}"
        caption = (f"{method}, seed {seed}: what adapted while {what} trained for the "
                   "meta-test schedule, and the meta-objective")  # fmt: skip
        fig = figures.online_trajectory(trace, f"{method}, seed {seed}")
        blocks.append(Image(name, figures.png(fig), caption))
        if trace["adapts"] != "loss":
            continue
        document = str(online.get("loss", "search/best_loss.json"))
        loss = loss_from_dict(read_json(cell / document, "loss", ConfigError))
        snapshots = trace["snapshots"]
        picks = sorted({round(i * (len(snapshots) - 1) / (SHAPE_POINTS - 1))
                        for i in range(SHAPE_POINTS)})  # fmt: skip
        shapes = [(f"step {snapshots[i][0]}", figures.weights_at(loss, snapshots[i][1]))
                  for i in picks]  # fmt: skip
        kind = _kind_of(loss)
        blocks.append(Image(f"{name}_shape", figures.png(figures.loss_shape(shapes, kind)),
                            f"{method}, seed {seed}: the shape of {what} at "
                            f"{len(shapes)} points of training"))  # fmt: skip
    return blocks


def _online_picks(
    records: Sequence[dict[str, Any]],
) -> list[tuple[str, int, dict[str, Any], str]]:
    """Per method: (method, seed, its online record, what it is) of the loss to draw."""
    returned: dict[str, tuple[int, dict[str, Any]]] = {}
    finalist: dict[str, tuple[int, dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        method, seed = str(r["method"]), int(r["seed"])
        if r.get("online") and method not in returned:
            returned[method] = (seed, r["online"])
        for row in r.get("rows") or []:
            if row.get("online") and method not in finalist:
                finalist[method] = (seed, row["online"])
    picks = [(m, s, o, "the returned loss") for m, (s, o) in returned.items()]
    picks += [(m, s, o, "the best online finalist (not returned)")
              for m, (s, o) in finalist.items() if m not in returned]  # fmt: skip
    return sorted(picks)


def _per_class_errors(records: Sequence[dict[str, Any]]) -> Table | None:
    """Per method, each class's test error averaged over the seeds (classification only)."""
    by_method: dict[str, list[list[float | None]]] = {}
    for r in records:
        per_class = (r.get("details") or {}).get("test_per_class_error")
        if per_class:
            by_method.setdefault(str(r["method"]), []).append(per_class)
    if not by_method:
        return None
    n = max(len(rows[0]) for rows in by_method.values())
    cells = []
    for method, rows in sorted(by_method.items()):
        means = []
        for c in range(n):
            values = [float(v) for row in rows if c < len(row) and (v := row[c]) is not None]
            means.append("-" if not values else f"{sum(values) / len(values):.3f}")
        cells.append([method, *means])
    return Table(["method", *(f"class {c}" for c in range(n))], cells)


def _number(value: Any) -> str:
    if value is None:
        return "diverged"
    value = float(value)
    return f"{value:.4f}" if math.isfinite(value) else str(value)
