"""For whoever next has a GPU: does evomal agree with itself there, and what does it cost?

    python benchmarks/gpu_check.py                  # the first CUDA GPU, about 8 minutes at most
    python benchmarks/gpu_check.py --device cpu     # a dry run, the CPU standing in for the GPU

No network is needed: the task is MNIST-shaped random data
(``_common.mnist_shaped``) and the end-to-end search uses scikit-learn's
bundled digits. It

1. runs each stage (screen, local search, fitness, selection training) on
   fixed trees and seeds, on the device batched, on the device one by one
   and on the CPU one by one, with LeNet-5 and the ``mnist_lenet5`` preset
   at short lengths, and checks that they agree to float tolerance (stages,
   not whole searches: a search can legitimately diverge once a discrete GP
   choice flips). The batched stages run without their one-by-one fallback,
   so a batched path that fails on the device fails the check;
2. runs a tiny ``evomal search --device DEVICE`` end to end;
3. times each stage of the paper-budget MNIST/LeNet-5 candidate at K = 1, 8
   and 32 (``gpu_cost_model.py``) and prints the cost model's prediction of a
   paper-budget search beside the measurement;
4. writes one JSON (``--out``).

It exits 1 with a one-line message when the device is not there, and 1
after writing the JSON when a check disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import evomal.methods.finalists as finalists_module
import evomal.methods.stages as stages_module
from _common import mnist_shaped
from evomal.config import build_config
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.losses import LearnedLoss
from evomal.methods.finalists import FinalistJob, train_finalist, train_finalists
from evomal.methods.stages import (
    FitnessJob,
    ScreenJob,
    SearchJob,
    fitness,
    fitness_batch,
    optimise,
    optimise_batch,
    screen,
)
from gpu_cost_model import predict, time_stages

#: Trees every stage is checked on: cross-entropy, squared and absolute error, and a
#: tree with a protected log and a division (its edge weights move in the local search).
TREES = (
    "mul(-1, mul(y, log(fx)))",
    "square(sub(fx, y))",
    "abs(sub(y, fx))",
    "mul(-1, mul(y, log(div(fx, add(fx, 1)))))",
)

#: Stage lengths of the agreement checks (the timings use the preset's full lengths).
SHORT = [
    "filters.rejection_steps=100",
    "local_search.steps=5",
    "fitness.steps=60",
    "meta_test.steps=60",
]


def no_device_message(device: str) -> str | None:
    """Why ``device`` cannot be checked here, in one line, or ``None`` when it can."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        return (
            f"gpu_check: {device} is not available here (torch {torch.__version__} sees no "
            "CUDA GPU); run it on a machine with one, or pass --device cpu for a dry run"
        )
    if not device.startswith(("cuda", "cpu")):
        return f"gpu_check: unknown device {device!r}; use cuda, cuda:N or cpu"
    return None


def _strict(batched: Callable[[], list[Any]], single: Any, jobs: Sequence[Any]) -> list[Any]:
    """The batched stage with no one-by-one fallback: a failing batch fails the check."""
    return batched()


def _context(device: str, seed: int) -> EvaluationContext:
    config = build_config("mnist_lenet5", [f"execution.device={device}", f"seed={seed}", *SHORT])
    return EvaluationContext(ContextSpec((mnist_shaped().without_test(),), "lenet5", config))


def _close(a: Sequence[float], b: Sequence[float], atol: float, rtol: float) -> float:
    """The largest excess of ``|a - b|`` over ``atol + rtol * |b|`` (<= 0: they agree)."""
    if len(a) != len(b):
        return math.inf
    worst = -math.inf
    for x, y in zip(a, b, strict=True):
        if math.isnan(x) or math.isnan(y):  # a failed stage: both must have failed
            if not (math.isnan(x) and math.isnan(y)):
                return math.inf
            continue
        worst = max(worst, abs(x - y) - (atol + rtol * abs(y)))
    return worst if worst != -math.inf else 0.0


def stage_values(ctx: EvaluationContext, batched: bool) -> dict[str, list[list[float]]]:
    """Each stage's numbers for every tree: screen scores, searched phis, fitnesses, and
    a selection finalist's validation metric and loss curve."""
    documents = [LearnedLoss(t).to_dict() for t in TREES]
    out: dict[str, list[list[float]]] = {}
    if batched:
        scored = screen(ctx, ScreenJob(TREES))
    else:
        scored = [screen(ctx, ScreenJob((t,)))[0] for t in TREES]
    out["screen score"] = [[s.score if s.score is not None else math.nan] for s in scored]
    search_jobs = [SearchJob(t, tuple(s.phi)) for t, s in zip(TREES, scored, strict=True)]
    searched = (
        optimise_batch(ctx, search_jobs) if batched else [optimise(ctx, j) for j in search_jobs]
    )
    out["local search phi"] = [s.phi for s in searched]
    fitness_jobs = [FitnessJob(d) for d in documents]
    fits = fitness_batch(ctx, fitness_jobs) if batched else [fitness(ctx, j) for j in fitness_jobs]
    out["fitness"] = [[f.fitness if f.fitness is not None else math.nan] for f in fits]
    steps = ctx.config.selection_steps
    jobs = [FinalistJob(d, ctx.spec.seed, steps) for d in documents]
    runs = train_finalists(ctx, jobs) if batched else [train_finalist(ctx, j) for j in jobs]
    out["finalist validation"] = [[r.val_metric if r.val_metric is not None else math.nan]
                                  for r in runs]  # fmt: skip
    out["finalist loss curve"] = [[v for _, v in r.loss_curve] for r in runs]
    return out


