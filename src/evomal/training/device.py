"""Turning a device name from the user into a ``torch.device`` that exists here.

``torch.device("cuda")`` succeeds on a machine without a GPU; the failure
comes later, deep inside the first ``.to()``, as an assertion about how
PyTorch was compiled. Checking up front gives one clear message that says
what to change instead.
"""

from __future__ import annotations

import torch

from evomal.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """The ``torch.device`` for ``name``, or a ``ValueError`` saying why it cannot be used."""
    if isinstance(name, torch.device):
        device = name
    else:
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise ConfigError(
                f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N' (--device / "
                f"execution.device)"
            ) from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} was asked for, but this PyTorch has no usable CUDA "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False): install a "
                f"CUDA build of PyTorch on a machine with a GPU, or use the CPU (--device cpu, or "
                f"--set execution.device=cpu)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {str(device)!r} was asked for, but only {count} GPU(s) are visible "
                f"(cuda:0 to cuda:{count - 1}); check CUDA_VISIBLE_DEVICES"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for, but MPS is not available: use --device cpu")
    return device
