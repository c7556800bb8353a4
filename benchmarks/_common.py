"""Shared pieces of the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evomal.tasks import Task


def mnist_shaped(n: int = 12_000) -> Task:
    """Random 28x28 grey images with 10 classes: LeNet-5's MNIST arithmetic, no download."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return Task.from_tensors(
        "mnist-shaped", "classification", x, y, x[:1000], y[:1000], standardise="none"
    )


def write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """Write a benchmark's rows as ``{"rows": [...]}`` JSON (creating the folder) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