#: (atol, rtol) per compared quantity. The screen's score and the validation metrics are
#: fractions of samples, so one sample flipped by rounding moves them by 1/n.
TOLERANCE = {
    "screen score": (0.05, 0.0),
    "local search phi": (1e-4, 1e-4),
    "fitness": (0.02, 0.0),
    "finalist validation": (0.02, 0.0),
    "finalist loss curve": (1e-4, 1e-3),
}


def compare(
    got: dict[str, list[list[float]]], want: dict[str, list[list[float]]]
) -> dict[str, dict[str, Any]]:
    """Per quantity: the largest excess over its tolerance, per tree, and whether all agree."""
    report = {}
    for name, (atol, rtol) in TOLERANCE.items():
        excess = [_close(a, b, atol, rtol) for a, b in zip(got[name], want[name], strict=True)]
        report[name] = {"excess": excess, "agree": all(e <= 0 for e in excess)}
    return report


def agreement(device: str, seed: int) -> dict[str, Any]:
    """The stages on ``device`` batched and one by one, and on the CPU one by one."""
    stages_module.batched_or_one_by_one = _strict  # type: ignore[assignment]
    finalists_module.batched_or_one_by_one = _strict  # type: ignore[assignment]
    on_device = _context(device, seed)
    batched = stage_values(on_device, batched=True)
    single = stage_values(on_device, batched=False)
    cpu = stage_values(_context("cpu", seed), batched=False)
    return {
        "batched_vs_one_by_one": compare(batched, single),
        "device_vs_cpu": compare(single, cpu),
        "values": {"batched": batched, "one_by_one": single, "cpu": cpu},
    }


def tiny_search(device: str) -> dict[str, Any]:
    """``evomal search --device DEVICE`` on digits, tiny, end to end (a subprocess)."""
    out = Path(tempfile.mkdtemp()) / "run"
    settings = ["gp.population_size=6", "gp.generations=2", "local_search.steps=3",
                "fitness.steps=50", "meta_test.steps=100", "selection.k=1",
                "execution.executor=serial"]  # fmt: skip
    command = [sys.executable, "-m", "evomal.cli", "search", "--task", "digits", "--model",
               "mlp", "--device", device, "--out", str(out)]  # fmt: skip
    for setting in settings:
        command += ["--set", setting]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    result: dict[str, Any] = {
        "command": " ".join(command),
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "ok": done.returncode == 0 and (out / "result.json").exists(),
    }
    if not result["ok"]:
        result["stderr_tail"] = done.stderr[-2000:]
    return result


def timings(device: str, sizes: Sequence[int]) -> dict[str, Any]:
    """Per-stage seconds of the paper-budget candidate for K at once, and the prediction."""
    args = argparse.Namespace(screen_steps=100, meta_steps=10, fitness_steps=50, screened=623,
                              searched=189, fitted=182, batch_finalists=False)  # fmt: skip
    config = build_config("mnist_lenet5", [f"execution.device={device}"])
    ctx = EvaluationContext(ContextSpec((mnist_shaped().without_test(),), "lenet5", config))
    stages = {k: time_stages(ctx, k, args) for k in sizes}
    return {"stages_seconds": stages, "predicted_minutes": predict(stages, args, config)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-timings", action="store_true", help="agreement and search only")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    args = parser.parse_args(argv)
    problem = no_device_message(args.device)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    start = time.perf_counter()
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    record: dict[str, Any] = {"device": args.device, "device_name": name,
                              "torch": torch.__version__}  # fmt: skip
    record["agreement"] = agreement(args.device, args.seed)
    for pair in ("batched_vs_one_by_one", "device_vs_cpu"):
        for quantity, found in record["agreement"][pair].items():
            status = "agree" if found["agree"] else "DISAGREE"
            print(f"{pair:>22}  {quantity:<20} {status}")
    record["search"] = tiny_search(args.device)
    print(f"tiny search on {args.device}: {'ok' if record['search']['ok'] else 'FAILED'} "
          f"({record['search']['seconds']} s)")  # fmt: skip
    if not args.skip_timings:
        record["timings"] = timings(args.device, args.k)
        print(f"{'K':>4}{'screen':>10}{'local search':>14}{'fitness':>10}{'finalist':>10}  (s)")
        for k, t in record["timings"]["stages_seconds"].items():
            print(f"{k:>4}{t['screen']:>10.2f}{t['local_search']:>14.2f}{t['fitness']:>10.2f}"
                  f"{t['finalist']:>10.2f}")  # fmt: skip
        predicted = record["timings"]["predicted_minutes"]
        print("cost model, paper-budget search (minutes): "
              + ", ".join(f"{k} {v:.1f}" for k, v in predicted.items()))  # fmt: skip
    record["seconds"] = round(time.perf_counter() - start, 1)
    checks = [found["agree"] for pair in ("batched_vs_one_by_one", "device_vs_cpu")
              for found in record["agreement"][pair].values()]  # fmt: skip
    record["ok"] = all(checks) and record["search"]["ok"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"wrote {args.out} ({record['seconds']} s): {'ok' if record['ok'] else 'FAILED'}")
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
