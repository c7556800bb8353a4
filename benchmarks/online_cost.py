"""Online loss learning's cost: an AdaLFL run against plain training of the same model.

Both are ``evomal.training.train`` on the same model from the same seed for the
same steps on the same batches, with ML3's loss network at its initial weights:
plain, and adapting online (the loss file's ``online`` field, as ``--method
adalfl`` returns it), which adds the one-step unrolled meta-gradient and an
Adam step on the loss network after every update. They are timed alternately
in one process (``--repeats`` rounds after a warm-up) and the ratio of the
medians (online / plain) is reported.
Target: at most 3x for an MLP and for LeNet-5.

Another approach is measured beside it (``online_jvp``): the same algorithm
with the meta-gradient taken in forward mode instead of by differentiating
through the update (and without the library's shared forward pass). For one
step of SGD with momentum (buffer carried, detached), theta' depends on phi
only through the gradient g = J^T s(phi), where J is the model's Jacobian on
the batch and s = dM_phi/dy_pred, so dL(theta')/dphi = -lr * c * d<s(phi), J
v>/dphi with v = grad L(theta') and c = 1 (1 + momentum with Nesterov). J v is
one forward-mode pass (``torch.func.jvp``); no double backward through the
model is needed. Before its time counts, the run checks that after 20 steps it
ends at the library's phi (same seeds and batches; rtol 1e-3).

``online_same`` is the library's run with ``OnlineSettings.batch="same"`` (the
paper's Algorithm 2: each meta step scores the batch its update trained on),
which cannot share the next update's forward pass.

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
from torch.func import functional_call, jvp

from _common import mnist_shaped
from evomal.losses.document import OnlineSettings
from evomal.losses.neural import NeuralLoss, NeuralLossFunction
from evomal.tasks import Task, get_task
from evomal.tasks.models.source import resolve_model
from evomal.training import SGDConfig, train
from evomal.training.loop import TrainBatches
from evomal.training.metrics import task_loss
from evomal.training.unrolled_sgd import UnrolledSGD


def plain(task: Task, model: str, loss: NeuralLoss, steps: int, config: SGDConfig,
          batch: int) -> float:  # fmt: skip
    start = time.perf_counter()
    train(model, loss, task, steps, config, batch_size=batch, seed=0, evaluate_val=False)
    return time.perf_counter() - start


def online(task: Task, model: str, loss: NeuralLoss, steps: int, config: SGDConfig,
           batch: int, scored: str = "next") -> float:  # fmt: skip
    adapting = copy.deepcopy(loss).adapting(OnlineSettings("loss", 1e-3, steps, scored))
    start = time.perf_counter()
    result = train(model, adapting, task, steps, config, batch_size=batch, seed=0,
                   evaluate_val=False)  # fmt: skip
    assert result.online is not None and len(result.online.meta_losses) == steps
    return time.perf_counter() - start


def online_jvp(task: Task, model: str, loss: NeuralLoss, steps: int, config: SGDConfig,
               batch: int) -> tuple[float, torch.Tensor]:  # fmt: skip
    """The second approach: the same online run, its meta-gradient in forward mode."""
    module = resolve_model(model).build(task.input_shape, task.n_outputs, seed=0).to(task.device)
    module.train()
    buffers = dict(module.named_buffers())
    params = {k: v.detach().clone() for k, v in module.named_parameters()}
    phi = loss.weights.detach().clone().requires_grad_(True)
    adam = torch.optim.Adam([phi], lr=1e-3)
    rule = UnrolledSGD.from_config(config)
    c = 1 + rule.momentum if rule.nesterov else 1.0
    batches, momentum = TrainBatches(task, batch, 0), None

    def forward(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(module, (p, buffers), (x,))

    start = time.perf_counter()
    for _ in range(steps):
        (x, y), (nx, ny) = batches.next(), batches.peek()
        leaf = {k: v.requires_grad_(True) for k, v in params.items()}
        y_pred = forward(leaf, x)
        detached = y_pred.detach().requires_grad_(True)
        value = loss.loss_fn(detached, y, phi, loss.reduction)
        (s,) = torch.autograd.grad(value, detached, create_graph=True)  # a function of phi
        grads = torch.autograd.grad(y_pred, list(leaf.values()), grad_outputs=s.detach())
        stepped, momentum = rule.step({k: v.detach() for k, v in leaf.items()}, list(grads),
                                      momentum)  # fmt: skip
        moved = {k: v.requires_grad_(True) for k, v in stepped.items()}
        meta = task_loss(task.kind, forward(moved, nx), ny)
        v = dict(zip(moved, torch.autograd.grad(meta, list(moved.values())), strict=True))
        at_x = lambda p, x=x: forward(p, x)  # noqa: E731
        _, u = jvp(at_x, ({k: t.detach() for k, t in leaf.items()},), (v,))
        (phi.grad,) = torch.autograd.grad((s * u).sum(), phi)
        phi.grad.mul_(-rule.lr * c)
        adam.step()
        params = {k: t.detach() for k, t in stepped.items()}
    return time.perf_counter() - start, phi.detach()


#: Steps over which the forward-mode run must end at the library's phi. Over longer runs
#: float32 rounding, which Adam's normalised steps amplify on near-zero gradients, drifts.
CHECK_STEPS = 20


def case(name: str, task: Task, model: str, steps: int, batch: int, repeats: int) -> dict:
    config = SGDConfig(lr=0.01, momentum=0.9)
    loss = NeuralLoss(params=NeuralLossFunction(task.kind).initial_params(0), task=task.kind)
    check = min(steps, CHECK_STEPS)
    adapting = copy.deepcopy(loss).adapting(OnlineSettings("loss", 1e-3, check))
    reference = train(model, adapting, task, check, config, batch_size=batch, seed=0,
                      evaluate_val=False)  # fmt: skip
    assert reference.online is not None
    _, phi = online_jvp(task, model, loss, check, config, batch)
    torch.testing.assert_close(phi, torch.tensor(reference.online.snapshots[-1][1]),
                               rtol=1e-3, atol=1e-5)  # fmt: skip
    runs = {
        "plain": lambda: plain(task, model, loss, steps, config, batch),
        "online": lambda: online(task, model, loss, steps, config, batch),
        "online_jvp": lambda: online_jvp(task, model, loss, steps, config, batch)[0],
        "online_same": lambda: online(task, model, loss, steps, config, batch, "same"),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats + 1):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for which in order:
            t = runs[which]()
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
        "ratio_jvp": round(med["online_jvp"] / med["plain"], 2),
        "ratio_same": round(med["online_same"] / med["plain"], 2),
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
              f"{c['seconds']['online']:.2f} s  ratio {c['ratio']}x  (forward-mode "
              f"meta-gradient {c['seconds']['online_jvp']:.2f} s, {c['ratio_jvp']}x; "
              f"same-batch meta step {c['seconds']['online_same']:.2f} s, "
              f"{c['ratio_same']}x)")  # fmt: skip
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": meta, "cases": cases}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
