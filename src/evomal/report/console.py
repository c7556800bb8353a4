"""What the command line shows: rich tables, lines and progress displays.

The CLI parses, calls the library and prints what these functions build;
nothing here trains or searches. Keeping the renderables here keeps ``cli.py``
to its job and lets the tests read a table without running a command.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from evomal.config import SearchConfig
from evomal.errors import LossFileError, RunDirectoryError
from evomal.events import EVALUATED, CandidateEvent, Event, FinalistEvent, GridEvent
from evomal.methods.loss_test import LossTest, SeedRun
from evomal.methods.registry import REGISTRY, method_spec
from evomal.runs.hall_of_fame import FameEntry
from evomal.training.loop import TrainResult

# -- progress -------------------------------------------------------------------------------


class SearchProgress:
    """A live progress bar over a search's events: generation, filter verdicts, best so far,
    then the selection stage's finalists."""

    def __init__(self, config: SearchConfig, progress: Progress) -> None:
        self.total = method_spec(config.method).generations(config)
        self.progress = progress
        self.handle: Any = None  # the bar appears with the first event, never before an error
        self.verdicts: Counter[str] = Counter()
        self.generation = 0
        self.best = "-"

    def __call__(self, event: Event) -> None:
        if self.handle is None:
            self.progress.start()
            self.handle = self.progress.add_task("search", total=self.total, info="starting")
        if isinstance(event, GridEvent):
            info = f"zoo grid {event.done}/{event.total} (parameter x lr cells)"
            self.progress.update(self.handle, total=event.total, completed=event.done, info=info)
            return
        if isinstance(event, FinalistEvent):
            record = event.record
            value = record["val_metric"]
            shown = "diverged" if value is None else f"{value:.4f}"
            info = f"selection {event.index + 1}/{event.total} | {record['label']}: val {shown}"
            self.progress.update(
                self.handle, total=event.total, completed=event.index + 1, info=info[:160]
            )
            return
        if isinstance(event, CandidateEvent):
            self.verdicts[event.outcome.verdict] += 1
            if event.outcome.pruned and event.outcome.verdict == EVALUATED:
                self.verdicts["pruned"] += 1
        else:
            self.generation = event.generation + 1
            best = event.best
            if best is not None and best.fitness is not None:
                self.best = f"{best.fitness:.4f} {best.label}"
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.verdicts.items()))
        info = f"gen {self.generation}/{self.total} | {counts} | best {self.best}"
        self.progress.update(self.handle, completed=self.generation, info=info[:160])


