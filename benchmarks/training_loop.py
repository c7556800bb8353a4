"""Per-step cost of ``evomal.training.train`` against a bare PyTorch loop.

Both loops do the same arithmetic from the same initial weights: an
on-device permutation sampler, forward, cross-entropy, ``zero_grad``,
backward, ``SGD.step``. They are timed alternately in the same process
(``--repeats`` rounds, ours and bare in alternating order) and the ratio of
the medians is reported. Target: at most 1.05.

    python benchmarks/training_loop.py            # prints a table, writes JSON
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
import torch.nn.functional as F

from _common import mnist_shaped
from evomal.tasks import Task, get_task
from evomal.tasks.models import build_model
from evomal.training import SGDConfig, train
from evomal.training.loop import EpochSampler, make_generator


def bare_loop(
    model: torch.nn.Module, task: Task, steps: int, config: SGDConfig, batch: int
) -> float:
    """The floor: the minimal hand-written loop. Returns seconds."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    sampler = EpochSampler(len(task.train), batch, make_generator(0, task.device), task.device)
    x_all, y_all = task.train.x, task.train.y
    start = time.perf_counter()
    for _ in range(steps):
        idx = sampler.next()
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())  # one sync at the end, as train() does
    return time.perf_counter() - start


def ours(model: torch.nn.Module, task: Task, steps: int, config: SGDConfig, batch: int) -> float:
    result = train(model, "ce", task, steps, config, batch_size=batch, evaluate_val=False)
    return result.seconds


def run_case(name: str, task: Task, model_name: str, steps: int, repeats: int) -> dict[str, object]:
    config = SGDConfig(lr=0.01, momentum=0.9)
    init = build_model(model_name, task.input_shape, task.n_outputs, seed=0)
    timings: dict[str, list[float]] = {"evomal": [], "bare": []}
    runners = {"evomal": ours, "bare": bare_loop}
    for r in range(repeats + 1):
        order = ("evomal", "bare") if r % 2 == 0 else ("bare", "evomal")
        for which in order:
            seconds = runners[which](copy.deepcopy(init), task, steps, config, 128)
            if r > 0:  # round 0 warms up allocators and kernels
                timings[which].append(seconds / steps * 1e3)
    ours_ms = statistics.median(timings["evomal"])
    bare_ms = statistics.median(timings["bare"])
    return {
        "case": name,
        "steps_per_round": steps,
        "repeats": repeats,
        "evomal_ms_per_step": round(ours_ms, 4),
        "bare_ms_per_step": round(bare_ms, 4),
        "ratio": round(ours_ms / bare_ms, 4),
        "evomal_all_ms": [round(t, 4) for t in timings["evomal"]],
        "bare_all_ms": [round(t, 4) for t in timings["bare"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training_loop.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        run_case("mlp / digits", get_task("digits"), "mlp", 400, args.repeats),
        run_case("lenet5 / MNIST-shaped", mnist_shaped(), "lenet5", 60, args.repeats),
    ]
    print(f"{'case':<24}{'evomal ms/step':>16}{'bare ms/step':>14}{'ratio':>8}")
    for c in cases:
        print(
            f"{c['case']:<24}{c['evomal_ms_per_step']:>16}{c['bare_ms_per_step']:>14}{c['ratio']:>8}"
        )
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": meta, "cases": cases}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
