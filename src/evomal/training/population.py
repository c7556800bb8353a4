"""Population batching: train K base models with K different losses at once.

Every candidate in a run starts from the same seeded initial weights and
sees the same batches (common random numbers), so K candidates can share
one forward pass: the K parameter sets are stacked
(``torch.func.stack_module_state``) and the model runs under ``vmap``. The
K losses differ, so each is applied to its own slice of the output and the
K values are summed: one backward pass then gives every stacked parameter
the gradient of its own candidate's loss alone (the sum's derivative with
respect to each term is 1). SGD is elementwise, so one optimiser over the
stacked tensors performs exactly the K separate updates.

The result equals training the K candidates one by one with
:func:`evomal.training.train` up to float rounding (batched kernels sum in a
different order); ``tests/training/test_population.py`` checks this. A
candidate whose loss or parameters become non-finite is reported as
diverged without affecting the others: their slices never mix.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from evomal.losses.document import online_of
from evomal.optim import SGDConfig
from evomal.symbolic.population import population_program
from evomal.symbolic.transforms import reduce_stacked, stacked_task_inputs
from evomal.tasks.task import Split, Task
from evomal.training.divergence import divergence, finite_members
from evomal.training.loop import (
    Prune,
    TrainBatches,
    TrainResult,
    resolve_loss,
    set_learning_rate,
    val_steps,
)
from evomal.training.metrics import per_sample_metric, sample_weights, task_metric_name
from evomal.training.stacked_dense import dense_forward, dense_layers

LossFn = Callable[[Tensor, Tensor], Tensor]


class StackedModel:
    """K copies of one architecture as stacked parameters and buffers, run under vmap."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        params, buffers = stack_module_state(list(models))
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.size = len(models)

        def forward(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self.base, (p, b), (x,))

        self._forward = vmap(forward, in_dims=(0, 0, None))
        self._dense = dense_layers(models[0])  # plain dense nets skip vmap (stacked_dense)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def __call__(self, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Outputs ``[K, batch, ...]`` for one input batch shared by all K models."""
        chosen = self.params if params is None else params
        if self._dense is not None and x.ndim == 2:
            return dense_forward(self._dense, chosen, x)
        return self._forward(chosen, self.buffers, x)


def _pointwise(loss: object) -> bool:
    fn = getattr(loss, "loss_fn", None)
    return (
        hasattr(fn, "pointwise")
        and hasattr(loss, "weights")
        and getattr(loss, "reduction", "mean") == "mean"
    )


