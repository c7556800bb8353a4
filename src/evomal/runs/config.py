"""Typed, validated search configuration, grouped by concern, with presets and overrides.

A configuration is a tree of frozen dataclasses (GP, local search, fitness,
filters, training, execution). It is built from a YAML preset and
``key=value`` overrides such as ``gp.population_size=10``. An unknown or
misspelt key is an error that lists the valid keys; values are parsed and
checked against the field's type. Configurations round-trip through plain
dicts, which is what a run directory stores.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from typing import Any, TypeVar

import yaml

from evomal.symbolic.primitives import PRIMITIVES, TERMINALS

T = TypeVar("T")


@dataclass(frozen=True)
class GPConfig:
    """The outer genetic-programming loop (paper Section 3.1.2)."""

    population_size: int = 25
    generations: int = 50
    init_min_height: int = 2
    init_max_height: int = 4
    tournament_size: int = 4
    crossover_prob: float = 0.7
    mutation_prob: float = 0.25
    elitism: float = 0.05
    max_height: int = 10
    mutation_min_height: int = 0
    mutation_max_height: int = 2
    output_activation: str = "identity"
    functions: tuple[str, ...] = tuple(PRIMITIVES)
    terminals: tuple[str, ...] = TERMINALS

    def __post_init__(self) -> None:
        _positive(self, "population_size", "generations", "tournament_size", "max_height")
        _probability(self, "crossover_prob", "mutation_prob", "elitism")
        if not 0 <= self.init_min_height <= self.init_max_height <= self.max_height:
            raise ValueError("need 0 <= gp.init_min_height <= gp.init_max_height <= gp.max_height")
        if not 0 <= self.mutation_min_height <= self.mutation_max_height:
            raise ValueError("need 0 <= gp.mutation_min_height <= gp.mutation_max_height")
        if self.output_activation not in ("identity", "softplus"):
            raise ValueError("gp.output_activation must be 'identity' or 'softplus'")

    @property
    def n_elites(self) -> int:
        """Elites kept per generation: the elitism fraction of the population, at least one."""
        return max(1, round(self.elitism * self.population_size))


@dataclass(frozen=True)
class LocalSearchConfig:
    """Gradient-based optimisation of the edge weights phi (Algorithm 1)."""

    enabled: bool = True
    steps: int = 250  # S_meta
    base_steps: int = 1  # S_base
    meta_lr: float = 1e-3
    phi_init_std: float = 1e-3
    base_lr: float | None = None  # None: the training optimiser's learning rate

    def __post_init__(self) -> None:
        _non_negative(self, "steps")
        _positive(self, "base_steps", "meta_lr")
        _non_negative(self, "phi_init_std")
        if self.base_lr is not None and self.base_lr <= 0:
            raise ValueError("local_search.base_lr must be positive (or null for the training lr)")


@dataclass(frozen=True)
class FitnessConfig:
    """Partial training that scores a loss (Section 3.3 and 3.4.4)."""

    steps: int = 500  # S_testing

    def __post_init__(self) -> None:
        _positive(self, "steps")


@dataclass(frozen=True)
class FilterConfig:
    """Time-saving filters (Section 3.4). Each can be switched off."""

    equivalence_cache: bool = True
    rejection: bool = True
    rejection_threshold: float = 0.6
    rejection_samples: int = 100  # B
    rejection_steps: int = 50
    rejection_lr: float = 0.1
    gradient_equivalence: bool = True
    gradient_digits: int = 2
    screening: str = "after"  # after (paper) | before | both

    def __post_init__(self) -> None:
        _positive(self, "rejection_samples", "rejection_steps", "rejection_lr", "gradient_digits")
        if self.screening not in ("after", "before", "both"):
            raise ValueError("filters.screening must be 'after', 'before' or 'both'")


@dataclass(frozen=True)
class TrainingConfig:
    """How base models are trained: in the local search, for fitness and for meta-testing."""

    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "lr")


@dataclass(frozen=True)
class MetaTestConfig:
    """The full training run that reports a loss's test metric."""

    steps: int = 2000

    def __post_init__(self) -> None:
        _positive(self, "steps")


@dataclass(frozen=True)
class ML3Config:
    """ML3 (Bechtle et al.): a loss network trained by the unrolled procedure of Algorithm 1."""

    steps: int = 250  # S_meta, as EvoMAL's local search
    meta_lr: float = 1e-3
    hidden: tuple[int, ...] = (50, 50)

    def __post_init__(self) -> None:
        _positive(self, "steps", "meta_lr")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("ml3.hidden must list positive layer sizes")


