"""Per-candidate cost by stage (filters, local search, fitness) against the floor.

The floor is a minimal hand-written PyTorch version of each stage doing the
same arithmetic: the same losses, models, batches, optimisers and step
counts, with none of evomal's machinery (evaluation context, fault
isolation, finiteness checks, bookkeeping). evomal's stage functions and the
floor run alternately in the same process; the table reports medians over
the rounds, the per-stage ratios and the per-candidate ratio (target <= 1.05).

    python benchmarks/candidate_cost.py               # both cases
    python benchmarks/candidate_cost.py --case mlp    # one case

Step counts are reduced (``--meta-steps``, ``--fitness-steps``); both sides
scale linearly with them, and the JSON also gives the per-candidate time
extrapolated to the paper's S_meta = 250 and S_testing = 500.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from _common import mnist_shaped
from evomal.config import build_config
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.losses import LearnedLoss
from evomal.meta.local_search import initial_phi, meta_step_seeds
from evomal.methods.stages import (
    FitnessJob,
    ScreenJob,
    SearchJob,
    fitness,
    optimise,
    screen,
)
from evomal.symbolic import compile_tree
from evomal.tasks import Task, get_task
from evomal.tasks.models import build_model
from evomal.training.loop import EpochSampler, make_generator

TREE = "sub(mul(-1, mul(y, log(fx))), mul(fx, square(sub(fx, y))))"


# -- floors: the same arithmetic, written by hand ------------------------------------


def floor_filters(ctx: EvaluationContext, loss: Any, phi: torch.Tensor) -> float:
    probe = ctx.probes[0]
    f = ctx.config.filters
    start = time.perf_counter()
    pred = probe.predictions.clone().requires_grad_(True)
    opt = torch.optim.Adam([pred], lr=f.rejection_lr)
    for _ in range(f.rejection_steps):
        value = loss(pred, probe.targets, phi, "sum")
        opt.zero_grad()
        value.backward()
        opt.step()
    (pred.argmax(1) != probe.targets).float().mean().item()
    p2 = probe.predictions.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(p2, probe.targets, phi, "sum"), p2)
    g.norm(dim=1).tolist()
    return time.perf_counter() - start


def floor_local_search(ctx: EvaluationContext, loss: Any, phi0: torch.Tensor) -> float:
    learner = ctx.learners[0]
    task, ls = learner.task, ctx.config.local_search
    phi = phi0.clone().requires_grad_(True)
    opt = torch.optim.Adam([phi], lr=ls.meta_lr)
    sampler = EpochSampler(
        len(task.train),
        ctx.config.fitness.batch_size,
        make_generator(ctx.spec.seed, task.device),
        task.device,
    )
    template = learner.template
    seeds = meta_step_seeds(ctx.spec.seed, ls.steps)
    start = time.perf_counter()
    for step in range(ls.steps):
        model = build_model(
            learner.model,
            task.input_shape,
            task.n_outputs,
            seed=seeds[step],
            validate=False,
            **learner.options,
        )
        params = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
        buffers = dict(model.named_buffers())
        idx = sampler.next()
        x, y = task.train.x[idx], task.train.y[idx]
        idx2 = sampler.next()
        x2, y2 = task.train.x[idx2], task.train.y[idx2]
        inner = loss(functional_call(template, (params, buffers), (x,)), y, phi)
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
        new = {k: p - ctx.base_lr * g for (k, p), g in zip(params.items(), grads, strict=True)}
        outer = F.cross_entropy(functional_call(template, (new, buffers), (x2,)), y2)
        (phi.grad,) = torch.autograd.grad(outer, phi)
        opt.step()
    phi.detach().tolist()
    return time.perf_counter() - start


def floor_fitness(ctx: EvaluationContext, criterion: LearnedLoss) -> float:
    learner = ctx.learners[0]
    task = learner.task
    start = time.perf_counter()
    model = build_model(
        learner.model,
        task.input_shape,
        task.n_outputs,
        seed=ctx.spec.seed,
        validate=False,
        **learner.options,
    )
    t = ctx.config.fitness
    opt = torch.optim.SGD(model.parameters(), lr=t.optimizer.lr, momentum=t.optimizer.momentum)
    sampler = EpochSampler(
        len(task.train), t.batch_size, make_generator(ctx.spec.seed, task.device), task.device
    )
    for _ in range(ctx.config.fitness.steps):
        idx = sampler.next()
        value = criterion(model(task.train.x[idx]), task.train.y[idx])
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        (model(task.val.x).argmax(1) != task.val.y).float().mean().item()
    return time.perf_counter() - start


# -- evomal's stages ---------------------------------------------------------------


def ours(ctx: EvaluationContext) -> dict[str, float]:
    """One candidate through evomal's stages, in the paper's order (screen after the search)."""
    start = time.perf_counter()
    (prepared,) = screen(ctx, ScreenJob((TREE,), reject=False))
    searched = optimise(ctx, SearchJob(TREE, tuple(prepared.phi)))
    (screened,) = screen(
        ctx, ScreenJob((TREE,), (tuple(searched.phi),), (searched.scale,), True, True)
    )
    doc = LearnedLoss(TREE, searched.phi, "classification").to_dict()
    scored = fitness(ctx, FitnessJob(doc))
    wall = time.perf_counter() - start
    return {
        "filters": prepared.seconds + screened.seconds,
        "local_search": searched.seconds,
        "fitness": scored.seconds,
        "candidate": wall,
    }


def floor(ctx: EvaluationContext) -> dict[str, float]:
    start = time.perf_counter()
    loss = compile_tree(TREE)
    phi = initial_phi(loss.n_weights, 1e-3, 0)
    search = floor_local_search(ctx, loss, phi)
    screen = floor_filters(ctx, loss, phi)  # the paper's order: screen after the local search
    fit = floor_fitness(ctx, LearnedLoss(TREE, phi.tolist(), "classification"))
    wall = time.perf_counter() - start
    return {"filters": screen, "local_search": search, "fitness": fit, "candidate": wall}


def run_case(name: str, task: Task, model: str, args: argparse.Namespace) -> dict[str, Any]:
    config = build_config(
        "mnist_lenet5",
        [
            f"local_search.steps={args.meta_steps}",
            f"fitness.steps={args.fitness_steps}",
            f"filters.rejection_steps={args.rejection_steps}",
            "filters.screening=after",
            "execution.batch_candidates=1",
        ],
    )
    ctx = EvaluationContext(ContextSpec((task.without_test(),), model, config))
    ctx.probes  # noqa: B018 - build the probe outside the timed region (once per run)
    runs: dict[str, list[dict[str, float]]] = {"evomal": [], "floor": []}
    for r in range(args.repeats + 1):
        order = ("evomal", "floor") if r % 2 == 0 else ("floor", "evomal")
        for which in order:
            timing = ours(ctx) if which == "evomal" else floor(ctx)
            if r > 0:
                runs[which].append(timing)
    stages = ("filters", "local_search", "fitness")
    med = {
        w: {s: statistics.median(t[s] for t in runs[w]) for s in (*stages, "candidate")}
        for w in runs
    }
    total = {w: med[w]["candidate"] for w in med}
    scale = {
        "filters": 1.0,
        "local_search": 250 / args.meta_steps,
        "fitness": 500 / args.fitness_steps,
    }
    paper = {w: sum(med[w][s] * scale[s] for s in stages) for w in med}
    return {
        "case": name,
        "meta_steps": args.meta_steps,
        "fitness_steps": args.fitness_steps,
        "seconds": {w: {s: round(v, 4) for s, v in med[w].items()} for w in med},
        "stage_ratio": {s: round(med["evomal"][s] / med["floor"][s], 3) for s in stages},
        "note": "candidate = wall time of one whole candidate, compile and checks included",
        "candidate_ratio": round(total["evomal"] / total["floor"], 3),
        "paper_settings_seconds_per_candidate": {w: round(v, 2) for w, v in paper.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["mlp", "lenet5", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--meta-steps", type=int, default=50)
    parser.add_argument("--fitness-steps", type=int, default=200)
    parser.add_argument("--rejection-steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/candidate_cost.json"))
    args = parser.parse_args()
    cases = []
    if args.case in ("mlp", "both"):
        cases.append(run_case("mlp / digits", get_task("digits"), "mlp", args))
    if args.case in ("lenet5", "both"):
        cases.append(run_case("lenet5 / MNIST-shaped", mnist_shaped(), "lenet5", args))
    print(f"{'case':<24}{'stage':<14}{'evomal s':>10}{'floor s':>10}{'ratio':>8}")
    for c in cases:
        for stage, ratio in c["stage_ratio"].items():
            print(
                f"{c['case']:<24}{stage:<14}{c['seconds']['evomal'][stage]:>10.3f}"
                f"{c['seconds']['floor'][stage]:>10.3f}{ratio:>8.3f}"
            )
        print(f"{c['case']:<24}{'candidate':<14}{'':>20}{c['candidate_ratio']:>8.3f}")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": meta, "cases": cases}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
