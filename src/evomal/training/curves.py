"""Per-step histories made small enough to record: window means at a fixed number of points."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Points a recorded per-step curve is reduced to.
CURVE_POINTS = 100


def downsample(history: Sequence[float], points: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """``(step, mean loss)`` over ``points`` equal windows of a per-step history."""
    n = len(history)
    if n == 0:
        return []
    size = max(1, math.ceil(n / points))
    out = []
    for start in range(0, n, size):
        window = history[start : start + size]
        out.append((start + len(window), float(sum(window) / len(window))))
    return out
