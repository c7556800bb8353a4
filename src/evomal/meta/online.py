"""Online loss learning: the loss's weights phi take a meta step after every base update.

AdaLFL (Raymond, Chen, Xue, Zhang, "Online Loss Function Learning", 2023,
their Algorithm 2) adapts the loss while the model it trains is trained. At
every step t, with the training batches b_t, b_{t+1}, ... of one seeded stream:

1. theta' = step(theta, grad_theta M_phi(y_t, f_theta(x_t))): one step of the
   real optimiser (momentum, Nesterov and weight decay, as
   :class:`~evomal.meta.unrolled_sgd.UnrolledSGD` writes it), kept on the graph;
2. phi <- Adam(phi, grad_phi L_task(y_{t+1}, f_theta'(x_{t+1}))): the task loss
   of the updated model on the *next* training batch, differentiated through
   that one update;
3. theta <- theta' and the momentum buffers carried to the next step,
   both detached: the meta-gradient looks one update back, never further.

The base model is the only one trained: the next step's base update uses
b_{t+1}, the batch the meta step just read, so the run sees each batch of the
stream once for each role. With ``meta_lr = 0`` phi never moves (the
meta-gradient is still computed), and the run is plain training with the
initial loss: ``tests/meta/test_online.py`` checks that against
:func:`~evomal.training.train` to rtol 1e-12 in float64, and the
meta-gradient against central finite differences.

The same procedure adapts the learning rate instead of the loss (their
Algorithms 3-4; hypergradient descent, Baydin et al. 2018): the task loss is
fixed and the meta-parameter is log(lr), so the rate stays positive
(:class:`LearningRate`; :class:`LossWeights` is AdaLFL's). Without that
counterpart an online loss's gain could be a learning-rate schedule.

The state after any step is plain tensors plus the step count; the batch
stream is rebuilt from its seed and replayed to the same position, so a run
resumed from :meth:`OnlineLossLearner.state` continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import Tensor
from torch.func import functional_call

from evomal.gp.filters import ParametricLoss
from evomal.meta.base_learner import BaseLearner, State
from evomal.meta.unrolled_sgd import UnrolledSGD
from evomal.training.loop import TrainBatches
from evomal.training.metrics import task_loss


@dataclass
class OnlineState:
    """Everything an online run needs to continue: the step count, the base model's
    parameters and buffers, the momentum buffers, phi, Adam's state and the phi snapshots."""

    step: int
    params: State
    buffers: State
    momentum: State | None
    phi: Tensor
    adam: dict[str, object]
    snapshots: list[tuple[int, list[float]]] = field(default_factory=list)


class Adapted(Protocol):
    """What the online meta step adapts: the base loss and the optimiser as functions of the
    meta-parameters."""

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor: ...

    def optimizer(self, meta: Tensor) -> UnrolledSGD: ...


@dataclass(frozen=True)
class LossWeights:
    """AdaLFL: the meta-parameters are the loss's weights phi; the optimiser is fixed."""

    loss: ParametricLoss
    base: UnrolledSGD

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.loss(y_pred, y_true, meta)

    def optimizer(self, meta: Tensor) -> UnrolledSGD:
        return self.base


