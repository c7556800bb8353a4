"""Training base models: the loop, task losses and metrics, optimiser settings."""

from evomal.optim import SGDConfig
from evomal.training.loop import (
    EpochSampler,
    TrainResult,
    evaluate,
    evaluate_per_sample,
    resolve_loss,
    train,
)
from evomal.training.metrics import metric, metric_name, per_sample_metric, task_loss

__all__ = [
    "EpochSampler",
    "SGDConfig",
    "TrainResult",
    "evaluate",
    "evaluate_per_sample",
    "metric",
    "metric_name",
    "per_sample_metric",
    "resolve_loss",
    "task_loss",
    "train",
]
