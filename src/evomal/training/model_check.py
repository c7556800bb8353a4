"""Check up front that a model works the way evomal trains it.

evomal calls a base model through ``torch.func.functional_call`` (the local
search differentiates through training steps) and, to score several
candidate losses in one pass, under ``vmap`` with stacked parameters
(:mod:`evomal.training.population`). A user's model can break either; finding
out inside every fitness job would end a search with every candidate
"failed". :func:`check_model` runs both on a two-sample batch before anything
is written: a model that fails ``functional_call`` is refused with the
reason, and one that only fails ``vmap`` is marked for one-by-one evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call

from evomal.errors import ModelError
from evomal.tasks.models.source import ModelRef
from evomal.tasks.task import Task
from evomal.training.population import StackedModel


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model` found: whether candidates can be batched, and why not."""

    vmappable: bool
    reason: str | None = None


def check_model(model: ModelRef, task: Task, options: dict[str, Any] | None = None) -> ModelCheck:
    """Build ``model`` for ``task`` and run it as evomal will; ``ValueError`` if it cannot."""
    options = options or {}
    first = model.build(task.input_shape, task.n_outputs, seed=0, **options).to(task.device)
    second = model.build(task.input_shape, task.n_outputs, seed=1, **options).to(task.device)
    first.train()
    second.train()
    x = task.augmentation.eval_batch(task.train.x[:2])
    try:
        with torch.no_grad():
            out = first(x)
    except Exception as exc:  # the user's forward pass: any error is theirs to see
        raise ModelError(
            f"model {model} fails on a batch of task {task.name!r} inputs of shape "
            f"{tuple(x.shape)}: {type(exc).__name__}: {exc}"
        ) from None
    if tuple(out.shape) != (2, task.n_outputs):
        raise ModelError(
            f"model {model} returns outputs of shape {tuple(out.shape)} for a batch of 2; "
            f"task {task.name!r} needs [batch, {task.n_outputs}] (one column per "
            f"{'class' if task.kind == 'classification' else 'target'})"
        )
    # Plain tensors, as the local search passes them (not the module's Parameters).
    params = {k: v.detach().clone().requires_grad_(True) for k, v in first.named_parameters()}
    buffers = {k: v.clone() for k, v in first.named_buffers()}
    try:
        functional_call(first, (params, buffers), (x,))
    except Exception as exc:
        raise ModelError(
            f"model {model} does not work with torch.func.functional_call, which the local "
            f"search needs ({type(exc).__name__}: {exc}); avoid in-place changes to "
            "parameters and Python-side state in forward()"
        ) from None
    try:
        stacked = StackedModel([first, second])
        stacked(x).sum().backward()
    except Exception as exc:
        return ModelCheck(False, f"{type(exc).__name__}: {exc}")
    return ModelCheck(True)
