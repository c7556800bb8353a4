"""The model registry: ``build_model(name, input_shape, n_outputs, seed=..., **options)``.

Every entry names a builder function whose keyword-only arguments are the
model's options; their defaults are the sizes used in the paper. The registry
validates the name, the options and the input shape before building, so a bad
config fails with a ``ValueError`` that lists what would have worked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evomal.errors import ConfigError, ModelError, UnknownNameError
from evomal.tasks.models.convnets import (
    build_alexnet,
    build_allcnnc,
    build_lenet5,
    build_squeezenet,
    build_vgg16,
)
from evomal.tasks.models.dense import build_linear, build_mlp
from evomal.tasks.models.resnets import (
    build_preresnet,
    build_pyramidnet,
    build_resnet18,
    build_wideresnet,
)

Builder = Callable[..., nn.Module]

_IMAGE_SHAPES = "image inputs (channels, height, width), e.g. (1, 28, 28) or (3, 32, 32)"


@dataclass(frozen=True)
class ModelSpec:
    """One named architecture: its builder, a one-line summary and what inputs it takes.

    ``image`` models need ``input_shape = (channels, height, width)``; the
    others flatten whatever shape they are given. ``small`` marks the models
    whose training step on a GPU is bound by kernel launches rather than
    arithmetic (docs/performance.md, "GPU cost model"), where training several
    candidates at once pays; the deep convolutional nets fill a GPU alone.
    """

    name: str
    builder: Builder
    summary: str
    image: bool
    small: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The builder's keyword-only options and their (paper) defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    @property
    def accepts(self) -> str:
        return _IMAGE_SHAPES if self.image else "any input shape (flattened), e.g. (64,) or (40,)"


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("linear", build_linear, "flatten + one linear layer", image=False, small=True),
        ModelSpec(
            "mlp", build_mlp, "flatten + ReLU multilayer perceptron", image=False, small=True
        ),
        ModelSpec("lenet5", build_lenet5, "LeNet-5 (MNIST)", image=True, small=True),
        ModelSpec("alexnet", build_alexnet, "AlexNet, 32x32 variant", image=True),
        ModelSpec("vgg16", build_vgg16, "VGG-16 with BatchNorm, CIFAR variant", image=True),
        ModelSpec("allcnnc", build_allcnnc, "All-CNN-C", image=True),
        ModelSpec("resnet18", build_resnet18, "ResNet-18, CIFAR variant", image=True),
        ModelSpec("preresnet", build_preresnet, "pre-activation ResNet (101)", image=True),
        ModelSpec("wideresnet", build_wideresnet, "Wide ResNet (28-10)", image=True),
        ModelSpec("squeezenet", build_squeezenet, "SqueezeNet 1.1, 32x32 variant", image=True),
        ModelSpec("pyramidnet", build_pyramidnet, "PyramidNet (110, alpha 48)", image=True),
    )
}


def model_names() -> list[str]:
    """The registered model names, in registry order."""
    return list(MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown model {name!r}; valid names: {model_names()}") from None


def build_model(
    name: str,
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    seed: int | None = None,
    validate: bool = True,
    **options: Any,
) -> nn.Module:
    """Build the named model for inputs of ``input_shape`` (no batch dim) and ``n_outputs`` logits.

    With ``seed`` the weights depend on the seed alone: the model is initialised
    from a forked CPU generator, so the caller's global RNG state is left as it
    was (same seed, same ``state_dict``). Without it the global RNG is used, as
    with any ``torch.nn`` constructor. The model is returned in training mode on
    the current default device.

    Raises ``ValueError`` for an unknown name, an unknown or invalid option, or
    an input shape the architecture cannot process (too few dimensions for an
    image model, or an image so small that a layer would have no pixels left).
    ``validate=False`` skips the shape check (a dry run on the meta device,
    which consumes no random numbers): for callers that rebuild an already
    validated model many times, such as the local search's resets.
    """
    spec = get_model_spec(name)
    shape = _check_shape(input_shape)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise ModelError(f"n_outputs must be an integer >= 1, got {n_outputs!r}")
    valid = spec.options
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for model {name!r}; valid options (defaults): {valid}"
        )
    if spec.image:
        if len(shape) != 3:
            raise ModelError(
                f"model {name!r} takes {spec.accepts}; got input_shape {shape}. "
                "Use 'linear' or 'mlp' for flat inputs."
            )
        if validate:
            _check_fits(spec, shape, n_outputs, options)
    if seed is None:
        return spec.builder(shape, n_outputs, **options)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return spec.builder(shape, n_outputs, **options)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ModelError(
            f"input_shape must be a non-empty tuple of positive ints without the batch "
            f"dimension, e.g. (64,) or (3, 32, 32); got {input_shape!r}"
        )
    return shape


def _check_fits(
    spec: ModelSpec, shape: tuple[int, ...], n_outputs: int, options: dict[str, Any]
) -> None:
    """Build the model on the meta device and push a dummy batch through it.

    This costs no memory or random numbers, validates the options (builders
    raise ``ValueError`` for bad values) and turns "kernel size can't be greater
    than actual input size" deep inside a forward pass into an error at build
    time that names the model and the shapes that work.
    """
    with torch.device("meta"):
        probe = spec.builder(shape, n_outputs, **options)
    probe.eval()
    try:
        with torch.no_grad():
            out = probe(torch.empty((2, *shape), device="meta"))
    except RuntimeError as err:
        raise ModelError(
            f"model {spec.name!r} cannot process input_shape {shape} (the image is too small "
            f"for its layers: {err}); it takes {spec.accepts}"
        ) from err
    if tuple(out.shape) != (2, n_outputs):
        raise AssertionError(f"{spec.name!r} produced {tuple(out.shape)} for {shape}")
