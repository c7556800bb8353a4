"""A base learner for one task: seeded fresh initialisations and a functional forward.

The local search resets the base model at every meta step (Algorithm 1), and
fitness trains from the run's seeded initial weights. Both draw initial
parameters here, from ``build_model(..., seed=s)``, so an initialisation in
the local search follows exactly the distribution the model uses for real
training, and a seed always gives the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call

from evomal.tasks.models.source import ModelLike, resolve_model
from evomal.tasks.task import Task

State = dict[str, Tensor]


@dataclass
class BaseLearner:
    """A task paired with a model architecture (any :data:`ModelLike`)."""

    task: Task
    model: ModelLike
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The first build validates the architecture against the task's shapes;
        # the many rebuilds after it (one per meta step) skip that check.
        self.source = resolve_model(self.model)
        self.template = self.source.build(
            self.task.input_shape, self.task.n_outputs, seed=0, **self.options
        ).to(self.task.device)
        self.template.train()

    def build(self, seed: int) -> nn.Module:
        """A fresh module with weights drawn from ``seed``, on the task's device."""
        module = self.source.build(
            self.task.input_shape,
            self.task.n_outputs,
            seed=seed,
            validate=False,
            **self.options,
        )
        return module.to(self.task.device)

    def initial_state(self, seed: int) -> tuple[State, State]:
        """Parameters and buffers of a fresh initialisation drawn from ``seed`` (detached)."""
        module = self.build(seed)
        params = {k: v.detach() for k, v in module.named_parameters()}
        buffers = {k: v.detach() for k, v in module.named_buffers()}
        return params, buffers

    def forward(self, params: State, buffers: State, x: Tensor) -> Tensor:
        """The template's forward pass with the given parameters and buffers."""
        return functional_call(self.template, (params, buffers), (x,))
