"""Fidelity: does the search's short fitness rank candidates as full training does?

A search scores each candidate by a short training run (its *first-stage*
fitness) and hands the best on. Where the loss matters (noisy labels), that
short horizon can rank the losses that end best last. Fidelity measures it:
the Spearman rank correlation between the first-stage fitness and the
validation metric after the meta-testing schedule, over a **uniform random
sample** of the run's evaluated candidates (the top of the ranking alone
would restrict the range and distort rho), each retrained from a fresh
training seed that the search never used. A bootstrap over the sampled
candidates gives a 95% interval.

The first-stage fitness is the fitness the candidate's event records: for a
candidate stopped by successive halving, its metric at the rung. A scheme
that rescores some candidates at the full horizon is not counted as raising
rho on them: their first-stage number is what enters.

Every retrained candidate is one resumable cell under ``RUN_DIR/fidelity/``;
the summary is ``RUN_DIR/fidelity.json`` (and ``fidelity.md``, ``fidelity.png``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evomal.analysis.cells import CellStore, Progress
from evomal.errors import ConfigError, RunDirectoryError
from evomal.events import EVALUATED
from evomal.files import write_json_atomic, write_text_atomic
from evomal.losses.learned import LearnedLoss
from evomal.methods.meta_test import training_settings
from evomal.methods.registry import tree_methods
from evomal.runs.store import RunStore
from evomal.training.loop import train

#: The fewest candidates a rank correlation is reported over.
MIN_SAMPLE = 30

#: Added to the run seed to give the retraining a seed the search never trained from
#: (its fitness and selection use the run seed and the next few).
FRESH_SEED_OFFSET = 1_000

#: Bootstrap resamples for the interval.
RESAMPLES = 5_000

#: Methods whose events carry a tree and its weights.


@dataclass(frozen=True)
class FidelityResult:
    """Rank correlation of first-stage fitness with full-schedule validation, and its sample."""

    rho: float | None
    low: float | None
    high: float | None
    points: tuple[dict[str, Any], ...]
    train_seed: int
    steps: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "spearman_rho": self.rho,
            "ci95": [self.low, self.high],
            "sample": len(self.points),
            "train_seed": self.train_seed,
            "steps": self.steps,
            "points": list(self.points),
        }


def evaluated_candidates(store: RunStore) -> list[dict[str, Any]]:
    """The run's evaluated candidates, one per equivalence key (its first evaluation)."""
    seen: set[str] = set()
    out = []
    for event in store.read_events():
        fitness = event.get("fitness")
        if event.get("verdict") != EVALUATED or fitness is None or not math.isfinite(fitness):
            continue
        key = event.get("key") or event["expression"]
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (average ranks for ties); None when either side is constant."""
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    value = float(stats.spearmanr(x, y).statistic)
    return value if math.isfinite(value) else None


def bootstrap_interval(
    x: Sequence[float], y: Sequence[float], seed: int = 0, resamples: int = RESAMPLES
) -> tuple[float | None, float | None]:
    """The 2.5% and 97.5% percentiles of rho over resamples of the (x, y) pairs."""
    rng = np.random.default_rng(seed)
    xs, ys = np.asarray(x), np.asarray(y)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, len(xs), len(xs))
        rho = spearman(xs[rows].tolist(), ys[rows].tolist())
        if rho is not None:
            values.append(rho)
    if not values:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def fidelity(
    run_dir: str | os.PathLike[str],
    sample: int,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> FidelityResult:
    """Retrain a uniform random sample of ``sample`` evaluated candidates; rho and its interval.

    ``seed`` draws the sample (and the bootstrap). Resumable: each retrained
    candidate is written as it finishes, and a re-run skips it.
    """
    from evomal.runs.tasks import task_from_record

    if sample < MIN_SAMPLE:
        raise ConfigError(
            f"--sample must be at least {MIN_SAMPLE}: a rank correlation over fewer "
            "candidates is too noisy to read"
        )
    root = Path(run_dir)
    store = RunStore(root)
    config = store.load_config()
    if config.method not in tree_methods():
        raise RunDirectoryError(
            f"fidelity reads trees from a run's events: {root} is a {config.method} run; "
            f"use a run of {', '.join(tree_methods())}"
        )
    candidates = evaluated_candidates(store)
    if len(candidates) < sample:
        raise RunDirectoryError(
            f"{root} has {len(candidates)} distinct evaluated candidates, fewer than "
            f"--sample {sample}; use a smaller sample (at least {MIN_SAMPLE}) or a longer search"
        )
    spec = store.load_spec()
    search_view = task_from_record(spec, config, data_dir=data_dir).without_test()
    chosen = sorted(np.random.default_rng(seed).choice(len(candidates), sample, replace=False))
    train_seed = config.seed + FRESH_SEED_OFFSET
    cells = CellStore(root / "fidelity")
    say = progress or (lambda message: None)
    points = []
    for n, index in enumerate(chosen, start=1):
        event = candidates[int(index)]
        loss = LearnedLoss(
            event["expression"], event["phi"], search_view.kind, config.gp.output_activation,
            scale=event.get("scale") or 1.0,
        )  # fmt: skip

        def run(loss: LearnedLoss = loss) -> dict[str, Any]:
            optimizer, every = training_settings(loss, config)
            trained = train(
                spec["model"], loss, search_view, config.meta_test.steps, optimizer,
                batch_size=config.meta_test.batch_size, seed=train_seed,
                device=config.execution.device, model_options=dict(config.model_options),
                early_stopping=every,
            )  # fmt: skip
            return {"val_metric": None if trained.diverged else trained.val_metric}

        key = str(event.get("key") or event["expression"])
        record = cells.get_or_run(key, "full", train_seed, run)
        points.append({
            "key": key, "expression": event["expression"], "generation": event["generation"],
            "fitness": event["fitness"], "pruned": bool(event.get("pruned")),
            "val_metric": record["val_metric"],
        })  # fmt: skip
        say(f"fidelity {n}/{sample}: {event['expression']} fitness {event['fitness']:.4f}, "
            f"full-schedule validation {_fmt(record['val_metric'])}")  # fmt: skip
    return _summarise(points, train_seed, config.meta_test.steps, seed)


def _summarise(
    points: list[dict[str, Any]], train_seed: int, steps: int, seed: int
) -> FidelityResult:
    """Rho over the points; a candidate that diverged in full training ranks last."""
    finite = [p["val_metric"] for p in points if p["val_metric"] is not None]
    worst = (max(finite) if finite else 0.0) + 1.0
    x = [float(p["fitness"]) for p in points]
    y = [worst if p["val_metric"] is None else float(p["val_metric"]) for p in points]
    rho = spearman(x, y)
    low, high = bootstrap_interval(x, y, seed)
    return FidelityResult(rho, low, high, tuple(points), train_seed, steps)


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4f}"


def write_fidelity(run_dir: str | os.PathLike[str], result: FidelityResult) -> Path:
    """``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` in the run directory."""
    root = Path(run_dir)
    write_json_atomic(root / "fidelity.json", result.as_dict())
    interval = "-" if result.low is None else f"[{result.low:.3f}, {result.high:.3f}]"
    rho = "-" if result.rho is None else f"{result.rho:.3f}"
    lines = [
        f"Spearman rho between first-stage search fitness and validation after "
        f"{result.steps} steps (fresh training seed {result.train_seed}), over a uniform "
        f"sample of {len(result.points)} evaluated candidates: **{rho}** "
        f"(bootstrap 95% interval {interval}).",
        "",
        "| generation | fitness | full-schedule validation | loss |",
        "| --- | --- | --- | --- |",
    ]
    for p in sorted(result.points, key=lambda p: p["fitness"]):
        lines.append(f"| {p['generation']} | {p['fitness']:.4f} | {_fmt(p['val_metric'])} | "
                     f"`{p['expression']}` |")  # fmt: skip
    write_text_atomic(root / "fidelity.md", "\n".join(lines) + "\n")
    _plot(root / "fidelity.png", result)
    return root / "fidelity.json"


def _plot(path: Path, result: FidelityResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    points = [p for p in result.points if p["val_metric"] is not None]
    axes.scatter([p["fitness"] for p in points], [p["val_metric"] for p in points], s=14)
    axes.set_xlabel("first-stage search fitness")
    axes.set_ylabel(f"validation after {result.steps} steps")
    rho = "-" if result.rho is None else f"{result.rho:.2f}"
    axes.set_title(f"Fidelity: Spearman rho = {rho}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
