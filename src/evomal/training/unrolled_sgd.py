"""SGD written functionally, so that a meta-gradient can flow through its steps.

The local search differentiates the task loss after a few base-training
steps with respect to the learned loss's weights. Those steps must be the
ones fitness and meta-testing really take: with momentum 0.9 the step
actually taken is far larger than a plain ``p - lr * g``, and a loss tuned
through the plain step can overshoot once trained with momentum.
:class:`UnrolledSGD` is ``torch.optim.SGD`` (momentum, dampening 0,
Nesterov, weight decay) as a pure function of the parameters, the gradients
and the momentum buffers, so every operation stays on the autograd graph.
``tests/training/test_unrolled_sgd.py`` checks it against ``torch.optim.SGD``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from evomal.optim import SGDConfig

State = dict[str, Tensor]


@dataclass(frozen=True)
class UnrolledSGD:
    """One optimiser's update rule: ``lr``, ``momentum``, ``nesterov``, ``weight_decay``."""

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    @classmethod
    def plain(cls, lr: float) -> UnrolledSGD:
        """The plain step ``p - lr * g`` (no momentum, no weight decay)."""
        return cls(lr)

    @classmethod
    def from_config(cls, config: SGDConfig, lr: float | None = None) -> UnrolledSGD:
        """The update rule of ``config`` (its schedule aside), optionally at another ``lr``."""
        return cls(
            config.lr if lr is None else lr,
            config.momentum,
            config.nesterov,
            config.weight_decay,
        )

    def step(
        self, params: State, grads: list[Tensor], buffers: State | None
    ) -> tuple[State, State | None]:
        """The parameters after one step, and the momentum buffers (``None`` before the first).

        Follows ``torch.optim.SGD`` exactly: ``d = g + wd * p``; the first
        buffer is ``d`` itself, later ones ``momentum * buf + d``; Nesterov
        steps along ``d + momentum * buf``, plain momentum along ``buf``.
        """
        new_params: State = {}
        new_buffers: State = {}
        for (name, p), g in zip(params.items(), grads, strict=True):
            d = g + self.weight_decay * p if self.weight_decay else g
            if self.momentum:
                buf = d if buffers is None else self.momentum * buffers[name] + d
                new_buffers[name] = buf
                d = d + self.momentum * buf if self.nesterov else buf
            new_params[name] = p - self.lr * d
        return new_params, (new_buffers if self.momentum else None)
