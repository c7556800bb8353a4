"""Device names: a device this machine cannot use is a clear ValueError, not a deep assertion."""

import pytest
import torch

from evomal.tasks import get_task
from evomal.training import train
from evomal.training.device import resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_cpu_names_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_an_unknown_device_name_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"unknown device 'gpu0'.*'cuda:N'"):
        resolve_device("gpu0")


@no_cuda
def test_cuda_without_cuda_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"no usable CUDA.*--device cpu"):
        resolve_device("cuda:1")


@no_cuda
def test_train_on_cuda_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="no usable CUDA"):
        train("linear", "ce", get_task("wine"), steps=2, device="cuda")
