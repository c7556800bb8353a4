"""The evaluation context: everything a worker needs to score candidate losses.

A :class:`ContextSpec` is plain data (tasks with their tensors, the model
reference and options, the configuration, the run seed). It travels to each
worker once; the worker builds an :class:`EvaluationContext` from it (base
learners, screening probes) and keeps it for every candidate it evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from evomal.config import SearchConfig
from evomal.gp.filters import ScreeningProbe, make_probe
from evomal.meta.base_learner import BaseLearner
from evomal.meta.scale import ScaleNormaliser
from evomal.optim import SGDConfig
from evomal.symbolic.transforms import TaskKind
from evomal.tasks.models.source import ModelRef
from evomal.tasks.task import Task
from evomal.training.device import resolve_device
from evomal.training.unrolled_sgd import UnrolledSGD


@dataclass(frozen=True)
class ContextSpec:
    """Plain data from which any worker rebuilds the same evaluation context."""

    tasks: tuple[Task, ...]
    model: ModelRef
    config: SearchConfig
    model_options: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def kind(self) -> TaskKind:
        return self.tasks[0].kind


class EvaluationContext:
    """Base learners and screening probes for a run, built once per worker."""

    def __init__(self, spec: ContextSpec, device: str | None = None) -> None:
        self.spec = spec
        self.config = spec.config
        target = resolve_device(device or spec.config.execution.device)
        self.tasks = tuple(t.to(target) if t.device != target else t for t in spec.tasks)
        self.learners = [BaseLearner(t, spec.model, dict(spec.model_options)) for t in self.tasks]
        self._probes: list[ScreeningProbe] | None = None
        self._normaliser: ScaleNormaliser | None = None

    @property
    def probes(self) -> list[ScreeningProbe]:
        """One probe per task: B training samples and an untrained model's predictions."""
        if self._probes is None:
            filters = self.config.filters
            self._probes = []
            for j, learner in enumerate(self.learners):
                model = learner.build(self.spec.seed + j)
                task = learner.task
                self._probes.append(
                    make_probe(
                        model,
                        task.train.x,
                        task.train.y,
                        task.kind,
                        filters.rejection_samples,
                        self.spec.seed + j,
                        prepare=_EvalTransform(task),
                    )
                )
        return self._probes

    @property
    def sgd(self) -> SGDConfig:
        """The optimiser fitness trains with."""
        return self.config.fitness.optimizer

    @property
    def base_lr(self) -> float:
        """The learning rate of the local search's unrolled steps."""
        ls = self.config.local_search
        return ls.base_lr if ls.base_lr is not None else self.config.fitness.optimizer.lr

    @property
    def unrolled_optimizer(self) -> UnrolledSGD:
        """The update rule the local search differentiates through."""
        if self.config.local_search.unroll_optimizer:
            return UnrolledSGD.from_config(self.config.fitness.optimizer, self.base_lr)
        return UnrolledSGD.plain(self.base_lr)

    @property
    def normaliser(self) -> ScaleNormaliser | None:
        """The scale normaliser on this context's probes, when ``normalise_scale`` is on."""
        if not self.config.local_search.normalise_scale:
            return None
        if self._normaliser is None:
            self._normaliser = ScaleNormaliser(self.probes)
        return self._normaliser


class _EvalTransform(torch.nn.Module):
    """The task's evaluation-time input transform (normalisation) as a module."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task.augmentation.eval_batch(x)
