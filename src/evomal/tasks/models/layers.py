"""Pieces shared by the model builders: option checks, channel scaling, initialisation.

The option checks raise ``ValueError`` naming the option and what it accepts,
so a misspelt or out-of-range value in a config fails at build time with a
message that says how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from evomal.errors import ModelError


def positive_int(option: str, value: object, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelError(f"option {option}={value!r} is invalid: expected an integer >= {minimum}")
    return value


def positive_float(option: str, value: object) -> float:
    """``value`` as a float > 0 (ints are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ModelError(f"option {option}={value!r} is invalid: expected a number > 0")
    return float(value)


def probability(option: str, value: object) -> float:
    """``value`` as a dropout probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ModelError(f"option {option}={value!r} is invalid: expected a number in [0, 1)")
    return float(value)


def choice(option: str, value: object, choices: Sequence[str]) -> str:
    """``value`` as one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ModelError(f"option {option}={value!r} is invalid: expected one of {list(choices)}")
    return value


def flag(option: str, value: object) -> bool:
    """``value`` as a bool (only ``True`` / ``False``)."""
    if not isinstance(value, bool):
        raise ModelError(f"option {option}={value!r} is invalid: expected True or False")
    return value


def int_sequence(option: str, value: object) -> tuple[int, ...]:
    """``value`` as a (possibly empty) tuple of positive ints, e.g. hidden layer sizes."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ModelError(
            f"option {option}={value!r} is invalid: expected a sequence of integers >= 1"
        )
    return tuple(positive_int(f"{option}[{i}]", item) for i, item in enumerate(value))


def scaled(channels: int, width: float) -> int:
    """A layer's channel count multiplied by the ``width`` option, at least 1.

    ``width=1`` gives the published architecture; smaller values build the same
    topology with fewer channels, which is what the fast CPU tests use.
    """
    return max(1, round(channels * width))


def init_conv_kaiming(model: nn.Module) -> nn.Module:
    """He-normal (fan-out, ReLU gain) convolution weights and zero conv biases.

    The usual initialisation for the ReLU convnets in the zoo; BatchNorm and
    Linear layers keep PyTorch's defaults (unit scale and zero shift for BN).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    batch_norm: bool = True,
) -> list[nn.Module]:
    """Convolution, optional BatchNorm, ReLU, as a list to splice into a ``Sequential``.

    The convolution carries a bias only when there is no BatchNorm to absorb it.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return layers
