"""Online loss learning: the loss (or the learning rate) takes a meta step after every update.

AdaLFL (Raymond, Chen, Xue, Zhang, "Online Loss Function Learning", 2023,
their Algorithm 2) adapts the loss while the model it trains is trained. At
every step t, with the training batches b_t, b_{t+1}, ... of one seeded stream:

1. theta' = step(theta, grad_theta M_phi(y_t, f_theta(x_t))): one step of the
   real optimiser (momentum, Nesterov and weight decay, as
   :class:`~evomal.training.unrolled_sgd.UnrolledSGD` writes it), kept on the graph;
2. phi <- Adam(phi, grad_phi L_task(y, f_theta'(x))): the task loss of the
   updated model, differentiated through that one update, on the batch
   ``OnlineSettings.batch`` names: ``same``, b_t itself (the paper's
   Algorithm 2), or ``next``, the next training batch b_{t+1};
3. theta <- theta' and the momentum buffers carried to the next step,
   both detached: the meta-gradient looks one update back, never further.

The step taken in 1 *is* the model's update (there is no second, plain
update). With ``next``, update t + 1 trains on b_{t+1}, the batch the meta
step just read, so in :func:`~evomal.training.train` one forward pass serves
both (:class:`OnlineTraining`), and an online run costs a backward pass through
the update and one through the model more than plain training; ``same`` costs
one more forward pass (the updated model on b_t). The stream is the
one ``train`` draws with the same seed. With ``meta_lr = 0`` phi never moves
(the meta-gradient is still computed) and the run is plain training with the
initial loss (``tests/training/test_online.py``, to rtol 1e-12 in float64).

The same procedure adapts the learning rate instead of the loss (their
Algorithms 3-4; hypergradient descent, Baydin et al. 2018): the loss is fixed
and the meta-parameter is the log of a multiplier of the scheduled learning
rate, so the rate stays positive and a schedule's milestones still apply
(:class:`LearningRate`; :class:`LossWeights` is AdaLFL's).

:class:`OnlineTraining` is the step :func:`~evomal.training.train` takes for a
loss whose file says it adapts online; :class:`OnlineHook` is the same
algorithm inside a user's own loop with ``torch.optim.SGD``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call

from evomal.losses.document import OnlineSettings, online_of
from evomal.records import OnlineTraceRecord
from evomal.training.curves import downsample
from evomal.training.metrics import task_loss
from evomal.training.unrolled_sgd import State, UnrolledSGD

Forward = Callable[[State, State, Tensor], Tensor]
WeightedFn = Callable[[Tensor, Tensor, Tensor], Tensor]


class Adapted(Protocol):
    """What the online meta step adapts: the base loss and the update rule as functions of
    the meta-parameters, given the rule the schedule sets for this step."""

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor: ...

    def rule(self, meta: Tensor, base: UnrolledSGD) -> UnrolledSGD: ...


@dataclass(frozen=True)
class LossWeights:
    """AdaLFL: the meta-parameters are the loss's weights phi; the update rule is fixed.
    ``loss(y_pred, y_true, phi)`` is the loss as a function of its weights."""

    loss: WeightedFn

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.loss(y_pred, y_true, meta)

    def rule(self, meta: Tensor, base: UnrolledSGD) -> UnrolledSGD:
        return base


@dataclass(frozen=True)
class LearningRate:
    """Hypergradient descent: the meta-parameter is the log of a multiplier of the scheduled
    learning rate (one scalar, 0 at the start); the loss ``loss(y_pred, y_true)`` is fixed."""

    loss: Callable[[Tensor, Tensor], Tensor]

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.loss(y_pred, y_true)

    def rule(self, meta: Tensor, base: UnrolledSGD) -> UnrolledSGD:
        return replace(base, lr=base.lr * meta.exp().squeeze())  # type: ignore[arg-type]


@dataclass
class OnlineStep:
    """One online step on the graph: the meta-objective (the task loss on the next batch
    after the update), the base loss the update descended, and the updated parameters and
    momentum buffers (still functions of the meta-parameters)."""

    meta: Tensor
    value: Tensor
    params: State
    momentum: State | None


def online_meta_loss(
    meta: Tensor,
    adapted: Adapted,
    forward: Forward,
    kind: str,
    params: State,
    buffers: State,
    momentum: State | None,
    batch: tuple[Tensor, Tensor],
    next_batch: tuple[Tensor, Tensor],
    base: UnrolledSGD,
) -> OnlineStep:
    """One update of ``params`` on ``batch`` by the rule ``adapted`` makes of ``base``, and
    the task loss of the updated model on ``next_batch`` (``batch`` itself for the paper's
    same-batch meta step), all as functions of ``meta``.
    ``forward(params, buffers, x)`` runs the model functionally; ``kind`` is the task's."""
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    x, y = batch
    value = adapted.value(meta, forward(params, buffers, x), y)
    grads = torch.autograd.grad(value, list(params.values()), create_graph=True)
    new_params, new_momentum = adapted.rule(meta, base).step(params, list(grads), momentum)
    nx, ny = next_batch
    objective = task_loss(kind, forward(new_params, buffers, nx), ny)
    return OnlineStep(objective, value, new_params, new_momentum)


