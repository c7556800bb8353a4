"""The training loop: as cheap per step as a bare PyTorch loop.

A search trains thousands of base models, so the loop keeps to what a
hand-written loop does: the data stay on the device, each step takes a slice
of an on-device permutation (epochs without replacement), the model, loss,
backward and ``optimizer.step()`` run, and the step's loss is written into a
preallocated on-device buffer. There is no DataLoader and no host sync per
step: finiteness is checked every ``check_every`` steps with one sync, and a
non-finite loss or parameter ends training with a *diverged* result rather
than carrying on.

Determinism: the base model is built from ``seed``, and batches and
augmentation draw from a generator seeded with ``seed``, so the same seed
gives the same initial weights, the same batches and the same result
(on the same device and build).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from evomal.errors import ConfigError, LossFileError, UnknownNameError
from evomal.losses.document import online_of
from evomal.optim import SGDConfig
from evomal.tasks.task import Split, Task
from evomal.training.device import resolve_device
from evomal.training.divergence import divergence, finite_members
from evomal.training.metrics import per_sample_metric, sample_weights, task_loss, task_metric_name
from evomal.training.online import OnlineTrace, OnlineTraining

if TYPE_CHECKING:
    from evomal.tasks.models.source import ModelLike

LossFn = Callable[[Tensor, Tensor], Tensor]
ProgressFn = Callable[[int, int], None]


@dataclass
class TrainResult:
    """What one training run produced. ``diverged`` runs carry the reason."""

    steps: int
    steps_done: int
    diverged: bool
    reason: str | None
    val_metric: float | None
    test_metric: float | None
    metric: str
    seconds: float
    loss_history: list[float] = field(default_factory=list)
    val_history: list[tuple[int, float]] = field(default_factory=list)
    #: each validation sample's metric at the end (error indicator or squared error), if asked
    val_samples: list[float] | None = None
    #: stopped at :attr:`Prune.step` because it was clearly behind; ``val_metric`` is that step's
    pruned: bool = False
    #: with early stopping: the step whose weights were kept (the best validation metric)
    best_step: int | None = None
    #: meta-testing's diagnostics (:func:`evomal.training.diagnostics.test_diagnostics`):
    #: test error and balanced error, per-class test errors, memorisation of flipped labels
    details: dict[str, Any] = field(default_factory=dict)
    #: for a loss that adapts online: the adapted values over training and the meta-objective
    online: OnlineTrace | None = None

    def as_dict(self) -> dict[str, Any]:
        skip = ("loss_history", "val_history", "val_samples", "online")
        return {k: v for k, v in self.__dict__.items() if k not in skip}


@dataclass(frozen=True)
class Prune:
    """Stop a run after ``step`` steps if its validation metric there is above ``above``.

    A rung of successive halving: a run that is clearly behind by ``step``
    stops there, and reports that step's metric (``TrainResult.pruned``).
    The metric at ``step`` is always recorded in ``val_history``, so runs that
    go on give the reference that later thresholds are drawn from.
    """

    step: int
    above: float = float("inf")

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ConfigError(f"a prune step must be >= 1, got {self.step}")

    def metric_at(self, curve: list[tuple[int, float]]) -> float | None:
        """The validation metric recorded at this rung's step, if it was."""
        return next((value for done, value in curve if done == self.step), None)


def val_steps(steps: int, val_every: int | None) -> set[int]:
    """The step counts after which a validation curve is recorded (always the last)."""
    if not val_every:
        return set()
    if val_every < 1:
        raise ConfigError(f"val_every must be >= 1, got {val_every}")
    return {*range(val_every, steps + 1, val_every), steps}


