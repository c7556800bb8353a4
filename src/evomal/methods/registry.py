"""The one list of methods: name, display label, runner, and the settings each one fixes.

Everything that needs to know which methods exist (the search API, the
experiment runner, the CLI's progress bar and the report tables) reads this
registry, so adding a method is one entry here. Runners are imported lazily
by path: the registry itself is cheap to import, and the report layer can
read labels without pulling in torch-heavy method code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evomal.config import SearchConfig, replace_config
from evomal.errors import UnknownNameError

if TYPE_CHECKING:
    from evomal.methods.base import Method


def _gp_generations(config: SearchConfig) -> int:
    return config.gp.generations


@dataclass(frozen=True)
class MethodSpec:
    """One method: how it is named, where its runner lives, and what it fixes in the config.

    ``fixed`` holds the config sections a method always overrides (GP-LFL and
    GLO have no local search). They are applied by :meth:`configure` before a
    run directory is created, so ``config.json`` records the settings that ran.
    """

    name: str
    label: str
    runner: str  # "module:function"
    fixed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    generations: Callable[[SearchConfig], int] = _gp_generations
    #: whether the final selection runs after it (not for methods that learn nothing)
    selects: bool = True
    #: whether it returns a baseline rather than a learned loss (baseline, zoo)
    learns: bool = True

    def configure(self, config: SearchConfig) -> SearchConfig:
        """``config`` with this method's fixed settings applied (idempotent)."""
        return replace_config(config, **self.fixed) if self.fixed else config

    def load(self) -> Method:
        """The method's runner, ``run(MethodRun) -> SearchResult``."""
        module, function = self.runner.split(":")
        run: Method = getattr(importlib.import_module(module), function)
        return run


_NO_LOCAL_SEARCH = {"local_search": {"enabled": False}}

#: Every method, in the order tables and plots show them (baselines first, EvoMAL last).
REGISTRY: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "baseline",
            "Baseline",
            "evomal.methods.baseline:run_baseline",
            generations=lambda config: 1,
            selects=False,
            learns=False,
        ),
        MethodSpec(
            "zoo",
            "Zoo (tuned)",
            "evomal.methods.zoo:run_zoo",
            generations=lambda config: 1,
            selects=False,
            learns=False,
        ),
        MethodSpec("ml3", "ML3", "evomal.methods.ml3:run_ml3", generations=lambda config: 1),
        MethodSpec(
            "taylorglo",
            "TaylorGLO",
            "evomal.methods.taylorglo:run_taylorglo",
            generations=lambda config: config.cmaes.generations,
        ),
        MethodSpec(
            "glo",
            "GLO",
            "evomal.methods.glo:run_glo",
            fixed=_NO_LOCAL_SEARCH,
            generations=lambda config: config.gp.generations + config.cmaes.generations,
        ),
        MethodSpec("gplfl", "GP-LFL", "evomal.methods.gp_search:run_gplfl", fixed=_NO_LOCAL_SEARCH),
        MethodSpec("evomal", "EvoMAL", "evomal.methods.gp_search:run_evomal"),
    )
}

#: Method names, in display order.
METHODS: tuple[str, ...] = tuple(REGISTRY)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``, or a clear error listing the valid names."""
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown method {name!r}; expected one of {list(METHODS)}")
    return REGISTRY[name]