def stacked_losses(losses: Sequence[LossFn], kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    """``f(outputs [K, batch, ...], targets) -> [K]``: loss k applied to slice k.

    For elementwise losses (trees and Taylor polynomials) the input
    transforms (softmax, one-hot) and the reduction run once on the whole
    stack; K trees run together as one :class:`PopulationProgram` (one op
    per primitive type per level), other pointwise functions one by one. Zoo
    losses of one family run as one vmapped call over their parameters
    (:func:`evomal.losses.zoo.population_loss`). Any other loss
    (cross-entropy as the task loss, a neural loss) is called on its own
    slice, beside the others.
    """
    groups: list[tuple[list[int], Callable[[Tensor, Tensor], Tensor]]] = []
    point = [k for k, loss in enumerate(losses) if _pointwise(loss)]
    if len(point) >= 2:
        groups.append((point, _shared([losses[k] for k in point], kind)))
    families: dict[Any, list[int]] = {}
    for k, loss in enumerate(losses):
        key = getattr(loss, "population_key", None)
        if key is not None and k not in point:
            families.setdefault(key, []).append(k)
    for members in families.values():
        if len(members) >= 2:
            from evomal.losses.zoo import population_loss

            groups.append((members, population_loss([losses[k] for k in members])))  # type: ignore[misc]
    if len(groups) == 1 and len(groups[0][0]) == len(losses):
        return groups[0][1]
    if not groups:
        return _separate(losses)
    grouped = {k for members, _ in groups for k in members}
    rest = [k for k in range(len(losses)) if k not in grouped]
    rows = [torch.tensor(members) for members, _ in groups]

    def mixed(out: Tensor, y_true: Tensor) -> Tensor:
        values: list[Tensor | None] = [None] * len(losses)
        for (members, fn), index in zip(groups, rows, strict=True):
            for k, value in zip(members, fn(out.index_select(0, index.to(out.device)), y_true),
                                strict=True):  # fmt: skip
                values[k] = value
        for k in rest:
            values[k] = losses[k](out[k], y_true)
        return torch.stack(values)  # type: ignore[arg-type]

    return mixed


def _separate(losses: Sequence[LossFn]) -> Callable[[Tensor, Tensor], Tensor]:
    def separate(out: Tensor, y_true: Tensor) -> Tensor:
        return torch.stack([loss(out[k], y_true) for k, loss in enumerate(losses)])

    return separate


def _shared(losses: Sequence[LossFn], kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The K pointwise losses with shared input transforms and reduction."""
    fns = [(loss.loss_fn, loss.weights, loss.output_activation) for loss in losses]  # type: ignore[attr-defined]
    activation = fns[0][2]
    same_activation = all(a == activation for _, _, a in fns)
    scales = [float(getattr(loss, "scale", 1.0)) for loss in losses]
    scaled = any(s != 1.0 for s in scales)
    program = population_program([fn for fn, _, _ in fns])
    weights = [w for _, w, _ in fns]

    def shared(out: Tensor, y_true: Tensor) -> Tensor:
        fx, y = stacked_task_inputs(kind, out, y_true)
        if program is not None:
            values = program(fx, y, weights)
        else:
            values = torch.stack([fn.pointwise(fx[k], y, w) for k, (fn, w, _) in enumerate(fns)])
        if same_activation:
            reduced = reduce_stacked(values, activation)
        else:
            reduced = torch.stack(
                [reduce_stacked(values[k : k + 1], a)[0] for k, (_, _, a) in enumerate(fns)]
            )
        if scaled:
            reduced = reduced * torch.tensor(scales, dtype=reduced.dtype, device=reduced.device)
        return reduced

    return shared


def evaluate_population_per_sample(
    stacked: StackedModel, split: Split, task: Task, batch_size: int = 1024
) -> Tensor:
    """Per-model, per-sample task metric on ``split``, shape ``[K, N]`` (eval mode, no grad).

    Row k is :func:`~evomal.training.loop.evaluate_per_sample` of model k.
    """
    stacked.train(False)
    rows = []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x = task.augmentation.eval_batch(split.x[start : start + batch_size])
            out = stacked(x)
            y = split.y[start : start + batch_size]
            rows.append(torch.stack([per_sample_metric(task.kind, o, y) for o in out]))
    stacked.train(True)
    values = torch.cat(rows, dim=1)
    weights = sample_weights(task, split)
    return values if weights is None else values * weights


def evaluate_population(
    stacked: StackedModel, split: Split, task: Task, batch_size: int = 1024
) -> Tensor:
    """Per-model task metric on ``split``, shape ``[K]`` (eval mode, no grad)."""
    return evaluate_population_per_sample(stacked, split, task, batch_size).mean(dim=1)


def train_population(
    models: Sequence[nn.Module],
    losses: Sequence[LossFn],
    task: Task,
    steps: int,
    optimizer: SGDConfig,
    *,
    batch_size: int = 128,
    seed: int = 0,
    check_every: int = 100,
    evaluate_val: bool = True,
    val_every: int | None = None,
    val_samples: bool = False,
    prune: Prune | None = None,
    lr_factors: Sequence[float] | None = None,
    early_stopping: int | None = None,
) -> list[TrainResult]:
    """Train ``models[k]`` with ``losses[k]`` for every k at once; one result per candidate.

    Same sampler, augmentation and SGD as :func:`evomal.training.train`, so a
    population of one reproduces ``train`` up to float rounding. A loss may
    be anything :func:`~evomal.training.loop.resolve_loss` accepts (``"task"``
    too). ``val_samples`` keeps each validation sample's metric in the result.
    ``prune`` gives the results :func:`~evomal.training.train` would: a member
    above the threshold at the prune step reports that step's metric and is
    marked pruned. The members train in lockstep, so it trains on all the
    same; only the one-by-one loop saves the steps. ``lr_factors`` gives
    member k the learning rate ``optimizer.lr * lr_factors[k]``
    (:class:`~evomal.optim.StackedSGD`); ``early_stopping`` keeps each
    member's weights of its best validation score, as :func:`train` does.
    """
    if len(models) != len(losses) or not models:
        raise ValueError("need one loss per model, and at least one model")
    if any(online_of(loss) is not None for loss in losses):
        raise ValueError("a loss that adapts online trains alone: use train(), not a population")
    device = task.device
    losses = [
        resolve_loss(loss.to(device) if isinstance(loss, nn.Module) else loss, task)
        for loss in losses
    ]
    stacked = StackedModel([m.to(device) for m in models])
    opt = optimizer.build_stacked(stacked.params.values(), lr_factors or [1.0] * len(models))
    batches = TrainBatches(task, batch_size, seed)
    history = torch.empty(steps, len(models), device=device)
    loss_all = stacked_losses(losses, task.kind)
    curve_at = val_steps(steps, val_every)
    if prune is not None and prune.step <= steps:
        curve_at.add(prune.step)
    stop_at = val_steps(steps, early_stopping)
    curve_at |= stop_at
    best = _BestMembers(stacked) if stop_at else None
    curves: list[list[tuple[int, float]]] = [[] for _ in models]
    diverged: list[str | None] = [None] * len(models)
    by_rung: list[str | None] = []  # what had diverged by the prune step
    done = 0
    start = time.perf_counter()
    for step in range(steps):
        set_learning_rate(opt, optimizer, step)
        xb, yb = batches.next()
        out = stacked(xb)
        values = loss_all(out, yb)
        opt.zero_grad(set_to_none=True)
        values.sum().backward()
        opt.step()
        history[step] = values.detach()
        done = step + 1
        if done in curve_at:
            scores = evaluate_population(stacked, task.val, task)
            for k, value in enumerate(scores.tolist()):
                curves[k].append((done, value))
            if best is not None and done in stop_at:
                best.offer(stacked, done, scores)
        at_rung = prune is not None and done == prune.step
        if at_rung or done % check_every == 0 or done == steps:
            _mark_diverged(diverged, history, done, check_every, stacked)
            if at_rung:
                by_rung = list(diverged)
            if all(reason is not None for reason in diverged):
                break
    seconds = time.perf_counter() - start
    if best is not None:
        best.restore(stacked)
    samples = evaluate_population_per_sample(stacked, task.val, task) if evaluate_val else None
    val = samples.mean(dim=1).tolist() if samples is not None else None
    results = []
    for k in range(len(models)):
        rung_metric = prune.metric_at(curves[k]) if prune is not None else None
        pruned = (
            prune is not None
            and rung_metric is not None
            and rung_metric > prune.above
            and by_rung[k] is None
        )
        # A pruned member stops at the prune step in the one-by-one loop, so
        # a divergence after that step is not its outcome.
        ok = pruned or diverged[k] is None
        final = val[k] if (ok and val is not None) else None
        results.append(
            TrainResult(
                steps=steps,
                steps_done=done,
                diverged=not ok,
                reason=None if ok else diverged[k],
                val_metric=rung_metric if pruned else final,
                test_metric=None,
                metric=task_metric_name(task),
                seconds=seconds / len(models),
                loss_history=history[:done, k].tolist(),
                val_history=curves[k],
                val_samples=samples[k].tolist()
                if (val_samples and ok and not pruned and samples is not None)
                else None,
                pruned=pruned,
                best_step=best.steps[k] if best is not None and not pruned else None,
            )
        )
    return results


class _BestMembers:
    """Early stopping for a population: each member's best validation score and weights."""

    def __init__(self, stacked: StackedModel) -> None:
        self.values = torch.full((stacked.size,), float("inf"))
        self.steps: list[int | None] = [None] * stacked.size
        self.params = {k: v.detach().clone() for k, v in stacked.params.items()}
        self.buffers = {k: v.clone() for k, v in stacked.buffers.items()}

    def offer(self, stacked: StackedModel, step: int, scores: Tensor) -> None:
        """Keep the weights of the members whose score improved (ties keep the earlier)."""
        scores = scores.detach().cpu().to(self.values.dtype)
        better = (scores < self.values) | torch.tensor([s is None for s in self.steps])
        if not bool(better.any()):
            return
        self.values = torch.where(better, scores, self.values)
        self.steps = [step if b else s for b, s in zip(better.tolist(), self.steps, strict=True)]
        _copy_rows(self.params, {k: v.detach() for k, v in stacked.params.items()}, better)
        _copy_rows(self.buffers, stacked.buffers, better)

    def restore(self, stacked: StackedModel) -> None:
        """Put every member's kept weights back (members never scored keep their own)."""
        kept = torch.tensor([s is not None for s in self.steps])
        with torch.no_grad():
            _copy_rows(stacked.params, self.params, kept)
            _copy_rows(stacked.buffers, self.buffers, kept)


def _copy_rows(target: dict[str, Tensor], source: dict[str, Tensor], rows: Tensor) -> None:
    """``target[name][k] = source[name][k]`` for every member k where ``rows[k]``, in place."""
    for name, tensor in target.items():
        mask = rows.to(tensor.device).reshape(-1, *([1] * (tensor.ndim - 1)))
        tensor.copy_(torch.where(mask, source[name], tensor))


def _mark_diverged(
    diverged: list[str | None], history: Tensor, done: int, window: int, stacked: StackedModel
) -> None:
    """Record why each member not yet marked diverged in the last ``window`` steps."""
    first = max(0, done - window)
    finite = finite_members(stacked.params.values(), history.shape[1])
    found = divergence(history[first:done], finite, first_step=first, steps_done=done)
    for k, reason in enumerate(found):
        if diverged[k] is None:
            diverged[k] = reason