@dataclass(frozen=True)
class CMAESConfig:
    """CMA-ES (pycma) for TaylorGLO's coefficients and GLO's second stage."""

    population_size: int = 25
    generations: int = 50
    sigma0: float = 1.2  # TaylorGLO's initial step size, around a zero start
    glo_sigma0: float = 0.2  # GLO: around the tree's unit edge weights
    taylor_order: int = 3

    def __post_init__(self) -> None:
        _positive(self, "population_size", "generations", "sigma0", "glo_sigma0", "taylor_order")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where and how candidates are evaluated."""

    executor: str = "serial"  # serial | process | ray
    workers: int = 0  # 0: one per CPU core (process) or per cluster slot (ray)
    device: str = "cpu"
    ray_address: str | None = None
    # K candidates trained together (population batching); 0 chooses automatically
    batch_candidates: int = 0

    def __post_init__(self) -> None:
        if self.executor not in ("serial", "process", "ray"):
            raise ValueError("execution.executor must be 'serial', 'process' or 'ray'")
        _non_negative(self, "workers", "batch_candidates")


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search needs besides the task and model."""

    method: str = "evomal"
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    gp: GPConfig = field(default_factory=GPConfig)
    local_search: LocalSearchConfig = field(default_factory=LocalSearchConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    meta_test: MetaTestConfig = field(default_factory=MetaTestConfig)
    ml3: ML3Config = field(default_factory=ML3Config)
    cmaes: CMAESConfig = field(default_factory=CMAESConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{_prefix(obj)}{name} must be positive, got {getattr(obj, name)}")


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ValueError(f"{_prefix(obj)}{name} must be >= 0, got {getattr(obj, name)}")


def _probability(obj: Any, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:
            raise ValueError(f"{_prefix(obj)}{name} must be in [0, 1], got {getattr(obj, name)}")


_GROUPS = {
    GPConfig: "gp.",
    LocalSearchConfig: "local_search.",
    FitnessConfig: "fitness.",
    FilterConfig: "filters.",
    TrainingConfig: "training.",
    MetaTestConfig: "meta_test.",
    ExecutionConfig: "execution.",
    ML3Config: "ml3.",
    CMAESConfig: "cmaes.",
}


def _prefix(obj: Any) -> str:
    return _GROUPS.get(type(obj), "")


# -- dict conversion ----------------------------------------------------------


def to_dict(config: Any) -> dict[str, Any]:
    """A config as nested plain data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build a config dataclass from nested plain data, rejecting unknown keys."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"config section {path or '<root>'} must be a mapping, got {type(data).__name__}"
        )
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {[path + k for k in unknown]}; valid keys here are "
            f"{sorted(path + k for k in known)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, path + name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"invalid config section {path or '<root>'}: {exc}") from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if is_dataclass(hint):
        return from_dict(hint, value, key + ".")  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("()[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key} expects a list, got {value!r}")
        return tuple(_coerce(args[0], v, key) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key} expects a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"config key {key} expects true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"config key {key} expects an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config key {key} expects an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ValueError(f"config key {key} expects an integer, got {value!r}")
        return int(as_float)
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"config key {key} expects a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config key {key} expects a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key} expects a string, got {value!r}")
        return value
    return value


# -- presets and overrides ----------------------------------------------------


def preset_names() -> list[str]:
    root = resources.files("evomal") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset's nested dict, from ``evomal/configs/NAME.yaml`` (YAML, loaded safely)."""
    root = resources.files("evomal") / "configs"
    path = root / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; available presets are {preset_names()}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"preset {name!r} is not a mapping")
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["gp.population_size=10", ...]`` as a nested dict of YAML-parsed values."""
    nested: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(
                f"--set expects KEY=VALUE (for example gp.population_size=10), got {item!r}"
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"--set key {key!r} is not a dotted config key")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part} is both a value and a section")
        node[parts[-1]] = value
    return nested


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(
    preset: str | None = "quick",
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> SearchConfig:
    """Preset, then ``extra`` (e.g. CLI flags as a dict), then ``--set`` overrides."""
    data = load_preset(preset) if preset else {}
    if extra:
        data = merge(data, extra)
    data = merge(data, parse_overrides(overrides))
    return from_dict(SearchConfig, data)


def replace_config(config: T, **changes: Any) -> T:
    """``dataclasses.replace`` for nested configs: ``replace_config(c, gp={"generations": 2})``."""
    updates: dict[str, Any] = {}
    for name, value in changes.items():
        current = getattr(config, name)
        if is_dataclass(current) and isinstance(value, Mapping):
            updates[name] = from_dict(type(current), merge(to_dict(current), value), name + ".")
        else:
            updates[name] = value
    return dataclasses.replace(config, **updates)  # type: ignore[type-var]
