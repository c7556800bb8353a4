"""The automatic population-batching choice (``execution.batch_candidates=0``)."""

from __future__ import annotations

import pytest
from torch import nn

from evomal.config import build_config
from evomal.methods.base import AUTO_BATCH_SIZE, auto_batch_size
from evomal.tasks.models.source import resolve_model


def _config(device: str):
    return build_config(None, [f"execution.device={device}"])


@pytest.mark.parametrize(
    ("model", "cpu", "gpu"),
    [
        ("linear", AUTO_BATCH_SIZE, AUTO_BATCH_SIZE),
        ("mlp", AUTO_BATCH_SIZE, AUTO_BATCH_SIZE),
        # measured 0.83x batched on 2 CPU cores; launch bound on a GPU
        ("lenet5", 1, AUTO_BATCH_SIZE),
        # arithmetic bound on a GPU from one model on: one by one everywhere
        ("resnet18", 1, 1),
        ("wideresnet", 1, 1),
        ("vgg16", 1, 1),
    ],
)
def test_registered_models(model: str, cpu: int, gpu: int) -> None:
    ref = resolve_model(model)
    assert auto_batch_size(ref, _config("cpu")) == cpu
    assert auto_batch_size(ref, _config("cuda")) == gpu
    assert auto_batch_size(ref, _config("cuda:1")) == gpu


def _user_model(input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(n_outputs))


@pytest.mark.parametrize(
    ("input_shape", "expected"), [((40,), AUTO_BATCH_SIZE), ((1, 28, 28), 1), ((3, 8), 1)]
)
def test_a_users_model_is_judged_by_its_input_shape(
    input_shape: tuple[int, ...], expected: int
) -> None:
    ref = resolve_model(_user_model)
    for device in ("cpu", "cuda"):
        assert auto_batch_size(ref, _config(device), input_shape) == expected
