"""The ``evomal`` command line: a thin layer over the Python API.

Errors a user can fix (bad input files, unknown names, missing data) are
printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import evomal

app = typer.Typer(
    name="evomal",
    help="Learn loss functions for PyTorch models with EvoMAL (GP + gradient-based local search).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn the errors a user can fix into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


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
def show(path: Path = typer.Argument(..., help="A loss file written by evomal (JSON).")) -> None:
    """Show a saved loss: its tree, weights, formula and LaTeX."""
    loss = evomal.LearnedLoss.load(path)
    console.print(str(loss), highlight=False)
    console.print(f"  latex:   {loss.latex()}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
