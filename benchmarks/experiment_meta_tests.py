"""An experiment cell's meta-tests: side by side on the process executor's workers, against
one after another in the calling process.

The losses are four of a zoo cell's rows (cross-entropy, label smoothing, focal, Poly-1)
meta-tested with LeNet-5 on MNIST-shaped random images (the arithmetic of a LeNet-5
experiment, no download), SGD with momentum, batch 128, ``--steps`` steps. An experiment's
cell runs its meta-tests side by side only when one is expected to take
``SIDE_BY_SIDE_SECONDS`` or more. Both ways go through the experiment's own meta-test
cache (``evomal.experiment._CachedMetaTest``), each with an empty cache:
``side_by_side`` calls ``prefetch`` (what ``evomal experiment`` does), then reads every
record; ``one_after_another`` meta-tests each loss in turn. It reports both wall times,
the ratio (one after another / side by side) and whether every record is the same (the
training results, timings aside).

    python benchmarks/experiment_meta_tests.py --steps 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import mnist_shaped, write_rows
from evomal.config import build_config
from evomal.experiment import _CachedMetaTest
from evomal.losses.io import load_any_loss
from evomal.runs.train_cache import TrainingCache

LOSSES = ["task", "label_smoothing:0.1", "focal:2", "poly1:1"]


def timed(losses: list[Any], config: Any, task: Any, side_by_side: bool) -> tuple[float, list]:
    """Wall seconds to meta-test ``losses`` in a fresh cache, and the records (untimed)."""
    with tempfile.TemporaryDirectory() as cache:
        tester = _CachedMetaTest(TrainingCache(cache), {"bench": 1}, task, "lenet5", config, 0)
        start = time.perf_counter()
        if side_by_side:
            tester.prefetch(losses)
        records = [tester(loss)[0] for loss in losses]
        seconds = time.perf_counter() - start
    return seconds, [{k: v for k, v in r.items() if k != "meta_test_seconds"} for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="meta-testing steps per loss")
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/experiment_meta_tests.json")
    )
    args = parser.parse_args()
    config = build_config("mnist_lenet5", [f"meta_test.steps={args.steps}",
                                           "execution.executor=process",
                                           f"execution.workers={args.workers}"])  # fmt: skip
    task = mnist_shaped()
    losses = [load_any_loss(name) for name in LOSSES]
    alone, alone_records = timed(losses, config, task, side_by_side=False)
    side, side_records = timed(losses, config, task, side_by_side=True)
    row = {
        "losses": len(losses),
        "steps": args.steps,
        "cores": os.cpu_count(),
        "one_after_another_seconds": round(alone, 1),
        "side_by_side_seconds": round(side, 1),
        "ratio": round(alone / side, 2),
        "same_records": alone_records == side_records,
        "machine": platform.processor() or platform.machine(),
    }
    print(row)
    write_rows(args.out, [row])


if __name__ == "__main__":
    main()
