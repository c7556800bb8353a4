"""Optimiser settings: SGD with momentum, Nesterov, weight decay and MultiStep schedules.

One frozen dataclass describes the optimiser so that configs, run directories
and presets hold it as plain data; :meth:`SGDConfig.build` makes the torch
optimiser and :meth:`SGDConfig.lr_at` gives the learning rate at any step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from evomal.errors import ConfigError


@dataclass(frozen=True)
class SGDConfig:
    """SGD as the paper trains every base model (Section 4.2).

    ``milestones`` are step counts at which the learning rate is multiplied
    by ``gamma`` (a MultiStep schedule, counted in steps rather than epochs).
    """

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError(f"milestones must be strictly increasing, got {self.milestones}")
        if self.milestones and self.milestones[0] < 1:
            raise ConfigError(f"milestones are step counts >= 1, got {self.milestones}")
        if self.gamma <= 0:
            raise ConfigError(
                f"gamma (the learning-rate factor at a milestone) must be positive, "
                f"got {self.gamma}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate in effect for step ``step`` (0-based)."""
        drops = sum(1 for m in self.milestones if step >= m)
        return self.lr * self.gamma**drops

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.SGD:
        return torch.optim.SGD(
            params,
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def build_stacked(
        self, params: Iterable[torch.Tensor], lr_factors: Sequence[float]
    ) -> StackedSGD:
        """SGD over K stacked models whose learning rates are ``lr * lr_factors[k]``."""
        return StackedSGD(
            params,
            lr=self.lr,
            lr_factors=lr_factors,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


class StackedSGD(torch.optim.Optimizer):
    """``torch.optim.SGD`` for K models stacked on each tensor's first dimension, one lr each.

    Member k steps with learning rate ``group["lr"] * lr_factors[k]`` (the
    group's lr follows the MultiStep schedule as usual). Every other part of
    the update is torch's SGD, operation for operation: weight decay added to
    the gradient, a momentum buffer that starts as the first gradient,
    Nesterov's look-ahead. So member k follows ``SGDConfig(lr=lr * f_k, ...)``
    trained alone, up to float rounding. Scaling each member's loss instead
    would be exact only without weight decay (the decay term is not scaled).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        lr_factors: Sequence[float],
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr_factors or any(not f > 0 for f in lr_factors):
            raise ConfigError(f"learning-rate factors must be positive, got {list(lr_factors)}")
        defaults = {
            "lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
        }  # fmt: skip
        super().__init__(params, defaults)
        self.lr_factors = tuple(float(f) for f in lr_factors)
        self._rates: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}

    def _negative_rates(self, lr: float, like: torch.Tensor) -> torch.Tensor:
        """``-(lr * f_k)`` per member, each rounded as a scalar lr would be, shaped to broadcast."""
        key = (lr, like.dtype, like.device)
        if key not in self._rates:
            rates = torch.tensor([-(lr * f) for f in self.lr_factors], dtype=like.dtype)
            self._rates[key] = rates.to(like.device)
        if like.shape[0] != len(self.lr_factors):
            raise ValueError(
                f"a stacked tensor holds {like.shape[0]} models but there are "
                f"{len(self.lr_factors)} learning-rate factors"
            )
        return self._rates[key].reshape(-1, *([1] * (like.ndim - 1)))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            momentum, decay = group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad if decay == 0 else p.grad.add(p, alpha=decay)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf.mul_(momentum).add_(d_p)
                    d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.addcmul_(d_p, self._negative_rates(group["lr"], p))
