"""Where a base model comes from: a registered name, a user's builder, or a user's module.

A user brings a model in one of three forms (:data:`ModelLike`):

* a registered name (``"mlp"``, ``"lenet5"``, or one added with
  :func:`register_model`);
* a builder ``builder(input_shape, n_outputs, seed) -> nn.Module``, as a
  function or as its import path ``"package.module:function"``;
* an ``nn.Module`` instance, used as a template: every seed gets a deep copy
  whose layers are re-initialised with their own ``reset_parameters``.

:func:`resolve_model` turns any of them into a :class:`ModelRef`, the one
form the rest of evomal passes around. A ref that knows an import path (or a
registered name) pickles as that path, so process and Ray workers and
``evomal resume`` rebuild the model by importing it; a lambda or a function
defined inside another function has no such path and runs in the serial
executor only (:meth:`ModelRef.require_portable` says why otherwise).
Importing a path runs the user's own code, as ``python -m`` would; loss files,
by contrast, never execute anything.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import nn

from evomal.errors import ModelError, UnknownNameError
from evomal.tasks.models.zoo import MODELS, ModelSpec, build_model
from evomal.tasks.user_code import import_object

#: ``builder(input_shape, n_outputs, seed) -> nn.Module``.
UserBuilder = Callable[[tuple[int, ...], int, int], nn.Module]

#: What ``evomal.search(task, model=...)`` accepts.
ModelLike = Union[str, UserBuilder, nn.Module, "ModelRef"]

_BUILDER_HELP = (
    "a model is a registered name (see `evomal models`), a builder "
    "builder(input_shape, n_outputs, seed) -> nn.Module (or its import path "
    "'package.module:function'), or an nn.Module instance to re-initialise per seed"
)


@dataclass(frozen=True, eq=False)
class ModelRef:
    """A resolved base model: how to build it for a seed, and how to name and ship it.

    ``name`` is what run directories and tables record: the registered name
    or the import path. ``path`` is set when the model can be rebuilt from
    ``name`` alone (registered names and importable builders).
    """

    name: str
    path: str | None
    builder: UserBuilder | None = None
    template: nn.Module | None = None

    @property
    def registered(self) -> ModelSpec | None:
        """The built-in registry entry, for the models that ship with evomal."""
        return MODELS.get(self.name) if self.builder is None and self.template is None else None

    @property
    def record(self) -> str:
        """What a run directory stores to rebuild the model: the path, else the name."""
        return self.path or self.name

    @property
    def image(self) -> bool | None:
        """Whether a registered model takes image inputs; ``None`` for a user's model."""
        spec = self.registered
        return spec.image if spec is not None else None

    @property
    def portable(self) -> bool:
        """Whether process and Ray workers can rebuild the model (by path or by pickling)."""
        if self.path is not None:
            return True
        return self.template is not None and _importable_class(type(self.template))

    def require_portable(self, executor: str) -> None:
        """A clear error when the ``executor``'s workers cannot rebuild this model."""
        if executor in ("serial", "auto") or self.portable:
            return
        raise ModelError(
            f"model {self.name} cannot be imported by path (a lambda, a function defined "
            f"inside another function, or one defined in the __main__ script), so the "
            f"{executor} executor's workers cannot rebuild it. Define the builder at module "
            "level in an importable module and pass it (or 'package.module:function'), or "
            "use execution.executor=serial"
        )

    def build(
        self,
        input_shape: Sequence[int],
        n_outputs: int,
        *,
        seed: int | None = None,
        validate: bool = True,
        **options: Any,
    ) -> nn.Module:
        """A fresh model for ``seed``; the same seed always gives the same weights."""
        if self.registered is not None:
            return build_model(
                self.name, input_shape, n_outputs, seed=seed, validate=validate, **options
            )
        shape = tuple(input_shape)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(0 if seed is None else seed)
            if self.template is not None:
                if options:
                    raise ModelError(
                        f"model options {sorted(options)} cannot be applied to an nn.Module "
                        "instance; pass a builder that takes them as keyword arguments"
                    )
                return reinitialised(self.template)
            assert self.builder is not None
            module = self.builder(shape, n_outputs, 0 if seed is None else seed, **options)
        if not isinstance(module, nn.Module):
            raise ModelError(
                f"model builder {self.name} returned {type(module).__name__}, not an nn.Module"
            )
        return module

    def __reduce__(self) -> tuple[Any, ...]:
        # Ship by path where there is one: workers import the user's module
        # themselves, and nothing unpicklable (closures) has to travel.
        if self.path is not None:
            return (resolve_model, (self.path,))
        return (ModelRef, (self.name, None, self.builder, self.template))

    def __str__(self) -> str:
        return self.name


