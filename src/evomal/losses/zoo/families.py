"""The zoo's registry: every known loss family, its parameters, grid and source.

A family is one loss function with its hyperparameters left open
(``gce`` with ``q``); a zoo loss is a family at one parameter value
(``gce(q=0.7)``). The grids are the usual values from each paper, the ones a
fair comparison tunes over (``shared/paper/zoo-and-online.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from evomal.errors import LossFileError, UnknownNameError
from evomal.losses.zoo import classification as cls
from evomal.losses.zoo import imbalance as imb
from evomal.losses.zoo import regression as reg


@dataclass(frozen=True)
class ParamRange:
    """An interval of valid values for one parameter; written like ``(0, 1]``."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open or math.isinf(self.high) else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


NON_NEGATIVE = ParamRange(0.0)
POSITIVE = ParamRange(0.0, low_open=True)


@dataclass(frozen=True)
class ZooFamily:
    """One known loss: its function, parameters, grid, default and source.

    ``loss_fn`` is called as ``loss_fn(y_pred, y_true, *params)``, with the
    training split's class counts after ``y_true`` when ``needs_counts`` is set
    and with the family's ``settings`` (fixed constants such as the square
    loss's ``k`` and ``M``, not tuned) as keywords. ``bind_settings(n_classes)``
    gives the settings a task fixes, which :meth:`ZooLoss.bound` records.
    """

    name: str
    kind: str
    label: str
    reference: str
    loss_fn: Callable[..., Tensor]
    params: tuple[str, ...] = ()
    ranges: tuple[ParamRange, ...] = ()
    grid: tuple[tuple[float, ...], ...] = ()
    default: tuple[float, ...] = ()
    needs_counts: bool = False
    imbalance: bool = False
    settings: tuple[str, ...] = ()
    bind_settings: Callable[[int], dict[str, float]] | None = None

    @property
    def valid_ranges(self) -> str:
        """One line such as ``"q in (0, 1]"`` (empty for a family without parameters)."""
        return "; ".join(f"{p} in {r}" for p, r in zip(self.params, self.ranges, strict=True))


def _grid(*values: float) -> tuple[tuple[float, ...], ...]:
    return tuple((float(v),) for v in values)


def _square_settings(n_classes: int) -> dict[str, float]:
    k, big_m = cls.square_scaling(n_classes)
    return {"k": k, "M": big_m}


def _ldam_settings(n_classes: int) -> dict[str, float]:
    return {"s": imb.LDAM_SCALE}


_C, _R = "classification", "regression"
_UNIT_OPEN_LOW = ParamRange(0.0, 1.0, low_open=True, high_open=False)  # (0, 1]