@dataclass(frozen=True)
class LearningRate:
    """Hypergradient descent: the meta-parameter is log(lr) (one scalar); the loss is the
    task loss. ``base`` gives momentum, Nesterov and weight decay; its lr is replaced."""

    kind: str
    base: UnrolledSGD

    def value(self, meta: Tensor, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return task_loss(self.kind, y_pred, y_true)

    def optimizer(self, meta: Tensor) -> UnrolledSGD:
        return replace(self.base, lr=meta.exp().squeeze())  # type: ignore[arg-type]


def online_meta_loss(
    phi: Tensor,
    loss: ParametricLoss | Adapted,
    forward: Callable[[State, State, Tensor], Tensor],
    kind: str,
    params: State,
    buffers: State,
    momentum: State | None,
    batch: tuple[Tensor, Tensor],
    next_batch: tuple[Tensor, Tensor],
    optimizer: UnrolledSGD | None = None,
) -> tuple[Tensor, State, State | None]:
    """The task loss on ``next_batch`` after one optimiser step on ``M_phi`` over ``batch``,
    as a function of phi; with the updated parameters and momentum (still on the graph).
    ``forward(params, buffers, x)`` is the model run functionally, ``kind`` the task's kind.

    ``loss`` is a parametric loss (phi its weights, ``optimizer`` the fixed update rule) or
    an :class:`Adapted` (which gives both from phi)."""
    adapted = loss if isinstance(loss, (LossWeights, LearningRate)) else None
    if adapted is None:
        assert optimizer is not None, "a parametric loss needs its optimiser"
        adapted = LossWeights(loss, optimizer)  # type: ignore[arg-type]
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    x, y = batch
    value = adapted.value(phi, forward(params, buffers, x), y)
    grads = torch.autograd.grad(value, list(params.values()), create_graph=True)
    new_params, new_momentum = adapted.optimizer(phi).step(params, list(grads), momentum)
    nx, ny = next_batch
    meta = task_loss(kind, forward(new_params, buffers, nx), ny)
    return meta, new_params, new_momentum


class OnlineLossLearner:
    """Trains one base model with ``M_phi`` while phi adapts online (module docstring).

    ``seed`` draws the base model's initial weights and the batch stream, as
    :func:`~evomal.training.train` does with the same seed. ``snapshot_every``
    records phi every so many steps (and at step 0), the trajectory a report plots.
    """

    def __init__(
        self,
        loss: ParametricLoss | LearningRate,
        phi0: Tensor,
        learner: BaseLearner,
        optimizer: UnrolledSGD,
        *,
        meta_lr: float,
        batch_size: int,
        seed: int,
        snapshot_every: int = 100,
        state: OnlineState | None = None,
    ) -> None:
        if meta_lr < 0:
            raise ValueError(f"the online meta learning rate must be >= 0, got {meta_lr}")
        self.adapted = loss if isinstance(loss, LearningRate) else LossWeights(loss, optimizer)
        self.loss, self.learner, self.optimizer = loss, learner, optimizer
        self.snapshot_every = max(1, snapshot_every)
        self.batches = TrainBatches(learner.task, batch_size, seed)
        self._next = self.batches.next()
        if state is None:
            params, buffers = learner.initial_state(seed)
            phi = phi0.detach().clone().to(learner.task.device)
            state = OnlineState(0, params, buffers, None, phi, {}, [(0, phi.tolist())])
        else:
            for _ in range(state.step):  # replay the stream to where the run stopped
                self._next = self.batches.next()
        self.state = state
        self.phi = state.phi.detach().clone().requires_grad_(True)
        self.adam = torch.optim.Adam([self.phi], lr=meta_lr)
        if state.adam:
            self.adam.load_state_dict(state.adam)
        self.meta_grad_norms: list[float] = []

    def step(self) -> tuple[float, float]:
        """One base update and one meta step; the task loss after the update on the next
        batch (the meta-objective) and the meta-gradient's norm."""
        s = self.state
        batch, self._next = self._next, self.batches.next()
        meta, params, momentum = online_meta_loss(
            self.phi, self.adapted, self.learner.forward, self.learner.task.kind, s.params,
            s.buffers, s.momentum, batch, self._next,
        )  # fmt: skip
        (grad,) = torch.autograd.grad(meta, self.phi)
        self.phi.grad = grad
        self.adam.step()
        s.params = {k: v.detach() for k, v in params.items()}
        s.momentum = None if momentum is None else {k: v.detach() for k, v in momentum.items()}
        s.step += 1
        s.phi = self.phi.detach().clone()
        if s.step % self.snapshot_every == 0:
            s.snapshots.append((s.step, s.phi.tolist()))
        norm = float(grad.norm())
        self.meta_grad_norms.append(norm)
        return float(meta.detach()), norm

    def run(self, steps: int) -> OnlineState:
        """Take steps until ``steps`` in all have been taken (a resumed run takes the rest)."""
        while self.state.step < steps:
            self.step()
        return self.snapshot()

    def snapshot(self) -> OnlineState:
        """The state as it is now, detached and with Adam's state copied (a checkpoint)."""
        s = self.state
        adam = self.adam.state_dict()
        return OnlineState(
            s.step,
            {k: v.clone() for k, v in s.params.items()},
            {k: v.clone() for k, v in s.buffers.items()},
            None if s.momentum is None else {k: v.clone() for k, v in s.momentum.items()},
            s.phi.clone(),
            copy.deepcopy(adam),
            list(s.snapshots),
        )  # fmt: skip


class OnlineHook:
    """Online adaptation of a loss's weights inside a user's own training loop.

    ``criterion`` is an evomal loss module with a weight vector (a tree's phi,
    an ML3 network's params), ``optimizer`` the ``torch.optim.SGD`` training
    ``model`` (one parameter group, dampening 0). Call :meth:`step` with each
    batch *before* training on it::

        hook = OnlineHook(criterion, model, optimizer, meta_lr=1e-3)
        for x, y in loader:
            hook.step(x, y)               # phi's meta step for the previous update
            loss = criterion(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()

    The call scores the previous update on this batch, the next training batch
    of the algorithm above, differentiating through that update rebuilt
    functionally from the weights and momentum it started from, and moves
    the criterion's weights in place; the update about to be taken then uses
    them. The first call only remembers. This is
    :class:`OnlineLossLearner`'s run, step for step (tested).
    """

    def __init__(
        self,
        criterion: torch.nn.Module,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        meta_lr: float,
    ) -> None:
        if not isinstance(optimizer, torch.optim.SGD) or len(optimizer.param_groups) != 1:
            raise ValueError("online adaptation follows torch.optim.SGD with one parameter group")
        group = optimizer.param_groups[0]
        if group.get("dampening", 0) != 0:
            raise ValueError("online adaptation needs SGD with dampening 0 (the default)")
        weights = getattr(criterion, "weights", None)
        if not isinstance(weights, Tensor) or not hasattr(criterion, "loss_fn"):
            raise ValueError("online adaptation needs an evomal loss with weights (a tree or ML3)")
        self.criterion, self.model, self.optimizer = criterion, model, optimizer
        self.kind = str(getattr(criterion, "task", "classification"))
        self.phi = weights.detach().clone().requires_grad_(True)
        self.adam = torch.optim.Adam([self.phi], lr=meta_lr)
        self._previous: tuple[State, State, State | None, Tensor, Tensor] | None = None

    def _rule(self) -> UnrolledSGD:
        group = self.optimizer.param_groups[0]
        return UnrolledSGD(group["lr"], group["momentum"], group["nesterov"],
                           group["weight_decay"])  # fmt: skip

    def _forward(self, params: State, buffers: State, x: Tensor) -> Tensor:
        return functional_call(self.model, (params, buffers), (x,))

    def _loss(self, y_pred: Tensor, y_true: Tensor, phi: Tensor, reduction: str = "mean") -> Tensor:
        """The criterion at weights ``phi``, with its own reduction and scale."""
        criterion = self.criterion
        value = criterion.loss_fn(y_pred, y_true, phi, criterion.reduction)  # type: ignore[operator]
        scale = float(getattr(criterion, "scale", 1.0))
        return value * scale if scale != 1.0 else value

    def step(self, x: Tensor, y: Tensor) -> float | None:
        """The meta step for the previous update, scored on ``(x, y)``; its meta loss (None on
        the first call). Then remember the weights, momentum and batch of the next update."""
        meta_value = None
        if self._previous is not None:
            params, buffers, momentum, px, py = self._previous
            adapted = LossWeights(self._loss, self._rule())
            meta, _, _ = online_meta_loss(
                self.phi, adapted, self._forward, self.kind, params, buffers, momentum,
                (px, py), (x, y),
            )  # fmt: skip
            (self.phi.grad,) = torch.autograd.grad(meta, self.phi)
            self.adam.step()
            with torch.no_grad():
                getattr(self.criterion, "weights").copy_(self.phi)  # noqa: B009
            meta_value = float(meta.detach())
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
            momentum_now, x, y,
        )  # fmt: skip
        return meta_value
