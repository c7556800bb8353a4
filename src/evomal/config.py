"""Typed, validated search configuration, grouped by concern, with presets and overrides.

A configuration is a tree of frozen dataclasses (GP, local search, fitness,
filters, selection, meta-testing, data, execution). It is built from a YAML
preset and ``key=value`` overrides such as ``gp.population_size=10``. An
unknown or misspelt key is an error that lists the valid keys; values are
parsed and checked against the field's type. Configurations round-trip
through plain dicts, which is what a run directory stores.

Fitness and meta-testing train with their own optimisers
(``fitness.optimizer``, ``meta_test.optimizer``), as the authors' configs
keep them apart. ``training`` is a shorthand, not a section of its own: each
of its keys sets the same key in both (``training.lr=0.05`` sets
``fitness.optimizer.lr`` and ``meta_test.optimizer.lr``;
``training.batch_size`` sets both batch sizes). Within one layer (a preset,
the command-line flags, the ``--set`` overrides) an explicit
``fitness.optimizer.lr`` wins over ``training.lr``; a later layer wins over
an earlier one.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from typing import Any, TypeVar

import yaml

from evomal.errors import ConfigError, UnknownNameError
from evomal.optim import SGDConfig
from evomal.symbolic.primitives import PRIMITIVES, TERMINALS
from evomal.symbolic.transforms import OutputActivation

T = TypeVar("T")


#: The names ``gp.seed_losses`` accepts besides auto and none: the task loss and the zoo
#: members that are trees (:data:`evomal.gp.seeds.SEED_TREES` maps each to its tree).
SEED_LOSS_NAMES = ("task", "ce", "mae", "brier", "gce", "mse", "l1")


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
    output_activation: OutputActivation = "identity"
    functions: tuple[str, ...] = tuple(PRIMITIVES)
    terminals: tuple[str, ...] = TERMINALS
    # Known losses put into generation 0 as trees (evomal.gp.seeds): ``auto`` (the task
    # loss with selection.baselines=task, every tree-expressible zoo member with zoo),
    # ``none``, or names among task, ce, mae, brier, gce (classification), mse, l1
    # (regression). With elitism the search then never ends with a fitness worse than
    # the seeds' with tuned weights.
    seed_losses: tuple[str, ...] = ("auto",)
    # Probability that an offspring is instead add(a, b), max(a, b) or tanh(a) of two
    # tournament winners that passed the screen: it keeps their shared minimum at
    # fx = y (evomal.gp.operators.combine_keeping_minimum). 0 (the paper) turns it off;
    # the regression preset uses it, where random trees almost never pass the screen.
    keep_minimum: float = 0.0
    # Deprecated: true is seed_losses=[task], false is seed_losses=none (old run
    # directories and configs still load; a DeprecationWarning says what to write).
    seed_task_loss: bool | None = None

    def __post_init__(self) -> None:
        if self.seed_task_loss is not None:
            import warnings

            replacement = ("task",) if self.seed_task_loss else ("none",)
            warnings.warn(
                f"gp.seed_task_loss is deprecated: write gp.seed_losses="
                f"{'[task]' if self.seed_task_loss else 'none'} instead",
                DeprecationWarning,
                stacklevel=2,
            )
            if self.seed_losses == ("auto",):
                object.__setattr__(self, "seed_losses", replacement)
            object.__setattr__(self, "seed_task_loss", None)
        if self.seed_losses not in (("auto",), ("none",)):
            unknown = [n for n in self.seed_losses if n not in SEED_LOSS_NAMES]
            if unknown:
                raise ConfigError(
                    f"gp.seed_losses: unknown loss {unknown[0]!r}; the zoo members that are "
                    f"trees are {', '.join(sorted(SEED_LOSS_NAMES))} (or use 'auto' or 'none')"
                )
        _positive(self, "population_size", "generations", "tournament_size", "max_height")
        _probability(self, "crossover_prob", "mutation_prob", "elitism", "keep_minimum")
        if not 0 <= self.init_min_height <= self.init_max_height <= self.max_height:
            raise ConfigError("need 0 <= gp.init_min_height <= gp.init_max_height <= gp.max_height")
        if not 0 <= self.mutation_min_height <= self.mutation_max_height:
            raise ConfigError("need 0 <= gp.mutation_min_height <= gp.mutation_max_height")
        if self.output_activation not in ("identity", "softplus"):
            raise ConfigError("gp.output_activation must be 'identity' or 'softplus'")

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
    base_lr: float | None = None  # None: fitness.optimizer.lr
    # Differentiate through fitness.optimizer (momentum, Nesterov, weight decay),
    # as the authors' code does; false: a plain step p - lr * g (docs/decisions.md).
    unroll_optimizer: bool = True
    # Divide the learned loss by its mean gradient norm on the screening probe
    # (times the task loss's), inside the unrolled step and in the loss handed
    # back, so that phi cannot act as a learning-rate knob.
    normalise_scale: bool = False
    # Where the task loss after the unrolled steps is measured: ``train`` (the paper:
    # the next training batch) or ``holdout`` (a slice of holdout_fraction of the
    # training split that the unrolled steps never train on; never the validation
    # split, which fitness and selection score on).
    meta_split: str = "train"
    holdout_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.meta_split not in ("train", "holdout"):
            raise ConfigError(
                f"local_search.meta_split must be 'train' or 'holdout', got {self.meta_split!r}"
            )
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(
                f"local_search.holdout_fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        _non_negative(self, "steps")
        _positive(self, "base_steps", "meta_lr")
        _non_negative(self, "phi_init_std")
        if self.base_lr is not None and self.base_lr <= 0:
            raise ConfigError(
                "local_search.base_lr must be positive (or null for fitness.optimizer.lr)"
            )


@dataclass(frozen=True)
class FitnessConfig:
    """Partial training that scores a loss (Section 3.3 and 3.4.4).

    ``optimizer`` also drives the local search's unrolled steps (the
    authors' ``base_*`` settings).
    """

    steps: int = 500  # S_testing
    batch_size: int = 128
    optimizer: SGDConfig = field(default_factory=SGDConfig)
    # Successive halving (beyond the paper; off by default): a candidate whose
    # validation metric after prune_at * steps is above prune_factor times the
    # best seen there by earlier fully trained candidates stops, with that
    # metric as its fitness.
    prune_at: float = 0.0
    prune_factor: float = 2.0
    # With pruning on: run that rung first with the untuned weights too, and
    # skip the local search of a candidate already clearly behind there.
    prune_before_search: bool = False

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size")
        if not 0.0 <= self.prune_at < 1.0:
            raise ConfigError(
                f"fitness.prune_at must be in [0, 1) (0 turns pruning off), got {self.prune_at}"
            )
        if self.prune_factor < 1.0:
            raise ConfigError(f"fitness.prune_factor must be >= 1, got {self.prune_factor}")

    @property
    def prune_step(self) -> int | None:
        """The step at which clearly-behind candidates stop, or None when pruning is off."""
        if self.prune_at <= 0.0:
            return None
        return min(self.steps - 1, max(1, round(self.prune_at * self.steps))) or None


@dataclass(frozen=True)
class FilterConfig:
    """Time-saving filters (Section 3.4). Each can be switched off."""

    equivalence_cache: bool = True
    rejection: bool = True
    rejection_threshold: float = 0.6
    rejection_samples: int = 100  # B
    rejection_steps: int = 1000  # to convergence (the authors: 100 for MNIST, 1,000 elsewhere)
    rejection_lr: float = 0.1
    # Reject a loss whose probe metric, having fallen, rises again by more than
    # late_rise_tolerance (a fraction of the initial metric) by the last step.
    reject_late_rise: bool = True
    late_rise_tolerance: float = 0.1
    gradient_equivalence: bool = True
    gradient_digits: int = 2
    screening: str = "after"  # after (paper) | before | both
    # Classification: skip, untrained, a candidate that fails TaylorGLO's invariant (for
    # Taylor losses, the authors' form) or its softmax-correct form (for trees).
    invariant: bool = False

    def __post_init__(self) -> None:
        _positive(self, "rejection_samples", "rejection_steps", "rejection_lr", "gradient_digits")
        _non_negative(self, "late_rise_tolerance")
        if self.screening not in ("after", "before", "both"):
            raise ConfigError("filters.screening must be 'after', 'before' or 'both'")


@dataclass(frozen=True)
class SelectionConfig:
    """The final selection stage (beyond the paper; README, "The search": "Final selection").

    The top ``k`` distinct candidates and the task loss are trained for the
    meta-testing schedule (``steps``, default ``meta_test.steps``) over
    ``seeds`` seeds and compared on the validation split. A learned loss is
    returned only when it beats the task loss by more than ``margin_se``
    standard errors of the paired difference (between seeds and between
    validation samples; :func:`evomal.methods.selection.paired_difference`);
    otherwise the task loss is. ``k = 0`` turns the stage off. ``batched``
    trains the finalists of a seed together where the run batches candidates
    (``execution.batch_candidates``): faster, but their float rounding then
    differs from meta-testing's one-by-one loop, and over a full schedule on a
    small task that alone can reorder finalists (docs/decisions.md). So it is
    off by default: one by one, selection's validation numbers are exactly the
    meta-test's.
    """

    k: int = 5
    steps: int | None = None
    seeds: int = 1
    margin_se: float = 1.0
    batched: bool = False
    # What a learned loss must beat: the task loss (``task``) or, with ``zoo``, the task
    # loss and each zoo family's tuned winner (:class:`ZooConfig`).
    baselines: str = "task"
    # Multiples of meta_test.optimizer.lr at which every finalist trains; each is scored at
    # its best. None: 1 alone with baselines=task, zoo.lr_factors with baselines=zoo.
    lr_factors: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _non_negative(self, "k", "margin_se")
        _positive(self, "seeds")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError("selection.steps must be positive (or null for meta_test.steps)")
        if self.baselines not in BASELINES:
            raise ConfigError(
                f"selection.baselines must be one of {', '.join(BASELINES)}, got {self.baselines!r}"
            )
        if self.lr_factors is not None:
            _factors(self.lr_factors, "selection.lr_factors")


#: The values of ``selection.baselines``.
BASELINES = ("task", "zoo")


def _factors(values: tuple[float, ...], key: str) -> None:
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise ConfigError(f"{key} must list positive learning-rate factors, got {list(values)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{key} lists a factor twice: {list(values)}")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Score validation every ``every`` steps and keep the weights of the best score."""

    enabled: bool = False
    every: int = 100

    def __post_init__(self) -> None:
        _positive(self, "every")