def rule_of(optimizer: torch.optim.Optimizer) -> UnrolledSGD:
    """The update rule of a ``torch.optim.SGD`` with one parameter group, at its current lr."""
    group = optimizer.param_groups[0]
    return UnrolledSGD(group["lr"], group["momentum"], group["nesterov"], group["weight_decay"])


def check_sgd(optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimiser the unrolled step cannot follow exactly."""
    if not isinstance(optimizer, torch.optim.SGD) or len(optimizer.param_groups) != 1:
        raise ValueError("online adaptation follows torch.optim.SGD with one parameter group")
    if optimizer.param_groups[0].get("dampening", 0) != 0:
        raise ValueError("online adaptation needs SGD with dampening 0 (the default)")


@dataclass
class OnlineTrace:
    """What an online run records: the adapted values every ``snapshot_every`` steps (the
    loss's weights, or the multiplier of the scheduled lr) and the meta-objective per step."""

    adapts: str
    snapshots: list[tuple[int, list[float]]] = field(default_factory=list)
    meta_losses: list[float] = field(default_factory=list)
    #: the norm of each meta step's gradient (computed even when the meta lr is 0)
    grad_norms: list[float] = field(default_factory=list)

    def as_record(self) -> OnlineTraceRecord:
        """The trace as plain data: every snapshot, and the per-step curves as window means."""
        return {
            "adapts": self.adapts,
            "snapshots": [[step, list(values)] for step, values in self.snapshots],
            "meta_loss": [list(p) for p in downsample(self.meta_losses)],
            "grad_norm": [list(p) for p in downsample(self.grad_norms)],
        }


class _Adapter:
    """The meta-parameters of one online run, Adam on them, and the criterion they drive.

    ``criterion`` is an evomal loss with a weight vector (``loss_fn``, ``weights``,
    ``reduction``, ``scale``); it is changed in place as its weights adapt, so pass a copy.
    """

    def __init__(self, criterion: nn.Module, settings: OnlineSettings) -> None:
        weights = getattr(criterion, "weights", None)
        if not isinstance(weights, Tensor) or not callable(getattr(criterion, "at", None)):
            raise ValueError("online adaptation needs an evomal loss with weights (a tree or ML3)")
        self.criterion, self.settings = criterion, settings
        self.adapted: Adapted
        if settings.adapts == "loss":
            self.adapted = LossWeights(getattr(criterion, "at"))  # noqa: B009 (checked above)
            start = weights.detach().clone()
        else:
            self.adapted = LearningRate(criterion)
            start = torch.zeros(1, dtype=weights.dtype, device=weights.device)
        self.meta = start.requires_grad_(True)
        self.adam = torch.optim.Adam([self.meta], lr=settings.meta_lr)
        self.steps = 0  # meta steps taken
        self.trace = OnlineTrace(settings.adapts, [(0, self.values())])
        self._objectives: list[Tensor] = []  # kept on the device until the trace is read
        self._norms: list[Tensor] = []

    def values(self) -> list[float]:
        """The adapted values as recorded: phi, or the lr multiplier exp(meta)."""
        meta = self.meta.detach()
        return (meta if self.settings.adapts == "loss" else meta.exp()).tolist()

    def meta_step(self, objective: Tensor, grad: Tensor | None = None) -> None:
        """Adam on the meta-parameters along the meta-objective's gradient (``grad``, or taken
        here from ``objective``); the criterion's weights follow (AdaLFL)."""
        if grad is None:
            (grad,) = torch.autograd.grad(objective, self.meta)
        self.meta.grad = grad
        self.adam.step()
        if self.settings.adapts == "loss":
            with torch.no_grad():
                getattr(self.criterion, "weights").copy_(self.meta)  # noqa: B009
        self._objectives.append(objective.detach())
        self._norms.append(grad.detach().norm())
        self.steps += 1

    def read(self) -> OnlineTrace:
        """The trace, with the meta-objectives and gradient norms brought to the host."""
        if self._objectives:
            self.trace.meta_losses += torch.stack(self._objectives).tolist()
            self.trace.grad_norms += torch.stack(self._norms).tolist()
            self._objectives, self._norms = [], []
        return self.trace

    def record(self, step: int, last: bool = False) -> None:
        """Snapshot the adapted values at ``step`` if it is on the interval (or ``last``)."""
        due = step % self.settings.snapshot_every == 0 or last
        if due and self.trace.snapshots[-1][0] != step:
            self.trace.snapshots.append((step, self.values()))


class OnlineTraining:
    """The training step of :func:`~evomal.training.train` for a loss that adapts online.

    The model's parameters are updated in place by the unrolled rule, so
    everything ``train`` does between steps (validation, early stopping,
    divergence checks) sees the model as it is. ``optimizer`` is the
    ``torch.optim.SGD`` ``train`` built (its lr follows the schedule); its own
    ``step`` is never called.

    With ``batch="next"`` one forward pass serves two purposes: the meta step for
    update t scores the model after it on batch t + 1, which is the forward pass
    update t + 1 trains on. So :meth:`step` on batch t + 1 first takes update t's
    meta step (the task loss's gradient v on that forward, pulled back through
    update t's graph to the meta-parameters), then update t + 1 with the adapted
    loss; the last update's meta step is taken by :meth:`finish` on the batch
    after it. With ``batch="same"``, :meth:`step` scores the updated model on the
    batch it trained on and takes the meta step at once. The meta-gradient is
    that of :func:`online_meta_loss` either way (tested).
    """

    def __init__(
        self, model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
        kind: str, settings: OnlineSettings,
    ) -> None:  # fmt: skip
        check_sgd(optimizer)
        self.model, self.optimizer, self.kind = model, optimizer, kind
        self.adapter = _Adapter(criterion, settings)
        self.params: State = {k: v.detach().clone() for k, v in model.named_parameters()}
        self.momentum: State | None = None
        self.pending: State | None = None  # the last update's parameters, on the graph
        self.steps = 0

    def _forward(self, params: State, x: Tensor) -> Tensor:
        return functional_call(self.model, (params, dict(self.model.named_buffers())), (x,))

    def _meta_step(self, params: State, y_pred: Tensor, y: Tensor) -> None:
        """The pending update's meta step, scored by ``y_pred`` (the updated model's forward
        on the next batch, a function of ``params``)."""
        if self.pending is None:
            return
        objective = task_loss(self.kind, y_pred, y)
        v = torch.autograd.grad(objective, list(params.values()), retain_graph=True)
        pending, self.pending = self.pending, None
        (grad,) = torch.autograd.grad(list(pending.values()), self.adapter.meta, v)
        self.adapter.meta_step(objective, grad)
        self.adapter.record(self.steps)

    def step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The previous update's meta step, scored on ``batch``, then the update on ``batch``
        with the adapted loss; the base loss of the update (detached)."""
        adapter = self.adapter
        params = {k: v.requires_grad_(True) for k, v in self.params.items()}
        x, y = batch
        y_pred = self._forward(params, x)
        self._meta_step(params, y_pred, y)
        value = adapter.adapted.value(adapter.meta, y_pred, y)
        grads = torch.autograd.grad(value, list(params.values()), create_graph=True)
        rule = adapter.adapted.rule(adapter.meta, rule_of(self.optimizer))
        self.pending, momentum = rule.step(params, list(grads), self.momentum)
        self.momentum = None if momentum is None else {k: m.detach() for k, m in momentum.items()}
        self.params = {k: p.detach() for k, p in self.pending.items()}
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(self.params[name])
        self.steps += 1
        if adapter.settings.batch == "same":  # the paper's meta step, on this very batch
            pending, self.pending = self.pending, None
            objective = task_loss(self.kind, self._forward(pending, x), y)
            adapter.meta_step(objective)
            adapter.record(self.steps)
        return value.detach()

    def finish(self, next_batch: tuple[Tensor, Tensor]) -> OnlineTrace:
        """The last update's meta step, scored on ``next_batch``; the run's trace."""
        params = {k: v.requires_grad_(True) for k, v in self.params.items()}
        if self.pending is not None:
            x, y = next_batch
            self._meta_step(params, self._forward(params, x), y)
        self.adapter.record(self.steps, last=True)
        return self.adapter.read()


class OnlineHook:
    """Online adaptation inside a user's own training loop.

    ``criterion`` is an evomal loss with a weight vector (a tree's phi, an ML3
    network's params), ``optimizer`` the ``torch.optim.SGD`` training
    ``model`` (one parameter group, dampening 0). What adapts and at which
    meta rate are the criterion's online settings (its loss file's ``online``
    field), or ``settings``. Call :meth:`step` with each batch *before*
    training on it::

        hook = OnlineHook(criterion, model, optimizer)
        for x, y in loader:
            hook.step(x, y)               # the meta step for the previous update
            loss = criterion(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()

    The call scores the previous update on this batch, the next training batch
    of the algorithm above, differentiating through that update rebuilt
    functionally from the weights, momentum and lr it started from, and moves
    the criterion's weights in place (or sets the optimiser's lr); the update
    about to be taken then uses them. The first call only remembers. This is
    :func:`~evomal.training.train`'s online run, step for step (tested).
    """

    def __init__(
        self,
        criterion: nn.Module,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        settings: OnlineSettings | None = None,
    ) -> None:
        check_sgd(optimizer)
        settings = settings or online_of(criterion)
        if settings is None:
            raise ValueError(
                "this loss does not adapt online (its file has no 'online' field); pass "
                "settings=OnlineSettings(meta_lr=...) to adapt it anyway"
            )
        self.adapter = _Adapter(criterion, settings)
        self.model, self.optimizer = model, optimizer
        self.kind = str(getattr(criterion, "task", "classification"))
        self._scheduled = float(optimizer.param_groups[0]["lr"])
        self._previous: tuple[State, State, State | None, Tensor, Tensor, UnrolledSGD] | None = None

    @property
    def trace(self) -> OnlineTrace:
        """The adapted values recorded so far and the meta-objective per step."""
        return self.adapter.read()

    def _forward(self, params: State, buffers: State, x: Tensor) -> Tensor:
        return functional_call(self.model, (params, buffers), (x,))

    def step(self, x: Tensor, y: Tensor) -> float | None:
        """The meta step for the previous update, scored on ``(x, y)`` (on the previous
        update's own batch when the settings say ``batch="same"``); its meta loss (None on
        the first call). Then remember the weights, momentum and batch of the next update."""
        adapter, group = self.adapter, self.optimizer.param_groups[0]
        meta_value = None
        if adapter.settings.adapts == "lr" and self._previous is None:
            self._scheduled = float(group["lr"])
        if self._previous is not None:
            params, buffers, momentum, px, py, base = self._previous
            scored = (px, py) if adapter.settings.batch == "same" else (x, y)
            out = online_meta_loss(adapter.meta, adapter.adapted, self._forward, self.kind,
                                   params, buffers, momentum, (px, py), scored, base)  # fmt: skip
            adapter.meta_step(out.meta)
            meta_value = float(out.meta.detach())
            adapter.record(adapter.steps)
        base = rule_of(self.optimizer)
        if adapter.settings.adapts == "lr":  # the schedule's rate, times the adapted multiplier
            base = replace(base, lr=self._scheduled)
            group["lr"] = self._scheduled * float(adapter.meta.detach().exp())
        named = dict(self.model.named_parameters())
        state = self.optimizer.state
        buffers_now = [state.get(p, {}).get("momentum_buffer") for p in named.values()]
        momentum_now = (
            None if any(b is None for b in buffers_now)
            else {k: b.detach().clone() for k, b in zip(named, buffers_now, strict=True)}
        )  # fmt: skip
        self._previous = (
            {k: v.detach().clone() for k, v in named.items()},
            {k: v.detach().clone() for k, v in self.model.named_buffers()},
            momentum_now, x, y, base,
        )  # fmt: skip
        return meta_value

    def schedule(self, lr: float) -> None:
        """Tell the hook the schedule's new rate (a milestone); with ``adapts="lr"`` the
        adapted multiplier applies to it from the next step on."""
        self._scheduled = float(lr)