@contextlib.contextmanager
def search_progress(console: Console, config: SearchConfig) -> Iterator[SearchProgress]:
    """A search's progress display; it appears at the search's first event."""
    progress = Progress(
        TextColumn("[bold]search"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    try:
        yield SearchProgress(config, progress)
    finally:
        progress.stop()


@contextlib.contextmanager
def training_bar(console: Console, label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A transient bar over one training run; yields the ``progress(done, total)`` callback."""
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        handle = bar.add_task("train", total=total)
        yield lambda done, _total: bar.update(handle, completed=done)


class SeedReporter:
    """``evomal test``'s display: a bar per seed, a line per finished seed (its test metric
    and diagnostics), and each seed's curves to TensorBoard when a logger is given."""

    def __init__(self, console: Console, steps: int, logger: Any, out: Path | None) -> None:
        self.console, self.steps, self.logger, self.out = console, steps, logger, out
        self.bars = contextlib.ExitStack()
        self.val_every = max(1, steps // 100) if logger is not None else None

    def progress(self, seed: int) -> Callable[[int, int], None]:
        self.bars.close()
        return self.bars.enter_context(training_bar(self.console, f"seed {seed}", self.steps))

    def __call__(self, run: SeedRun, outcome: TrainResult | None) -> None:
        self.bars.close()
        if self.logger is not None and outcome is not None:
            self.logger.training(f"seed-{run.seed}", outcome)
        shown = "diverged" if run.test_metric is None else f"{run.test_metric:.4f}"
        done = "" if outcome is not None else f" (read back from {self.out})"
        text = f"seed {run.seed}: test {run.metric} {shown}{diagnostics_text(run.details)}{done}"
        self.console.print(text, highlight=False)

    def close(self, loss_text: str) -> None:
        self.bars.close()
        if self.logger is not None:
            self.logger.text("test/loss", loss_text)
            self.logger.close()


def summary_text(tested: LossTest) -> str:
    """``test error 0.1234 ± 0.0056`` over the seeds asked for, with how many diverged."""
    summary = tested.summary
    mean = "-" if summary.mean is None else f"{summary.mean:.4f}"
    std = "-" if summary.std is None else f"{summary.std:.4f}"
    diverged = f" ({summary.diverged} diverged)" if summary.diverged else ""
    return f"test {tested.metric} {mean} ± {std}{diverged}"


# -- a search's outcome -------------------------------------------------------------------


def finalists_table(selection: Sequence[Mapping[str, Any]], metric: str) -> Table:
    """The selection stage: each finalist, its role, search fitness and validation metric."""
    table = Table(title="Selection: finalists trained for the full schedule")
    table.add_column("#", justify="right")
    table.add_column("loss")
    table.add_column("role")
    table.add_column("search fitness", justify="right")
    factors = any(len(record.get("val_by_factor") or {}) > 1 for record in selection)
    if factors:
        table.add_column("lr factor", justify="right")
    table.add_column(f"validation {metric}", justify="right")
    for record in selection:
        fitness = record.get("search_fitness")
        value = record.get("val_metric")
        role = record.get("role", "task" if record.get("task_loss") else "learned")
        cells = [
            str(record["rank"]) + (" (returned)" if record.get("returned") else ""),
            record["label"],
            role,
            "-" if fitness is None else f"{fitness:.4f}",
        ]
        cells += [f"{record.get('lr_factor', 1.0):.3g}"] if factors else []
        cells += ["diverged" if value is None else f"{value:.4f}"]
        table.add_row(*cells)
    return table


def learned_line(result: Any) -> str:
    """Whether the returned loss is learned (equals no seed and no zoo member), in words."""
    if result.learned:
        return "learned: the returned loss equals no seed and no zoo member up to a positive scale"
    if result.baseline is not None:
        return f"not learned: the returned loss is the baseline {result.baseline}"
    if result.equals is not None:
        return (f"not learned: the returned tree equals the zoo member {result.equals} up to a "
                "positive scale")  # fmt: skip
    return "not learned: the returned loss is the task loss"


def returned_row_label(result: Any, loss: Any, task_kind: str) -> str:
    """How the meta-test table names a search's returned loss (its advice when learned)."""
    from evomal.losses.document import advice_of
    from evomal.losses.learned import task_loss_name

    if result.task_loss:
        return f"returned: {task_loss_name(task_kind)} (no learned loss beat it on validation)"
    label = "returned: " + (result.baseline or getattr(loss, "expression", str(loss)))
    advice = advice_of(loss)
    if advice is not None and result.baseline is None:
        label += f" ({advice.describe()})"
    return label


def meta_test_table(title: str, metric: str, rows: Sequence[tuple[str, Any]]) -> Table:
    """Validation and test metric per (label, training result) row."""
    table = Table(title=title)
    table.add_column("loss")
    table.add_column(f"validation {metric}", justify="right")
    table.add_column(f"test {metric}", justify="right")
    for name, outcome in rows:
        if outcome.diverged:
            table.add_row(name, "diverged", "diverged")
        else:
            table.add_row(name, f"{outcome.val_metric:.4f}", f"{outcome.test_metric:.4f}")
    return table


def hall_of_fame_table(entries: Sequence[FameEntry], run_dir: Path) -> Table:
    """A run's best distinct losses (``evomal show RUN_DIR``)."""
    table = Table(title=f"Best {len(entries)} distinct losses of {run_dir}")
    for column in ("", "fitness", "size", "validation (selection)", "formula (phi omitted)"):
        table.add_column(column, justify="left" if column.startswith("formula") else "right")
    for entry in entries:
        marker = " (returned)" if entry.returned else ""
        val = "-" if entry.val_metric is None else f"{entry.val_metric:.4f}"
        size = "-" if entry.size is None else str(entry.size)
        table.add_row(f"{entry.rank}{marker}", f"{entry.fitness:.4f}", size, val, entry.formula)
    return table


def run_lines(run_dir: Path, top: int, latex: Path | None) -> list[RenderableType]:
    """``evomal show RUN_DIR``: its best distinct losses; with ``latex``, also written there as
    a LaTeX table (the paper's Table 5)."""
    from evomal.files import write_text_atomic
    from evomal.runs.hall_of_fame import hall_of_fame, latex_table, returned_label

    entries = hall_of_fame(run_dir, top)
    if not entries:
        raise RunDirectoryError(f"{run_dir} has no evaluated losses yet")
    lines: list[RenderableType] = [
        hall_of_fame_table(entries, run_dir),
        "fitness: the search's short-horizon validation metric (lower is better)",
    ]
    returned = None if any(entry.returned for entry in entries) else returned_label(run_dir)
    if returned:
        lines.append(f"returned: {returned}")
    if latex is not None:
        write_text_atomic(latex, latex_table(entries))
        lines.append(f"LaTeX table written to {latex}")
    return lines


def loss_file_lines(path: Path, latex: Path | None = None) -> list[RenderableType]:
    """``evomal show FILE``: the loss (tree, weights, formula), its LaTeX form, and whether it
    is the task loss a search handed back."""
    from evomal.files import read_json
    from evomal.losses import load_loss
    from evomal.losses.document import online_of
    from evomal.losses.learned import LearnedLoss

    if latex is not None:
        raise LossFileError("--latex needs a run directory, not a loss file")
    loss: Any = load_loss(path)
    lines: list[RenderableType] = [str(loss)]
    if isinstance(loss, LearnedLoss):
        lines.append(f"  latex:   {loss.latex()}")
    online = online_of(loss)
    if online is not None:
        lines.append(f"  online:  {online.describe()}; these are its initial weights, every "
                     "training run adapts them afresh")  # fmt: skip
    metadata = read_json(path, "loss file", LossFileError).get("metadata") or {}
    if metadata.get("task_loss"):
        lines.append("  (the task loss itself: no learned loss beat it on validation)")
    return lines


def diagnostics_text(details: Mapping[str, Any]) -> str:
    """Meta-testing's extra numbers, in brackets: the other error metric and memorisation."""
    parts = []
    if details.get("test_balanced_error") is not None:
        parts.append(
            f"error {details['test_error']:.4f}, balanced {details['test_balanced_error']:.4f}"
        )
    remembered = details.get("memorisation")
    if remembered and remembered.get("memorised") is not None:
        parts.append(
            f"memorised {remembered['memorised']:.3f} of {remembered['flipped']} flipped labels"
        )
    return f" ({'; '.join(parts)})" if parts else ""


# -- what is built in ---------------------------------------------------------------------


def tasks_table() -> Table:
    """The built-in tasks (``evomal tasks``)."""
    from evomal.tasks.registry import DATASETS, EMBEDDED

    table = Table(title="Built-in tasks")
    for column in ("name", "kind", "source", "description"):
        table.add_column(column)
    for spec in DATASETS.values():
        source = "embedded" if spec.name in EMBEDDED else "data directory"
        table.add_row(spec.name, spec.kind, source, spec.description)
    return table


def losses_table() -> Table:
    """The zoo of known losses with their grids and references (``evomal losses``)."""
    from evomal.losses.zoo import FAMILIES

    table = Table(title="Known losses (--loss NAME or NAME:P1,P2; --method zoo tunes them)")
    for column in ("name", "kind", "parameters", "grid", "default", "loss", "reference"):
        table.add_column(column)
    for family in FAMILIES.values():
        grid = " ".join(",".join(f"{v:g}" for v in point) for point in family.grid)
        default = ",".join(f"{v:g}" for v in family.default)
        table.add_row(family.name, family.kind, family.valid_ranges or "-", grid or "-",
                      default or "-", family.label, family.reference)  # fmt: skip
    return table


def methods_table() -> Table:
    """The registered methods and their traits (``evomal methods``)."""
    table = Table(title="Methods (--method NAME; experiment --methods A,B,...)")
    for column in ("name", "label", "learns", "settings", "final selection"):
        table.add_column(column)
    for spec in REGISTRY.values():
        section = f"{spec.config_section}.*" if spec.config_section else "-"
        table.add_row(spec.name, spec.label, spec.summary, section, "yes" if spec.selects else "no")
    return table


def models_table() -> Table:
    """The built-in base models (``evomal models``)."""
    from evomal.tasks.models import MODELS

    table = Table(title="Base models")
    for column in ("name", "inputs", "description"):
        table.add_column(column)
    for name, spec in MODELS.items():
        table.add_row(name, "images [C, H, W]" if spec.image else "any (flattened)", spec.summary)
    return table


def demo_lines(seed: int) -> list[RenderableType]:
    """``evomal demo``: the cross-entropy tree against ``F.cross_entropy`` on random logits,
    then a random tree of the search space as a meta-loss network on the same logits."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from evomal.losses.learned import LearnedLoss
    from evomal.symbolic import gen_half_and_half

    torch.manual_seed(seed)
    logits, labels = torch.randn(256, 10), torch.randint(0, 10, (256,))
    ce = LearnedLoss.cross_entropy()
    table = Table(title="Cross-entropy as an expression tree")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("tree", ce.expression)
    table.add_row("formula", str(ce.to_sympy(weights=False)))
    table.add_row("tree loss on random logits", f"{ce(logits, labels).item():.6f}")
    table.add_row("F.cross_entropy", f"{F.cross_entropy(logits, labels).item():.6f}")
    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 2, 4)
    while tree.variables() != {"y", "fx"}:  # show a tree that is a real loss of (y, fx)
        tree = gen_half_and_half(rng, 2, 4)
    loss = LearnedLoss(tree, phi=torch.normal(1.0, 1e-3, (tree.n_edges,)))
    return [
        table,
        "\n[bold]A random tree from the search space, as a meta-loss network:[/]",
        str(loss),
        f"value on the same logits: {loss(logits, labels).item():.6g}",
        "\nNext: `evomal --help` lists every command.",
    ]
