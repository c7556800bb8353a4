"""TensorBoard logging for ``--tensorboard DIR`` on ``search``, ``train`` and ``test``.

A :class:`TensorBoardLogger` is a search listener (like the progress bar):
per generation it writes the best fitness so far, the population's best and
mean, and how many candidates each filter cached, rejected or let through;
per finalist of the selection stage, its validation metric; and the best
formula as text. For training runs it writes the training loss per step,
the validation curve and the test metric. It needs the ``tensorboard``
package (``pip install "evomal[tensorboard]"``).
"""

from __future__ import annotations

import os
from typing import Any

from evomal.errors import ConfigError
from evomal.events import FinalistEvent, GenerationEvent
from evomal.training.loop import TrainResult


class TensorBoardLogger:
    """Writes evomal's events and training curves as TensorBoard scalars and text."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise ConfigError(
                '--tensorboard needs the tensorboard package: pip install "evomal[tensorboard]"'
            ) from None
        self.writer = SummaryWriter(log_dir=os.fspath(log_dir))
        self._best: str | None = None

    def __call__(self, event: Any) -> None:
        """A search listener: generations and finalists (candidates are too many to plot)."""
        if isinstance(event, GenerationEvent):
            summary, g = event.summary, event.generation
            for name in ("best_so_far", "population_best", "population_mean"):
                value = getattr(summary, name)
                if value is not None:
                    self.writer.add_scalar(f"search/{name}", value, g)
            for verdict, count in summary.verdicts.items():
                self.writer.add_scalar(f"filters/{verdict}", count, g)
            if summary.best_expression and summary.best_expression != self._best:
                self._best = summary.best_expression
                self.writer.add_text("search/best_expression", summary.best_expression, g)
        elif isinstance(event, FinalistEvent) and event.records:
            record = event.records[-1]
            if record.get("val_metric") is not None:
                self.writer.add_scalar("selection/val_metric", record["val_metric"], event.index)
            self.writer.add_text("selection/finalist", str(record.get("label")), event.index)
        self.writer.flush()

    def training(self, tag: str, result: TrainResult) -> None:
        """A finished training run: loss per step, validation curve, final metrics."""
        for step, value in enumerate(result.loss_history, start=1):
            self.writer.add_scalar(f"{tag}/train_loss", value, step)
        for step, value in result.val_history:
            self.writer.add_scalar(f"{tag}/val_metric", value, step)
        if not result.diverged:
            if result.val_metric is not None:
                self.writer.add_scalar(f"{tag}/final_val_metric", result.val_metric, result.steps)
            if result.test_metric is not None:
                self.writer.add_scalar(f"{tag}/test_metric", result.test_metric, result.steps)
        self.writer.flush()

    def text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, text)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def both(*listeners: Any) -> Any:
    """One listener that passes each event to every listener given (Nones skipped)."""
    active = [listener for listener in listeners if listener is not None]

    def listen(event: Any) -> None:
        for listener in active:
            listener(event)

    return listen
