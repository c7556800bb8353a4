"""Optimiser settings: SGD with momentum, Nesterov, weight decay and MultiStep schedules.

One frozen dataclass describes the optimiser so that configs, run directories
and presets hold it as plain data; :meth:`SGDConfig.build` makes the torch
optimiser and :meth:`SGDConfig.lr_at` gives the learning rate at any step.
"""

from __future__ import annotations

from collections.abc import Iterable
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
