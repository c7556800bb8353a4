"""Label noise and class imbalance, drawn over a training pool before validation is carved.

The settings are a :class:`~evomal.config.Scenario`. Both corruptions are
functions of the original training pool and of sample indices only, never of
the run seed: the same settings give the same corrupted pool in every run, on
every executor, and the run seed only chooses which of its samples become
validation (:meth:`evomal.tasks.task.Task.from_tensors`).

* **Imbalance first, by true class.** Class c keeps
  ``floor(n_max * ratio ** (-c / (K - 1)))`` of its samples, at most all of
  them (Cao et al., NeurIPS 2019, whose ratios 10 and 100 are typical). The
  floor is computed in exact integer arithmetic (:func:`long_tail_counts`), so
  ``1000 * 10 ** -1`` keeps 100 samples, not the 99 a float would give. Which
  samples of a class are kept is fixed by a per-index key drawn from a
  generator seeded with :data:`SUBSAMPLE_SEED`, as Cao et al. shuffle each
  class with a fixed seed before taking its first samples.
* **Noise second.** Each sample of the original pool draws whether it flips
  (probability ``label_noise``) and an offset in ``1..K-1`` from a generator
  seeded with ``noise_seed``; ``symmetric`` noise moves a flipped label by that
  offset (uniform over the other classes), ``pair`` noise by one (c -> c + 1
  mod K). A sample's draws depend on its index alone, so they are the same
  whether or not imbalance removed other samples.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from evomal.config import Scenario
from evomal.errors import DataError

#: Seed of the per-index keys that choose which samples of a class imbalance keeps.
SUBSAMPLE_SEED = 0


def stream(seed: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose: the same seed gives unrelated streams for two purposes.

    Imbalance and noise both draw one number per pool index; from one shared
    stream the kept samples (smallest keys) would be exactly the flipped ones.
    """
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def long_tail_counts(counts: Sequence[int], ratio: float) -> list[int]:
    """Samples each class keeps: ``min(n_c, floor(n_max * ratio ** (-c / (K - 1))))``.

    ``n_max`` is the largest class count. The floor is exact: with ``ratio =
    p / q`` (the decimal the float prints as), the kept count ``m`` of class
    ``c`` is the largest integer with ``m ** (K-1) * p ** c <= n_max ** (K-1) * q ** c``.
    """
    k = len(counts)
    if k < 2 or ratio == 1.0:
        return [int(n) for n in counts]
    exact = Fraction(repr(float(ratio)))
    p, q = exact.numerator, exact.denominator
    n_max = max(int(n) for n in counts)
    out = []
    for c, n_c in enumerate(counts):
        power = k - 1
        bound = n_max**power * q**c

        def fits(m: int, c: int = c, power: int = power, bound: int = bound) -> bool:
            return m**power * p**c <= bound

        guess = math.floor(n_max * float(ratio) ** (-c / power))
        m = max(0, guess)
        while fits(m + 1):
            m += 1
        while m > 0 and not fits(m):
            m -= 1
        out.append(min(int(n_c), m))
    return out


def imbalance_keep(y: np.ndarray, ratio: float, n_classes: int) -> np.ndarray:
    """Pool indices (sorted) that a long-tailed pool of imbalance ``ratio`` keeps."""
    counts = np.bincount(y, minlength=n_classes)
    wanted = long_tail_counts(counts.tolist(), ratio)
    keys = stream(SUBSAMPLE_SEED, "imbalance").random(len(y))
    kept = []
    for c, m in enumerate(wanted):
        members = np.flatnonzero(y == c)
        kept.append(members[np.argsort(keys[members], kind="stable")[:m]])
    return np.sort(np.concatenate(kept)) if kept else np.arange(0)


def flip_labels(y: np.ndarray, rate: float, kind: str, n_classes: int, seed: int) -> np.ndarray:
    """Noisy labels for the whole pool ``y``: each flips with probability ``rate``."""
    rng = stream(seed, "label noise")
    flips = rng.random(len(y)) < rate
    offsets = rng.integers(1, n_classes, size=len(y)) if n_classes > 1 else np.zeros(len(y), int)
    moved = (y + (offsets if kind == "symmetric" else 1)) % n_classes
    return np.where(flips, moved, y).astype(y.dtype)


@dataclass(frozen=True)
class Corruption:
    """A corrupted pool: the kept pool indices, their (noisy) labels and their true labels."""

    keep: np.ndarray
    labels: np.ndarray
    clean: np.ndarray

    @property
    def flipped(self) -> np.ndarray:
        """Pool indices of the kept samples whose label was flipped."""
        return self.keep[self.labels != self.clean]


def corrupt(y: np.ndarray, scenario: Scenario, n_classes: int) -> Corruption:
    """Apply the scenario to a pool's labels ``y``: imbalance by true class, then noise."""
    y = np.asarray(y, dtype=np.int64)
    if scenario.corrupts and n_classes < 2:
        raise DataError("label noise and imbalance need at least two classes")
    keep = np.arange(len(y))
    if scenario.imbalance > 1.0:
        keep = imbalance_keep(y, scenario.imbalance, n_classes)
    noisy = y
    if scenario.label_noise > 0.0:
        noisy = flip_labels(y, scenario.label_noise, scenario.noise_kind, n_classes,
                            scenario.noise_seed)  # fmt: skip
    return Corruption(keep, noisy[keep], y[keep])


def split_record(labels: np.ndarray, clean: np.ndarray | None, n_classes: int) -> dict[str, Any]:
    """One split's realised scenario: class counts and, under noise, the flip rate."""
    record: dict[str, Any] = {
        "n": len(labels),
        "class_counts": np.bincount(labels, minlength=n_classes).tolist(),
    }
    if clean is not None:
        flipped = labels != clean
        record["flip_rate"] = float(flipped.mean()) if len(labels) else 0.0
        record["flipped"] = np.flatnonzero(flipped).tolist()
    return record
