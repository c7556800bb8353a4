"""Tests of an experiment's rows against its comparators: paired t, Welch, Holm.

Every method, and every tuned baseline, trains from the same seeds (same
initial weights and batches), so their test metrics pair up by seed: the
primary test is the two-sided paired t-test over the seeds both rows have
(``scipy.stats.ttest_rel``). Welch's test (``ttest_ind(equal_var=False)``),
which ignores the pairing, stays beside it. One table makes many
comparisons, so their p-values are adjusted together with Holm's step-down
method (Holm, Scandinavian Journal of Statistics, 1979), which controls the
family-wise error rate without assuming independence; raw and adjusted
values are both reported. A test that cannot be computed (fewer than two
pairs) counts in the family as p = 1, so that leaving it out never makes the
others look stronger.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Comparison:
    """One row against one comparator over the seeds both have."""

    row: str
    comparator: str
    pairs: int
    mean_difference: float | None  # row - comparator, mean over the paired seeds
    t_paired: float | None
    p_paired: float | None
    t_welch: float | None
    p_welch: float | None
    worse: int  # seeds on which the row is worse than the comparator (or diverged)
    p_holm: float | None = None


def paired_t(values: Sequence[float], others: Sequence[float]) -> tuple[float | None, float | None]:
    """Two-sided paired t-test of ``values - others``: (t, p), or Nones with under 2 pairs.

    Identical pairs (every difference 0) give t = 0, p = 1: no evidence of a
    difference. A constant non-zero difference has no variance to test: None.
    """
    if len(values) < 2 or len(values) != len(others):
        return None, None
    diffs = [a - b for a, b in zip(values, others, strict=True)]
    if all(d == 0 for d in diffs):
        return 0.0, 1.0
    if statistics.pvariance(diffs) == 0:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(values, others)
    return _finite(result.statistic), _finite(result.pvalue)


def welch_t(values: Sequence[float], others: Sequence[float]) -> tuple[float | None, float | None]:
    """Welch's two-sided t-test (unequal variances): (t, p), or Nones when it is undefined."""
    if len(values) < 2 or len(others) < 2:
        return None, None
    if statistics.pvariance(values) == 0 and statistics.pvariance(others) == 0:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(values, others, equal_var=False)
    return _finite(result.statistic), _finite(result.pvalue)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def holm(p_values: Sequence[float | None]) -> list[float]:
    """Holm-adjusted p-values, in the given order (a missing p counts as 1).

    With the m p-values sorted ascending, the i-th (from 1) is adjusted to
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``.
    """
    ps = [1.0 if p is None else float(p) for p in p_values]
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def compare(
    rows: Mapping[str, Mapping[int, float | None]], comparators: Sequence[str]
) -> list[Comparison]:
    """Every row against every comparator it is not, Holm-adjusted as one family.

    ``rows`` maps a row's key to its test metric per seed (``None``: diverged).
    Lower is better. A diverged seed counts as worse and is left out of the
    tests (they need numbers on both sides).
    """
    out = []
    for comparator in comparators:
        theirs = rows.get(comparator)
        if theirs is None:
            continue
        for key, mine in rows.items():
            if key == comparator:
                continue
            seeds = [s for s in mine if s in theirs]
            paired = [(float(mine[s]), float(theirs[s])) for s in seeds  # type: ignore[arg-type]
                      if _ok(mine[s]) and _ok(theirs[s])]  # fmt: skip
            worse = sum(not _ok(mine[s]) or (_ok(theirs[s]) and mine[s] > theirs[s])  # type: ignore[operator]
                        for s in seeds)  # fmt: skip
            a = [x for x, _ in paired]
            b = [y for _, y in paired]
            t, p = paired_t(a, b)
            tw, pw = welch_t(
                [float(v) for v in mine.values() if _ok(v)],  # type: ignore[arg-type]
                [float(v) for v in theirs.values() if _ok(v)],  # type: ignore[arg-type]
            )
            diff = statistics.fmean(x - y for x, y in paired) if paired else None
            out.append(Comparison(key, comparator, len(paired), diff, t, p, tw, pw, worse))
    adjusted = holm([c.p_paired for c in out])
    return [Comparison(**{**c.__dict__, "p_holm": h}) for c, h in zip(out, adjusted, strict=True)]


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