class EpochSampler:
    """Yields index batches from on-device permutations, one epoch after another.

    The last incomplete batch of an epoch is dropped so every step sees a
    full batch (as ``DataLoader(drop_last=True, shuffle=True)`` would).
    """

    def __init__(
        self, n: int, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> None:
        self.n = n
        self.batch_size = min(batch_size, n)
        self.generator = generator
        self.device = device
        self._perm = torch.empty(0, dtype=torch.long, device=device)
        self._pos = 0

    def next(self) -> Tensor:
        if self._pos + self.batch_size > self._perm.shape[0]:
            self._perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``; global RNG state is left alone."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


class TrainBatches:
    """A task's training batches: on-device epochs, augmented, drawn from one seeded generator.

    The sampler and the augmentation share the generator, so one seed fixes
    both the batch order and the augmentation; every loop in evomal (training,
    population training, the local search) draws its batches here.
    """

    def __init__(self, task: Task, batch_size: int, seed: int) -> None:
        self.task = task
        self.generator = make_generator(seed, task.device)
        self.sampler = EpochSampler(len(task.train), batch_size, self.generator, task.device)
        self._augment = not task.augmentation.is_identity
        self._ahead: tuple[Tensor, Tensor] | None = None

    def next(self) -> tuple[Tensor, Tensor]:
        """The next batch of the stream."""
        if self._ahead is not None:
            batch, self._ahead = self._ahead, None
            return batch
        return self._draw()

    def peek(self) -> tuple[Tensor, Tensor]:
        """The batch :meth:`next` will return, drawn now (the stream is unchanged by peeking)."""
        if self._ahead is None:
            self._ahead = self._draw()
        return self._ahead

    def _draw(self) -> tuple[Tensor, Tensor]:
        idx = self.sampler.next()
        x = self.task.train.x[idx]
        if self._augment:
            x = self.task.augmentation.train_batch(x, self.generator)
        return x, self.task.train.y[idx]


def set_learning_rate(opt: torch.optim.Optimizer, config: SGDConfig, step: int) -> None:
    """Apply the MultiStep schedule: at a milestone, every group takes the new rate."""
    if step in config.milestones:
        for group in opt.param_groups:
            group["lr"] = config.lr_at(step)


def resolve_loss(loss: Any, task: Task) -> LossFn:
    """Turn ``"ce"``, ``"mse"``, ``"task"``, a loss module or a callable into ``f(y_pred, y_true)``.

    A learned loss must have been learned for the same kind of task: a
    classification loss expects probabilities and labels, not raw targets. A
    zoo loss that needs the training split's class counts (or the number of
    classes) is bound to them here, unless its file already records them.
    """
    if isinstance(loss, str):
        wanted = {"ce": "classification", "mse": "regression", "task": task.kind}.get(loss)
        if wanted is None:
            raise UnknownNameError(
                f"unknown loss {loss!r}; use 'ce', 'mse', 'task', or a loss file"
            )
        if wanted != task.kind:
            raise LossFileError(
                f"loss {loss!r} is for {wanted} but task {task.name!r} is {task.kind}; "
                f"use {'ce' if task.kind == 'classification' else 'mse'}"
            )
        kind = task.kind
        return lambda y_pred, y_true: task_loss(kind, y_pred, y_true)
    loss_task = getattr(loss, "task", None)
    if isinstance(loss_task, str) and loss_task != task.kind:
        raise LossFileError(
            f"this loss was learned for {loss_task} but task {task.name!r} is {task.kind}"
        )
    if not callable(loss):
        raise ConfigError(f"loss must be callable, got {type(loss).__name__}")
    bound = getattr(loss, "bound", None)
    if callable(bound) and task.kind == "classification":  # a zoo loss: the split's class counts
        counts = torch.bincount(task.train.y.reshape(-1), minlength=task.n_classes)
        return bound(task.n_classes, counts.tolist())
    return loss


def _per_sample_batches(
    model: nn.Module, split: Split, task: Task, batch_size: int
) -> Iterator[Tensor]:
    """Per-sample metric of each batch of ``split``, in eval mode without gradients.

    Under the balanced error each sample is weighted by ``N / (K * n_c)``
    (:func:`~evomal.training.metrics.sample_weights`), so that the mean is the
    metric. The model's train/eval mode is restored when the generator is exhausted.
    """
    weights = sample_weights(task, split)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(split), batch_size):
                x = task.augmentation.eval_batch(split.x[start : start + batch_size])
                y = split.y[start : start + batch_size]
                values = per_sample_metric(task.kind, model(x), y)
                yield values if weights is None else values * weights[start : start + batch_size]
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, split: Split, task: Task, batch_size: int = 1024) -> Tensor:
    """The task metric of ``model`` on ``split`` as a 0-d tensor (eval mode, no grad)."""
    total = torch.zeros((), device=split.x.device)
    for batch in _per_sample_batches(model, split, task, batch_size):
        total = total + batch.sum()
    return total / len(split)


def evaluate_per_sample(
    model: nn.Module, split: Split, task: Task, batch_size: int = 1024
) -> Tensor:
    """Each sample's contribution to the task metric on ``split``: error indicator or squared error.

    Its mean is :func:`evaluate`'s metric. Selection pairs two losses' vectors sample by
    sample to tell how much of a validation difference a finite validation split explains.
    """
    return torch.cat(list(_per_sample_batches(model, split, task, batch_size)))