_FAMILIES: tuple[ZooFamily, ...] = (
    ZooFamily("ce", _C, "cross-entropy", "the task loss", cls.cross_entropy),
    ZooFamily("label_smoothing", _C, "label smoothing", "Szegedy et al., CVPR 2016",
              cls.label_smoothing, params=("eps",),
              ranges=(ParamRange(0.0, 1.0, high_open=False),),
              grid=_grid(0.05, 0.1, 0.2), default=(0.1,)),
    ZooFamily("focal", _C, "focal loss", "Lin et al., ICCV 2017", cls.focal,
              params=("gamma",), ranges=(NON_NEGATIVE,), grid=_grid(0.5, 1, 2), default=(2.0,)),
    ZooFamily("poly1", _C, "Poly-1", "Leng et al., ICLR 2022", cls.poly1,
              params=("eps",), ranges=(ParamRange(-1.0),), grid=_grid(-1, 1, 2), default=(1.0,)),
    ZooFamily("brier", _C, "Brier score", "Brier, Monthly Weather Review 1950", cls.brier),
    ZooFamily("square", _C, "square loss on the logits", "Hui & Belkin, ICLR 2021", cls.square,
              settings=("k", "M"), bind_settings=_square_settings),
    ZooFamily("mae", _C, "mean absolute error", "Ghosh et al., AAAI 2017", cls.mae),
    ZooFamily("gce", _C, "generalised cross-entropy", "Zhang & Sabuncu, NeurIPS 2018", cls.gce,
              params=("q",), ranges=(_UNIT_OPEN_LOW,), grid=_grid(0.3, 0.5, 0.7, 1.0),
              default=(0.7,)),
    ZooFamily("sce", _C, "symmetric cross-entropy", "Wang et al., ICCV 2019", cls.sce,
              params=("alpha", "beta"), ranges=(NON_NEGATIVE, NON_NEGATIVE),
              grid=((0.1, 1.0), (1.0, 1.0)), default=(0.1, 1.0)),
    ZooFamily("nce_mae", _C, "active-passive loss NCE+MAE", "Ma et al., ICML 2020", cls.nce_mae,
              params=("alpha", "beta"), ranges=(NON_NEGATIVE, NON_NEGATIVE),
              grid=((1.0, 1.0), (10.0, 0.1)), default=(1.0, 1.0)),
    ZooFamily("logit_adjust", _C, "logit-adjusted cross-entropy", "Menon et al., ICLR 2021",
              imb.logit_adjust, params=("tau",), ranges=(NON_NEGATIVE,),
              grid=_grid(0.5, 1, 2), default=(1.0,), needs_counts=True, imbalance=True),
    ZooFamily("balanced_softmax", _C, "balanced softmax", "Ren et al., NeurIPS 2020",
              imb.balanced_softmax, needs_counts=True, imbalance=True),
    ZooFamily("ldam", _C, "label-distribution-aware margin loss", "Cao et al., NeurIPS 2019",
              imb.ldam, params=("max_margin",), ranges=(NON_NEGATIVE,),
              grid=_grid(0.3, 0.5), default=(0.5,), needs_counts=True, imbalance=True,
              settings=("s",), bind_settings=_ldam_settings),
    ZooFamily("class_balanced", _C, "class-balanced cross-entropy", "Cui et al., CVPR 2019",
              imb.class_balanced, params=("beta",), ranges=(ParamRange(0.0, 1.0),),
              grid=_grid(0.99, 0.999, 0.9999), default=(0.9999,), needs_counts=True,
              imbalance=True),
    ZooFamily("mse", _R, "mean squared error", "the task loss", reg.mse),
    ZooFamily("l1", _R, "absolute error", "least absolute deviations; classical", reg.l1),
    ZooFamily("huber", _R, "Huber loss", "Huber, Annals of Mathematical Statistics 1964",
              reg.huber, params=("delta",), ranges=(POSITIVE,), grid=_grid(0.5, 1, 2),
              default=(1.0,)),
    ZooFamily("log_cosh", _R, "log-cosh", "a smooth L1; no single source", reg.log_cosh),
)  # fmt: skip

#: Every zoo family by name, in the order the shared definitions list them.
FAMILIES: dict[str, ZooFamily] = {f.name: f for f in _FAMILIES}


def family(name: str) -> ZooFamily:
    """The family called ``name``; an unknown name is an error listing the known ones."""
    if name not in FAMILIES:
        raise UnknownNameError(f"unknown zoo loss {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def check_params(zoo_family: ZooFamily, params: Sequence[float]) -> tuple[float, ...]:
    """``params`` as floats after checking their count and ranges (``LossFileError`` if not).

    The message names the valid range, e.g. ``"gce: q must be in (0, 1], got 1.5"``.
    """
    name = zoo_family.name
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise LossFileError(f"{name}: parameters must be a list of numbers, got {params!r}")
    expected = len(zoo_family.params)
    if len(params) != expected:
        takes = (
            f"takes {expected} parameter(s) ({', '.join(zoo_family.params)})"
            if expected
            else "takes no parameters"
        )
        raise LossFileError(f"{name} {takes}, got {len(params)}")
    values = []
    for param, valid, value in zip(zoo_family.params, zoo_family.ranges, params, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LossFileError(f"{name}: {param} must be a number, got {value!r}")
        if float(value) not in valid:
            raise LossFileError(f"{name}: {param} must be in {valid}, got {value:g}")
        values.append(float(value))
    return tuple(values)


def default_families(kind: str, imbalanced: bool = False) -> list[str]:
    """The families a zoo run compares for a task of ``kind``.

    Classification: the ten general families, plus the four imbalance ones
    when the training split is imbalanced (they reduce to, or near, plain
    cross-entropy on balanced data). Regression: its four families.
    """
    if kind not in ("classification", "regression"):
        raise UnknownNameError(f"unknown task kind {kind!r}; expected classification or regression")
    return [f.name for f in _FAMILIES if f.kind == kind and (imbalanced or not f.imbalance)]


__all__ = [
    "FAMILIES",
    "ParamRange",
    "ZooFamily",
    "check_params",
    "default_families",
    "family",
]
