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
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from evomal.config import SearchConfig, replace_config
from evomal.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from evomal.methods.base import Method


def _gp_generations(config: SearchConfig) -> int:
    return config.gp.generations


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """One method and what the rest of evomal asks about it.

    ``fixed`` holds the config sections a method always overrides (GP-LFL and
    GLO have no local search). They are applied by :meth:`configure` before a
    run directory is created, so ``config.json`` records the settings that ran.
    """

    name: str
    label: str
    runner: str  # "module:function"
    #: what it learns, in a few words (the command line's help, the README's table)
    summary: str
    fixed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    generations: Callable[[SearchConfig], int] = _gp_generations
    #: whether the final selection runs after it (not for methods that learn nothing)
    selects: bool = True
    #: whether it returns a baseline rather than a learned loss (baseline, zoo)
    learns: bool = True
    #: whether its candidates are trees that go through the filters (screen, equivalence)
    trees: bool = False
    #: the section of SearchConfig that holds its own settings, if it has any
    config_section: str | None = None
    #: the row every other method is compared with in an experiment's tables
    reference: bool = False
    #: what its finalists always adapt online while they train: ``loss`` (AdaLFL) or ``lr``
    #: (hypergradient descent); None: they adapt only with ``online.enabled``
    online: str | None = None

    def __post_init__(self) -> None:
        sections = {f.name for f in fields(SearchConfig)}
        if self.config_section is not None and self.config_section not in sections:
            raise ConfigError(
                f"method {self.name!r} names the config section {self.config_section!r}, which "
                f"SearchConfig does not have; add it there as a field (sections: "
                f"{', '.join(sorted(sections))})"
            )

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
            name="baseline",
            label="Baseline",
            runner="evomal.methods.baseline:run_baseline",
            summary="nothing: the task loss (cross-entropy or MSE)",
            generations=lambda config: 1,
            selects=False,
            learns=False,
            reference=True,
        ),
        MethodSpec(
            name="zoo",
            label="Zoo (tuned)",
            runner="evomal.methods.zoo:run_zoo",
            summary="nothing: the best tuned known loss",
            generations=lambda config: 1,
            selects=False,
            learns=False,
            config_section="zoo",
        ),
        MethodSpec(
            name="ml3",
            label="ML3",
            runner="evomal.methods.ml3:run_ml3",
            summary="a loss network",
            generations=lambda config: 1,
            config_section="ml3",
        ),
        MethodSpec(
            name="hypergrad",
            label="Hypergrad",
            runner="evomal.methods.online:run_hypergrad",
            summary="an online learning-rate schedule for the task loss",
            generations=lambda config: 1,
            config_section="online",
            online="lr",
        ),
        MethodSpec(
            name="adalfl",
            label="AdaLFL",
            runner="evomal.methods.online:run_adalfl",
            summary="a loss network, adapted online while it trains",
            generations=lambda config: 1,
            config_section="online",
            online="loss",
        ),
        MethodSpec(
            name="taylorglo",
            label="TaylorGLO",
            runner="evomal.methods.taylorglo:run_taylorglo",
            summary="a Taylor polynomial, by CMA-ES",
            generations=lambda config: config.cmaes.generations,
            config_section="cmaes",
        ),
        MethodSpec(
            name="glo",
            label="GLO",
            runner="evomal.methods.glo:run_glo",
            summary="a tree, then its weights by CMA-ES",
            fixed=_NO_LOCAL_SEARCH,
            generations=lambda config: config.gp.generations + config.cmaes.generations,
            trees=True,
            config_section="cmaes",
        ),
        MethodSpec(
            name="gplfl",
            label="GP-LFL",
            runner="evomal.methods.gp_search:run_gplfl",
            summary="a tree",
            fixed=_NO_LOCAL_SEARCH,
            trees=True,
            config_section="gp",
        ),
        MethodSpec(
            name="evomal",
            label="EvoMAL",
            runner="evomal.methods.gp_search:run_evomal",
            summary="a tree and its edge weights",
            trees=True,
            config_section="gp",
        ),
    )
}


def method_names() -> tuple[str, ...]:
    """Every registered method's name, in display order (registered ones last)."""
    return tuple(REGISTRY)


#: Method names, in display order, as registered when evomal was imported.
METHODS: tuple[str, ...] = method_names()


def register(spec: MethodSpec) -> None:
    """Add a method (or replace one of the same name): its runner, at ``spec.runner``, is a
    function of a :class:`~evomal.methods.base.MethodRun`. Searches, experiments, tables
    and the command line then know it by name."""
    REGISTRY[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (the built-in ones stay)."""
    if name in METHODS:
        raise ValueError(f"{name} is built in and cannot be removed")
    REGISTRY.pop(name, None)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``, or a clear error listing the valid names."""
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown method {name!r}; expected one of {list(REGISTRY)}")
    return REGISTRY[name]


def tree_methods() -> tuple[str, ...]:
    """The methods whose candidates are trees scored through the filters."""
    return tuple(name for name, spec in REGISTRY.items() if spec.trees)


def help_text() -> str:
    """The methods for the command line's help: ``name (what it learns)``, comma-separated."""
    return "; ".join(f"{name} ({spec.summary})" for name, spec in REGISTRY.items())