def train(
    model: ModelLike,
    loss: Any,
    task: Task,
    steps: int,
    optimizer: SGDConfig | None = None,
    *,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    evaluate_val: bool = True,
    evaluate_test: bool = False,
    check_every: int = 100,
    progress: ProgressFn | None = None,
    model_options: dict[str, Any] | None = None,
    val_every: int | None = None,
    prune: Prune | None = None,
    early_stopping: int | None = None,
) -> TrainResult:
    """Train ``model`` on ``task`` with ``loss`` for ``steps`` SGD steps.

    ``model`` is a module (trained as it is) or anything else
    :func:`~evomal.tasks.models.source.resolve_model` accepts: a registered
    name, a builder or its import path (built for the task's shapes from
    ``seed``). ``loss`` is ``"ce"``/``"mse"``/``"task"``, a
    :class:`evomal.LearnedLoss` or any ``f(y_pred, y_true) -> scalar``.
    ``progress(step, steps)`` is called every ``check_every`` steps. Returns
    the validation (and optionally test) metric; a run whose loss or
    parameters become non-finite stops and is reported as diverged.
    ``val_every`` also records the validation metric every so many steps
    (``val_history``, a learning curve; one host sync each). ``prune`` stops
    a run that is clearly behind at its step (see :class:`Prune`).
    ``early_stopping`` scores validation every so many steps and keeps the
    weights of the best score (``best_step``): the validation and test
    metrics are those weights'. With ``evaluate_test`` a classification run
    also reports :func:`~evomal.training.diagnostics.test_diagnostics`.

    A loss whose file says it adapts online (``loss.online``, AdaLFL or
    hypergradient descent) trains by :class:`~evomal.training.online.OnlineTraining`
    from its initial weights (a copy: ``loss`` itself is left as it is), and the
    result's ``online`` holds what adapted.
    """
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if check_every < 1:
        raise ConfigError(f"check_every must be >= 1, got {check_every}")
    dev = resolve_device(device) if device is not None else task.device
    task = task.to(dev) if task.device != dev else task
    if not isinstance(model, nn.Module):
        from evomal.tasks.models.source import resolve_model

        model = resolve_model(model).build(
            task.input_shape, task.n_outputs, seed=seed, **(model_options or {})
        )
    model = model.to(dev)
    model.train()
    settings = online_of(loss)
    if settings is not None:
        loss = copy.deepcopy(loss)  # its weights adapt during this run only
    if isinstance(loss, nn.Module):
        loss.to(dev)
    loss_fn = resolve_loss(loss, task)
    config = optimizer or SGDConfig()
    opt = config.build(model.parameters())
    online = None if settings is None else OnlineTraining(model, loss, opt, task.kind, settings)
    batches = TrainBatches(task, batch_size, seed)
    losses = torch.empty(steps, device=dev)
    curve_at = val_steps(steps, val_every)
    if prune is not None and prune.step <= steps:
        curve_at.add(prune.step)
    stop_at = val_steps(steps, early_stopping)
    curve_at |= stop_at
    curve: list[tuple[int, float]] = []
    best = _BestWeights()

    diverged, pruned, reason, done = False, False, None, 0
    start = time.perf_counter()
    for step in range(steps):
        set_learning_rate(opt, config, step)
        xb, yb = batches.next()
        if online is not None:
            value = online.step((xb, yb))
        else:
            value = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        losses[step] = value.detach()
        done = step + 1
        if done in curve_at:
            curve.append((done, float(evaluate(model, task.val, task))))
            pruned = prune is not None and done == prune.step and curve[-1][1] > prune.above
            if done in stop_at:
                best.offer(model, done, curve[-1][1])
        if pruned or done % check_every == 0 or done == steps:
            first = max(0, done - check_every)
            finite = finite_members([p.detach().unsqueeze(0) for p in model.parameters()], 1)
            (reason,) = divergence(
                losses[first:done].unsqueeze(1), finite, first_step=first, steps_done=done
            )
            diverged = reason is not None
            if progress is not None:
                progress(done, steps)
            if diverged or pruned:
                break

    pruned = pruned and not diverged
    val_metric = test_metric = None
    details: dict[str, Any] = {}
    if not diverged:
        if best.step is not None and not pruned:
            val_metric = best.restore(model)
        elif pruned:
            val_metric = curve[-1][1]
        elif curve and curve[-1][0] == done:
            val_metric = curve[-1][1]  # just measured (the model is unchanged since)
        elif evaluate_val:
            val_metric = float(evaluate(model, task.val, task))
        if evaluate_test:
            test_metric = float(evaluate(model, task.test, task))
            from evomal.training.diagnostics import test_diagnostics

            details = test_diagnostics(model, task)
    history = losses[:done].tolist()
    return TrainResult(
        steps=steps,
        steps_done=done,
        diverged=diverged,
        reason=reason,
        val_metric=val_metric,
        test_metric=test_metric,
        metric=task_metric_name(task),
        seconds=time.perf_counter() - start,
        loss_history=history,
        val_history=curve,
        pruned=pruned,
        best_step=best.step if not pruned else None,
        details=details,
        online=None if online is None else online.finish(batches.peek()),
    )


class _BestWeights:
    """Early stopping's memory: the best validation metric seen, its step and weights."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.value = float("inf")
        self.state: dict[str, Tensor] = {}

    def offer(self, model: nn.Module, step: int, value: float) -> None:
        """Keep the model's weights if ``value`` is the best so far (ties keep the earlier)."""
        if value < self.value or self.step is None:
            self.step, self.value = step, value
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module) -> float:
        """Load the kept weights into ``model``; their validation metric."""
        model.load_state_dict(self.state)
        return self.value