@dataclass(frozen=True)
class ZooConfig:
    """The tuned baselines: known losses, each tuned over its parameter and the lr.

    ``families`` names the members (``auto``: every classification family, plus
    the imbalance ones under the balanced error, plus cross-entropy with early
    stopping, ``ce_es``; for regression the regression families and ``mse_es``).
    Each family's parameter grid (``grids`` overrides one, e.g.
    ``{"gce": [[0.5], [0.7]]}``) is trained at every ``lr_factors`` multiple of
    ``meta_test.optimizer.lr``. ``batched`` trains a family's grid as one
    population where the model batches (a search signal: the families'
    winners are then retrained one by one).
    """

    families: tuple[str, ...] = ("auto",)
    lr_factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)
    grids: dict[str, Any] = field(default_factory=dict)
    batched: bool = True

    def __post_init__(self) -> None:
        if not self.families:
            raise ConfigError("zoo.families must name at least one family (or auto)")
        _factors(self.lr_factors, "zoo.lr_factors")


@dataclass(frozen=True)
class MetaTestConfig:
    """The full training run that reports a loss's test metric (the authors' ``testing_*``)."""

    steps: int = 2000
    batch_size: int = 128
    optimizer: SGDConfig = field(default_factory=SGDConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size")

    @property
    def stop_every(self) -> int | None:
        """Steps between early stopping's validation scores, or None when it is off."""
        return self.early_stopping.every if self.early_stopping.enabled else None


#: The values of ``data.noise_kind``: flip to any other class, or from c to c + 1 mod K.
NOISE_KINDS = ("symmetric", "pair")

#: The values of ``data.metric``; ``auto`` is balanced error under imbalance, else error.
METRICS = ("auto", "error", "balanced_error")


@dataclass(frozen=True)
class Scenario:
    """A setting where the loss matters: label noise and class imbalance, and the metric.

    Applied to a classification task's original training pool before
    validation is carved out (:mod:`evomal.tasks.scenarios`): imbalance
    first, by true class, then noise. The test split is never touched.

    * ``label_noise``: the rate r in [0, 1) at which each training sample's
      label flips, independently; ``noise_kind`` ``symmetric`` (to one of the
      other K - 1 classes, uniformly) or ``pair`` (c -> c + 1 mod K);
      ``noise_seed`` draws the flips, independently of any run seed.
    * ``imbalance``: the ratio n_max / n_min >= 1 of a long-tailed training
      pool (Cao et al., 2019): class c keeps floor(n_max * ratio^(-c/(K-1))).
    * ``metric``: ``error``, ``balanced_error`` (the mean of per-class error
      rates) or ``auto`` (balanced error under imbalance, else error).
    """

    label_noise: float = 0.0
    noise_kind: str = "symmetric"
    noise_seed: int = 0
    imbalance: float = 1.0
    metric: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_noise < 1.0:
            raise ConfigError(
                f"data.label_noise is a flip rate in [0, 1), got {self.label_noise:g}"
                + (
                    " (every label flipped leaves nothing to learn)"
                    if self.label_noise == 1
                    else ""
                )
            )
        if self.noise_kind not in NOISE_KINDS:
            raise ConfigError(
                f"data.noise_kind must be one of {', '.join(NOISE_KINDS)}, got {self.noise_kind!r}"
            )
        if not self.imbalance >= 1.0:
            hint = f"; did you mean {1 / self.imbalance:g}?" if self.imbalance > 0 else ""
            raise ConfigError(
                f"data.imbalance is the ratio n_max/n_min and must be >= 1, got "
                f"{self.imbalance:g}{hint}"
            )
        if self.metric not in METRICS:
            raise ConfigError(
                f"data.metric must be one of {', '.join(METRICS)}, got {self.metric!r}"
            )

    @property
    def corrupts(self) -> bool:
        """Whether the training pool changes (noise or imbalance), not just the metric."""
        return self.label_noise > 0.0 or self.imbalance > 1.0

    @property
    def resolved_metric(self) -> str:
        """``error`` or ``balanced_error``: ``auto`` is balanced error under imbalance."""
        if self.metric != "auto":
            return self.metric
        return "balanced_error" if self.imbalance > 1.0 else "error"


@dataclass(frozen=True)
class DataConfig(Scenario):
    """How evomal builds a task by name (CLI, experiments, resume).

    ``augmentation`` replaces the dataset's own preset (``none``, ``mnist``,
    ``cifar``, ``svhn``, ``svhn_flip``); ``val_fraction`` is the share of the
    training split held out for validation. The other keys (``label_noise``,
    ``noise_kind``, ``noise_seed``, ``imbalance``, ``metric``) are the
    :class:`Scenario`. A task you build yourself (``Task.from_tensors``)
    carries its own settings, and a search refuses a config that contradicts them.
    """

    augmentation: str | None = None
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")

    @property
    def scenario(self) -> Scenario:
        """The label-noise, imbalance and metric settings as one value."""
        return Scenario(
            self.label_noise, self.noise_kind, self.noise_seed, self.imbalance, self.metric
        )


@dataclass(frozen=True)
class ML3Config:
    """ML3 (Bechtle et al.): a loss network trained by the unrolled procedure of Algorithm 1."""

    steps: int = 250  # S_meta, as EvoMAL's local search
    meta_lr: float = 1e-3
    hidden: tuple[int, ...] = (50, 50)

    def __post_init__(self) -> None:
        _positive(self, "steps", "meta_lr")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError("ml3.hidden must list positive layer sizes")


#: Which batch scores an online meta step: the one the update trained on (AdaLFL's
#: Algorithm 2) or the next training batch (cheaper: its forward pass is shared).
META_BATCHES = ("same", "next")


@dataclass(frozen=True)
class OnlineConfig:
    """Online adaptation during training (AdaLFL, hypergradient descent, online trees).

    ``meta_lrs`` is the grid of meta learning rates (Adam's, on the loss's
    weights or the log lr multiplier): each finalist that adapts online enters
    the final selection once per rate, so the rate is chosen on validation like
    the lr. ``enabled`` makes the best ``trees`` learned finalists of a tree
    method (EvoMAL, GP-LFL, GLO) also enter adapting their edge weights online,
    beside their fixed selves (the online tree); ``adalfl`` and ``hypergrad``
    always adapt.
    ``snapshot_every`` sets how often the adapted values are recorded.
    ``batch`` is the batch that scores each meta step: ``same`` (the one the
    update trained on, AdaLFL's Algorithm 2) or ``next`` (the next training
    batch, whose forward pass the next update shares).
    """

    enabled: bool = False
    meta_lrs: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    snapshot_every: int = 100
    #: with ``enabled``: how many of the chosen trees (the best by fitness) get online twins
    trees: int = 1
    batch: str = "next"

    def __post_init__(self) -> None:
        _positive(self, "snapshot_every", "trees")
        if self.batch not in META_BATCHES:
            raise ConfigError(
                f"online.batch must be one of {list(META_BATCHES)}, found {self.batch!r}"
            )
        if not self.meta_lrs or any(not (math.isfinite(m) and m > 0) for m in self.meta_lrs):
            raise ConfigError("online.meta_lrs must list positive, finite meta learning rates")


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


#: The values of ``execution.executor``.
EXECUTORS = ("serial", "process", "ray", "auto")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where and how candidates are evaluated."""

    # serial | process | ray | auto. ``auto`` is for the command line: `evomal search`
    # runs it as ``process`` on a machine with more than one CPU core (its entry point
    # is safe to re-import in spawned workers); from Python it means ``serial``, since
    # an unguarded script or a model defined in ``__main__`` cannot be re-imported.
    executor: str = "serial"
    workers: int = 0  # 0: one per CPU core (process) or per cluster slot (ray)
    device: str = "cpu"
    ray_address: str | None = None
    # K candidates trained together (population batching); 0 chooses automatically
    batch_candidates: int = 0

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"execution.executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}"
            )
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
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    meta_test: MetaTestConfig = field(default_factory=MetaTestConfig)
    data: DataConfig = field(default_factory=DataConfig)
    ml3: ML3Config = field(default_factory=ML3Config)
    cmaes: CMAESConfig = field(default_factory=CMAESConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    @property
    def selection_steps(self) -> int:
        """Training steps per finalist in the selection stage."""
        return self.selection.steps if self.selection.steps is not None else self.meta_test.steps

    @property
    def selection_lr_factors(self) -> tuple[float, ...]:
        """The lr multiples every finalist trains at (see ``selection.lr_factors``)."""
        if self.selection.lr_factors is not None:
            return self.selection.lr_factors
        return self.zoo.lr_factors if self.selection.baselines == "zoo" else (1.0,)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{_prefix(obj)}{name} must be positive, got {getattr(obj, name)}")


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{_prefix(obj)}{name} must be >= 0, got {getattr(obj, name)}")


def _probability(obj: Any, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:
            raise ConfigError(f"{_prefix(obj)}{name} must be in [0, 1], got {getattr(obj, name)}")


def _sections(cls: type, prefix: str = "") -> list[tuple[type, str]]:
    """Every config section class under ``cls`` with its key prefix (``"ml3."``), read off
    the dataclass fields, so that a new section (a method's settings) is one field of
    :class:`SearchConfig` and nothing else."""
    found: list[tuple[type, str]] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            found.append((kind, f"{prefix}{f.name}."))
            found += _sections(kind, f"{prefix}{f.name}.")
    return found


#: Each section class and its key prefix, for messages ("ml3.steps must be positive"). A class
#: used in two places (the optimiser of fitness and of meta-testing) has no single prefix: its
#: messages get the path they were read at instead (:func:`from_dict`).
_GROUPS = {
    kind: prefix
    for kind, prefix in _sections(SearchConfig)
    if [k for k, _ in _sections(SearchConfig)].count(kind) == 1
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
        raise ConfigError(
            f"config section {path or '<root>'} must be a mapping, got {type(data).__name__}"
        )
    if cls is SearchConfig:
        data = expand_training(data)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(_unknown_keys(unknown, sorted(known), path))
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, path + name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid config section {path or '<root>'}: {exc}") from None
    except ValueError as exc:
        if cls in _GROUPS or not path:
            raise
        raise ConfigError(f"{path.rstrip('.')}: {exc}") from None


def _unknown_keys(unknown: list[str], known: list[str], path: str) -> str:
    """One line: each unknown key and the closest valid one ("did you mean ...?")."""
    import difflib

    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.0)
        hint = f"; did you mean {path + close[0]}?" if close else ""
        parts.append(f"unknown config key {path + key}{hint}")
    return "; ".join(parts)


#: The keys of the ``training`` shorthand: the optimiser's fields and the batch size.
TRAINING_KEYS: tuple[str, ...] = ("batch_size", *(f.name for f in fields(SGDConfig)))


def expand_training(data: Mapping[str, Any]) -> dict[str, Any]:
    """Replace a ``training`` block by the keys it sets in ``fitness`` and ``meta_test``.

    A key already given in ``fitness`` / ``meta_test`` (or their
    ``optimizer``) is kept: within one layer, the explicit key wins.
    """
    out = dict(data)
    if "training" not in out:
        return out
    training = out.pop("training")
    if not isinstance(training, Mapping):
        raise ConfigError(f"config section training must be a mapping, got {training!r}")
    unknown = sorted(set(training) - set(TRAINING_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {['training.' + k for k in unknown]}; valid keys here are "
            f"{sorted('training.' + k for k in TRAINING_KEYS)} (training sets both "
            "fitness.optimizer and meta_test.optimizer)"
        )
    for section in ("fitness", "meta_test"):
        current = out.get(section) or {}
        if not isinstance(current, Mapping):
            continue  # from_dict reports the bad section
        block = dict(current)
        optimizer = dict(block.get("optimizer") or {})
        for key, value in training.items():
            if key == "batch_size":
                block.setdefault("batch_size", value)
            else:
                optimizer.setdefault(key, value)
        if optimizer:
            block["optimizer"] = optimizer
        out[section] = block
    return out


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if is_dataclass(hint):
        if isinstance(value, (bool, str)) and "enabled" in {f.name for f in fields(hint)}:
            value = {"enabled": _coerce(bool, value, key)}  # meta_test.early_stopping=true
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
            raise ConfigError(f"config key {key} expects a list, got {value!r}")
        return tuple(_coerce(args[0], v, key) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} expects a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key {key} expects true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key} expects an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key} expects an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"config key {key} expects an integer, got {value!r}")
        return int(as_float)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key} expects a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key} expects a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key} expects a string, got {value!r}")
        return value
    return value


# -- presets and overrides ----------------------------------------------------


#: Presets that were renamed, and what to use instead.
RENAMED_PRESETS = {
    "paper": "the paper's settings are now reference_mnist (the authors' own MNIST config) "
    "and mnist_lenet5 (the same search with tuned training: momentum 0.9)",
}


def preset_names() -> list[str]:
    root = resources.files("evomal") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset's nested dict, from ``evomal/configs/NAME.yaml`` (YAML, loaded safely)."""
    root = resources.files("evomal") / "configs"
    path = root / f"{name}.yaml"
    if not path.is_file():
        hint = f" ({RENAMED_PRESETS[name]})" if name in RENAMED_PRESETS else ""
        raise UnknownNameError(
            f"unknown preset {name!r}{hint}; available presets are {preset_names()}"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {name!r} is not a mapping")
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["gp.population_size=10", ...]`` as a nested dict of YAML-parsed values."""
    nested: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--set expects KEY=VALUE (for example gp.population_size=10), got {item!r}"
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set key {key!r} is not a dotted config key")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is both a value and a section")
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


def data_only(overrides: Iterable[str], command: str) -> list[str]:
    """``--set`` for the commands that take only the data settings (scenario, split)."""
    overrides = list(overrides)
    for item in overrides:
        if not item.strip().startswith("data."):
            raise ConfigError(
                f"evomal {command} takes --set data.* only (label noise, imbalance, metric, "
                f"split), got {item!r}; its training settings are its own options"
            )
    return overrides


def sets_lr(overrides: Iterable[str]) -> bool:
    """Whether ``--set`` gives the meta-testing learning rate explicitly."""
    keys = {item.split("=", 1)[0].strip() for item in overrides}
    return bool(keys & {"meta_test.optimizer.lr", "training.lr"})


def build_config(
    preset: str | None = "quick",
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> SearchConfig:
    """Preset, then ``extra`` (e.g. CLI flags as a dict), then ``--set`` overrides."""
    data = expand_training(load_preset(preset)) if preset else {}
    if extra:
        data = merge(data, expand_training(extra))
    data = merge(data, expand_training(parse_overrides(overrides)))
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
