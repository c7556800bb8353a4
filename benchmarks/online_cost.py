"""Online loss learning's cost: an AdaLFL run against plain training of the same model.

Both are ``evomal.training.train`` on the same model from the same seed for the
same steps on the same batches, with ML3's loss network at its initial weights:
plain, and adapting online (the loss file's ``online`` field, as ``--method
adalfl`` returns it), which adds the one-step unrolled meta-gradient and an
Adam step on the loss network after every update. They are timed alternately
in one process (``--repeats`` rounds after a warm-up) and the ratio of the
medians (online / plain) is reported.
Target: at most 3x for an MLP and for LeNet-5.

    python benchmarks/online_cost.py            # prints a table, writes JSON
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from _common import mnist_shaped
from evomal.losses.document import OnlineSettings
from evomal.losses.neural import NeuralLoss, NeuralLossFunction
from evomal.tasks import Task, get_task
from evomal.training import SGDConfig, train


def plain(task: Task, model: str, loss: NeuralLoss, steps: int, config: SGDConfig,
          batch: int) -> float:  # fmt: skip
    start = time.perf_counter()
    train(model, loss, task, steps, config, batch_size=batch, seed=0, evaluate_val=False)
    return time.perf_counter() - start


def online(task: Task, model: str, loss: NeuralLoss, steps: int, config: SGDConfig,
           batch: int) -> float:  # fmt: skip
    adapting = copy.deepcopy(loss).adapting(OnlineSettings("loss", 1e-3, steps))
    start = time.perf_counter()
    result = train(model, adapting, task, steps, config, batch_size=batch, seed=0,
                   evaluate_val=False)  # fmt: skip
    assert result.online is not None and len(result.online.meta_losses) == steps
    return time.perf_counter() - start


def case(name: str, task: Task, model: str, steps: int, batch: int, repeats: int) -> dict:
    config = SGDConfig(lr=0.01, momentum=0.9)
    loss = NeuralLoss(params=NeuralLossFunction(task.kind).initial_params(0), task=task.kind)
    times: dict[str, list[float]] = {"plain": [], "online": []}
    for r in range(repeats + 1):
        order = ("plain", "online") if r % 2 == 0 else ("online", "plain")
        for which in order:
            t = (plain(task, model, loss, steps, config, batch) if which == "plain"
                 else online(task, model, loss, steps, config, batch))  # fmt: skip
            if r > 0:  # round 0 warms up
                times[which].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "case": name,
        "steps": steps,
        "batch": batch,
        "seconds": med,
        "rounds": times,
        "ratio": round(med["online"] / med["plain"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", choices=["mlp", "lenet5", "both"], default="both")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/online_cost.json"))
    args = parser.parse_args()
    cases = []
    if args.case in ("mlp", "both"):
        cases.append(case("mlp / mnist1d", get_task("mnist1d"), "mlp", args.steps, 64,
                          args.repeats))  # fmt: skip
    if args.case in ("lenet5", "both"):
        cases.append(case("lenet5 / MNIST-shaped", mnist_shaped(), "lenet5", args.steps // 4,
                          128, args.repeats))  # fmt: skip
    for c in cases:
        print(f"{c['case']:<24} plain {c['seconds']['plain']:.2f} s  online "
              f"{c['seconds']['online']:.2f} s  ratio {c['ratio']}x")  # fmt: skip
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": meta, "cases": cases}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