def reinitialised(template: nn.Module) -> nn.Module:
    """A deep copy of ``template`` with every layer's ``reset_parameters`` called.

    Raises ``ValueError`` naming the first layer that holds parameters of its
    own but cannot reset them, since a copy with the template's trained (or
    shared) weights would silently give every seed the same start.
    """
    model = copy.deepcopy(template)
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        reset = getattr(module, "reset_parameters", None)
        if not callable(reset):
            raise ModelError(
                f"layer {name or '<root>'} ({type(module).__name__}) of the model has "
                "parameters but no reset_parameters(), so evomal cannot re-initialise it "
                "for each seed; give it a reset_parameters() method or pass a builder "
                "builder(input_shape, n_outputs, seed) -> nn.Module instead"
            )
        reset()
    return model


#: Models added with :func:`register_model`, by name.
USER_MODELS: dict[str, UserBuilder] = {}


def register_model(name: str, builder: UserBuilder) -> None:
    """Add ``name`` for ``model=name`` and ``--model name``, built by ``builder``.

    ``builder(input_shape, n_outputs, seed)`` returns a fresh ``nn.Module``.

    Registered names live in this process. Run directories record the
    builder's import path when it has one, so workers of the process and Ray
    executors and ``evomal resume`` rebuild it without the registration.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ModelError(f"a model name is a non-empty string without ':', got {name!r}")
    if name in MODELS:
        raise ModelError(f"{name!r} is a built-in model and cannot be replaced")
    if not callable(builder) or isinstance(builder, nn.Module):
        raise ModelError(f"register_model({name!r}, ...) needs a builder function")
    USER_MODELS[name] = builder


def resolve_model(model: ModelLike) -> ModelRef:
    """The :class:`ModelRef` for any accepted form of model (see the module docstring)."""
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, str):
        if model in MODELS:
            return ModelRef(model, model)
        if model in USER_MODELS:
            builder = USER_MODELS[model]
            return ModelRef(model, _import_path(builder), builder=builder)
        if ":" in model:
            return _import_builder(model)
        raise UnknownNameError(
            f"unknown model {model!r}; valid names: {list(MODELS)}, or a builder's import "
            "path 'package.module:function'"
        )
    if isinstance(model, nn.Module):
        reinitialised(model)  # fail now, not inside a worker, if a layer cannot be reset
        cls = type(model)
        return ModelRef(f"{cls.__module__}.{cls.__qualname__} instance", None, template=model)
    if callable(model):
        path = _import_path(model)
        return ModelRef(path or _describe(model), path, builder=model)
    raise ModelError(f"model must be one of: {_BUILDER_HELP}; got {type(model).__name__}")


def _import_builder(path: str) -> ModelRef:
    obj = import_object(path, "model", ModelError)
    if isinstance(obj, nn.Module):
        raise ModelError(f"{path} is an nn.Module instance; pass a builder function by path")
    if not callable(obj):
        raise ModelError(f"{path} is not callable; expected {_BUILDER_HELP}")
    return ModelRef(path, path, builder=obj)


def _import_path(fn: Callable[..., Any]) -> str | None:
    """``module:qualname`` when ``fn`` can be imported back by that path, else ``None``."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if obj is fn else None


def _importable_class(cls: type) -> bool:
    return "<" not in cls.__qualname__ and cls.__module__ != "__main__"


def _describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "?")
    qualname = getattr(fn, "__qualname__", type(fn).__name__)
    try:
        where = f", {inspect.getsourcefile(fn)}"
    except TypeError:
        where = ""
    return f"{module}.{qualname}{where}"
