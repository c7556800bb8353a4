"""How an online-adapted loss's gradient grows while it trains (a probe, not a benchmark).

Trains MNIST-1D's MLP from seed 0 with a loss file (for example an AdaLFL
finalist, ``RUN/finalists/01.json``) adapting online at ``--meta-lr`` on
``--batch`` (``next`` or ``same``), under SGD lr 0.05 with ``--momentum``, for
500, 1000, ... ``--steps`` steps (each from scratch), and prints per length the
validation error and the ratio of the adapted loss's gradient norm (with
respect to the logits, on the first 256 training samples) to cross-entropy's,
with their cosine. ``--meta-lr 0`` trains the loss fixed. The README's
"Where it follows the paper" cites its output for the default meta-lr grid.

    python benchmarks/online_gradient_growth.py RUN/finalists/01.json --meta-lr 1e-5
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from evomal.losses.document import OnlineSettings
from evomal.losses.io import load_loss
from evomal.meta.base_learner import BaseLearner
from evomal.optim import SGDConfig
from evomal.tasks import get_task
from evomal.training import train


def gradient_ratio(loss: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor,
                   y: torch.Tensor) -> tuple[float, float]:  # fmt: skip
    """||dL/dlogits|| / ||dCE/dlogits|| and the cosine between the two gradients."""
    out = model(x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(out, y), out)
    (ce,) = torch.autograd.grad(F.cross_entropy(out, y), out)
    return float(g.norm() / ce.norm()), float((g * ce).sum() / g.norm() / ce.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loss", help="a loss file with weights (a tree or ML3's network)")
    parser.add_argument("--meta-lr", type=float, default=1e-5)
    parser.add_argument("--batch", choices=["next", "same"], default="next")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    task = get_task("mnist1d")
    start = load_loss(args.loss)
    start.online = None
    learner = BaseLearner(task, "mlp")
    x, y = task.train.x[:256], task.train.y[:256]
    config = SGDConfig(lr=0.05, momentum=args.momentum)
    for steps in range(500, args.steps + 1, 500):
        loss = copy.deepcopy(start)
        if args.meta_lr > 0:
            loss = loss.adapting(OnlineSettings("loss", args.meta_lr, 100, args.batch))
        model = learner.build(0)
        result = train(model, loss, task, steps, config, batch_size=64, seed=0)
        end = copy.deepcopy(start)
        if result.online is not None:
            with torch.no_grad():
                end.weights.copy_(torch.tensor(result.online.snapshots[-1][1]))
        ratio, cosine = gradient_ratio(end, model, x, y)
        print(f"steps {steps}: validation error {result.val_metric:.3f}, gradient "
              f"{ratio:.2f}x cross-entropy's (cosine {cosine:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
