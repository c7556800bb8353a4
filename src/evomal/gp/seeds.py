"""Known losses as trees, to seed the GP's generation 0 (``gp.seed_losses``).

Some zoo members are trees of evomal's own search space, up to a constant
factor that the tree's edge weights (phi) carry:

* ``ce``: cross-entropy, ``-y log(fx)`` summed over classes;
* ``mae``: ``|y - fx|`` summed over classes, twice the zoo's MAE (Ghosh et al.);
* ``brier``: ``(y - fx)^2`` summed over classes, the Brier score;
* ``gce``: ``y (1 - sqrt(fx))``, half of GCE at q = 0.5 (Zhang & Sabuncu);
* ``mse`` and ``l1`` for regression: ``(fx - y)^2`` and ``|y - fx|``.

Seeding them puts the losses that matter under label noise into the search
from the start, so that the search can build on them; elitism keeps a seed
only while its fitness ranks it well.

``auto`` resolves against ``selection.baselines``: the task loss alone with
``task`` (the paper plus evomal's task-loss seed), every tree-expressible zoo
member with ``zoo`` (the seeds a search against the zoo should start from).
"""

from __future__ import annotations

from collections.abc import Sequence

from evomal.errors import ConfigError
from evomal.losses.learned import CROSS_ENTROPY_EXPRESSION, SQUARED_ERROR_EXPRESSION
from evomal.symbolic.tree import Tree, parse

#: Per task kind, every zoo member that is a tree, by its zoo name, task loss first.
SEED_TREES: dict[str, dict[str, str]] = {
    "classification": {
        "ce": CROSS_ENTROPY_EXPRESSION,
        "mae": "abs(sub(y, fx))",
        "brier": "square(sub(y, fx))",
        "gce": "mul(y, sub(1, sqrt(fx)))",
    },
    "regression": {
        "mse": SQUARED_ERROR_EXPRESSION,
        "l1": "abs(sub(y, fx))",
    },
}

#: The name ``gp.seed_losses`` accepts for the task loss of either kind.
TASK = "task"
#: The special values of ``gp.seed_losses`` (besides a list of names).
AUTO, NONE = "auto", "none"


def task_name(kind: str) -> str:
    """The zoo name of the task loss of ``kind``."""
    return "ce" if kind == "classification" else "mse"


def check_names(names: Sequence[str]) -> None:
    """A one-line error for an unknown seed name: the config's own check
    (:data:`evomal.config.SEED_LOSS_NAMES`), for callers that skip the config."""
    from evomal.config import GPConfig

    GPConfig(seed_losses=tuple(names))


def seed_expressions(
    seed_losses: str | Sequence[str],
    kind: str,
    baselines: str,
    functions: Sequence[str],
) -> list[str]:
    """The trees generation 0 starts from, task loss first.

    ``seed_losses`` is ``auto``, ``none`` or a list of names. ``auto`` skips a
    member whose tree needs a primitive ``gp.functions`` leaves out; a member
    named explicitly raises instead, naming the primitive. Names of the other
    task kind are skipped, so one setting serves both kinds.
    """
    trees = SEED_TREES[kind]
    if not isinstance(seed_losses, str) and list(seed_losses) in ([AUTO], [NONE]):
        seed_losses = seed_losses[0]
    if isinstance(seed_losses, str):
        if seed_losses == NONE:
            return []
        if seed_losses != AUTO:
            raise ConfigError(f"gp.seed_losses must be 'auto', 'none' or a list of names, got "
                              f"{seed_losses!r}")  # fmt: skip
        names = list(trees) if baselines == "zoo" else [task_name(kind)]
        explicit = False
    else:
        check_names(seed_losses)
        names = [task_name(kind) if n == TASK else n for n in seed_losses]
        names = [n for n in dict.fromkeys(names) if n in trees]
        explicit = True
    out = []
    for name in names:
        tree = parse(trees[name])
        missing = _missing(tree, functions)
        if missing and explicit:
            raise ConfigError(
                f"gp.seed_losses: {name} is the tree {tree} and needs {', '.join(missing)}, "
                "which gp.functions leaves out; add it or drop the seed"
            )
        if not missing:
            out.append(str(tree))
    return out


def _missing(tree: Tree, functions: Sequence[str]) -> list[str]:
    from evomal.symbolic.primitives import PRIMITIVES

    used = dict.fromkeys(n for n in tree.nodes if n in PRIMITIVES)
    return [n for n in used if n not in functions]
