"""Meta-testing: train a fresh base model with a loss for the full schedule, report test metric.

Every method gets identical initial conditions for a seed: the base model is
built from the seed, and batches are drawn from a generator seeded with it.
"""

from __future__ import annotations

from typing import Any

from evomal.runs.config import SearchConfig
from evomal.tasks.task import Task
from evomal.training.loop import TrainResult, train
from evomal.training.optim import SGDConfig


def sgd_from(config: SearchConfig) -> SGDConfig:
    t = config.training
    return SGDConfig(
        lr=t.lr,
        momentum=t.momentum,
        nesterov=t.nesterov,
        weight_decay=t.weight_decay,
        milestones=t.milestones,
        gamma=t.gamma,
    )


def meta_test(
    loss: Any,
    task: Task,
    model: str,
    config: SearchConfig,
    *,
    seed: int,
    steps: int | None = None,
    progress: Any = None,
) -> TrainResult:
    """Train ``model`` from seed ``seed`` with ``loss`` and report validation and test metrics."""
    return train(
        model,
        loss,
        task,
        steps if steps is not None else config.meta_test.steps,
        sgd_from(config),
        batch_size=config.training.batch_size,
        seed=seed,
        device=config.execution.device,
        evaluate_test=True,
        progress=progress,
        model_options=dict(config.model_options),
    )
