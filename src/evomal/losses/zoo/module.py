"""``ZooLoss``: a known loss at one parameter value, as a drop-in criterion saved as JSON.

A zoo loss is a family name, its parameters, and what it needs from the
task: the training split's class counts (imbalance families) and fixed
settings (the square loss's ``k`` and ``M``, LDAM's ``s``). Its document holds only those
plain values, so loading one executes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evomal.errors import LossFileError
from evomal.losses.document import (
    FORMAT_TAG,
    FORMAT_VERSION,
    JsonLoss,
    LossDocument,
    check_header,
    fail,
    float_list,
    require_fields,
)
from evomal.losses.zoo.classification import class_logits
from evomal.losses.zoo.families import FAMILIES, check_params, family
from evomal.symbolic.transforms import REDUCTIONS, Reduction, check_choice, regression_inputs

#: Class counts above this are refused: no dataset has that many samples of one class.
MAX_COUNT = 2**53


def _format(value: float) -> str:
    return f"{value:g}"


def check_counts(counts: Sequence[Any]) -> tuple[int, ...]:
    """Class counts as a tuple of non-negative integers, at least two of them."""
    if isinstance(counts, (str, bytes)) or len(counts) < 2:
        raise LossFileError(f"class counts must list at least two classes, got {counts!r}")
    out = []
    for c, n in enumerate(counts):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_COUNT:
            raise LossFileError(f"class count {c} must be a non-negative integer, got {n!r}")
        out.append(int(n))
    return tuple(out)


def check_settings(name: str, settings: Mapping[str, Any]) -> dict[str, float]:
    """A family's fixed settings (square: ``k`` and ``M``; LDAM: ``s``), positive and finite."""
    allowed = FAMILIES[name].settings
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        takes = f"takes the settings {list(allowed)}" if allowed else "takes no settings"
        raise LossFileError(f"{name} {takes}; got {unknown}")
    out = {}
    for key in allowed:
        if key not in settings:
            continue
        value = settings[key]
        valid = not isinstance(value, bool) and isinstance(value, (int, float))
        if not (valid and math.isfinite(value) and value > 0):
            raise LossFileError(f"{name}: setting {key} must be a positive number, got {value!r}")
        out[key] = float(value)
    return out


class ZooLoss(JsonLoss, nn.Module):
    """A known loss (``"gce"``, ``"focal"``, ...) at one parameter value, as a criterion::

        criterion = ZooLoss("gce", [0.7])
        loss = criterion(logits, labels)

    ``params`` default to the family's usual value. Imbalance families need the
    training split's ``class_counts``; evomal binds them when it trains the
    loss, or call :meth:`bound`. ``ZooLoss("ce")`` and ``ZooLoss("mse")`` are
    exactly evomal's task losses (``F.cross_entropy`` or binary cross-entropy
    with one output, ``F.mse_loss``): same values, same gradients.
    """

    kind = "zoo"
    _counts: Tensor | None

    def __init__(
        self,
        name: str,
        params: Sequence[float] | None = None,
        class_counts: Sequence[int] | None = None,
        settings: Mapping[str, float] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.family = family(name)
        self.name = name
        self.params = check_params(self.family, self.family.default if params is None else params)
        self.task = self.family.kind
        self.settings = check_settings(name, settings or {})
        check_choice(reduction, REDUCTIONS, "reduction")
        self.reduction = reduction
        self.class_counts = None if class_counts is None else check_counts(class_counts)
        if self.class_counts is not None and not self.family.needs_counts:
            raise LossFileError(f"{name} does not use class counts; only imbalance losses do")
        counts = None if self.class_counts is None else torch.tensor(self.class_counts)
        self.register_buffer("_counts", counts, persistent=False)

    # -- use -----------------------------------------------------------------

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if self.name == "ce":
            return self._cross_entropy(y_pred, y_true)
        if self.name == "mse" and self.reduction == "mean":
            pred, target = regression_inputs(y_pred, y_true)
            return F.mse_loss(pred, target)
        per_sample = self.family.loss_fn(y_pred, y_true, *self._inputs(), **self.settings)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def _inputs(self) -> tuple[Any, ...]:
        """The class counts (for imbalance families) followed by the parameters."""
        if not self.family.needs_counts:
            return self.params
        if self._counts is None:
            raise LossFileError(
                f"{self.expression} needs the training split's class counts: train it through "
                "evomal (which binds them) or call .bound(n_classes, class_counts)"
            )
        return (self._counts, *self.params)

    def _cross_entropy(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """Exactly evomal's task loss, so a zoo run of ``ce`` is the baseline to the last bit."""
        logits, labels = class_logits(y_pred, y_true)
        if logits is y_pred:
            return F.cross_entropy(y_pred, labels, reduction=self.reduction)
        z = y_pred.reshape(-1)
        target = y_true.reshape(-1).to(z.dtype)
        return F.binary_cross_entropy_with_logits(z, target, reduction=self.reduction)

    def bound(self, n_classes: int, class_counts: Sequence[int] | None = None) -> ZooLoss:
        """A copy with what this task fixes filled in (where not set already).

        The square loss gets Hui & Belkin's ``k`` and ``M`` for ``n_classes``,
        LDAM its logit scale ``s`` (:data:`~evomal.losses.zoo.imbalance.LDAM_SCALE`);
        imbalance families get ``class_counts`` (the training split's). Other
        families come back unchanged.
        """
        settings = dict(self.settings)
        if self.family.bind_settings is not None:
            settings = {**self.family.bind_settings(n_classes), **settings}
        counts = self.class_counts
        if self.family.needs_counts and counts is None and class_counts is not None:
            counts = check_counts(list(class_counts))
            if len(counts) != n_classes:
                raise LossFileError(
                    f"{self.name}: {len(counts)} class counts for {n_classes} classes"
                )
        return ZooLoss(self.name, self.params, counts, settings, self.reduction)

    # -- populations ---------------------------------------------------------

    @property
    def population_key(self) -> tuple[Any, ...]:
        """Zoo losses with equal keys differ only in their parameters (:func:`population_loss`)."""
        counts = None if self.class_counts is None else tuple(self.class_counts)
        return ("zoo", self.name, tuple(sorted(self.settings.items())), counts, self.reduction)

    # -- display -------------------------------------------------------------

    def _arguments(self) -> str:
        pairs = [*zip(self.family.params, self.params, strict=True), *self.settings.items()]
        return ", ".join(f"{p}={_format(v)}" for p, v in pairs)

    @property
    def expression(self) -> str:
        """A readable name such as ``"gce(q=0.7)"``, ``"square(k=1, M=1)"`` or ``"ce"``."""
        arguments = self._arguments()
        return f"{self.name}({arguments})" if arguments else self.name

    @property
    def label(self) -> str:
        """The human name with its parameters, such as ``"generalised cross-entropy (q=0.7)"``."""
        arguments = self._arguments()
        return f"{self.family.label} ({arguments})" if arguments else self.family.label

    def __str__(self) -> str:
        lines = [f"ZooLoss({self.task}): {self.expression}, {self.label} ({self.family.reference})"]
        if self.class_counts is not None:
            lines.append(f"  class counts: {list(self.class_counts)}")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        return f"{self.expression!r}, task={self.task!r}"

    # -- persistence ---------------------------------------------------------

    def to_dict(self, metadata: dict[str, Any] | None = None) -> LossDocument:
        """The loss as a plain JSON-ready document."""
        doc: LossDocument = {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "params": list(self.params),
            "task": self.task,
        }
        if self.class_counts is not None:
            doc["class_counts"] = list(self.class_counts)
        if self.settings:
            doc["settings"] = dict(self.settings)
        if metadata:
            doc["metadata"] = metadata
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> ZooLoss:
        """Validate a document and build the loss; any problem is one ``LossFileError`` line."""
        require_fields(
            doc,
            {"format": str, "version": int, "kind": str, "name": str, "params": list,
             "task": str},
            {"class_counts": list, "settings": dict, "metadata": dict},
            source,
        )  # fmt: skip
        check_header(doc, cls.kind, source)
        name = doc["name"]
        if name not in FAMILIES:
            raise fail(source, f"unknown zoo loss {name!r}; known: {', '.join(FAMILIES)}")
        if doc["task"] != FAMILIES[name].kind:
            raise fail(
                source, f"{name} is a {FAMILIES[name].kind} loss, but the file says {doc['task']!r}"
            )
        params = float_list(doc["params"], "params", source)
        try:
            return cls(name, params, doc.get("class_counts"), doc.get("settings"))
        except LossFileError as exc:
            raise fail(source, str(exc)) from None


def population_loss(members: Sequence[ZooLoss]) -> Any:
    """``f(outputs [K, batch, ...], targets) -> [K]``: member k's loss on slice k, in one call.

    The members share a family (and class counts, settings and reduction: one
    :attr:`ZooLoss.population_key`) and differ in their parameters. For the
    families of :data:`PER_SAMPLE_PARAMETERS` the family's function runs once on
    the K members' outputs flattened into one batch, each parameter repeated
    per sample: a zoo grid trained as a population
    (:func:`evomal.training.population.train_population`) pays one loss graph,
    not one per member (``benchmarks/zoo_batching.py``). Other families are
    called member by member. Member k's value equals ``members[k](outputs[k],
    targets)`` (tested to float rounding).
    """
    first = members[0]
    if any(m.population_key != first.population_key for m in members):
        raise ValueError("population_loss needs zoo losses of one family and settings")
    if first.reduction not in ("mean", "sum") or first.name not in PER_SAMPLE_PARAMETERS:
        return lambda outputs, targets: torch.stack(
            [m(outputs[k], targets) for k, m in enumerate(members)]
        )
    params = torch.tensor([list(m.params) for m in members], dtype=torch.float64)
    return _flattened(first.family.loss_fn, params, first.reduction == "mean")


#: Families whose parameters only scale or bend per-sample quantities, so that one call on
#: the K members' outputs flattened to ``[K * batch, classes]``, with each parameter
#: repeated per sample, is the K calls (the imbalance losses and Huber combine theirs
#: with per-class or per-output tensors, and stay under ``vmap``).
PER_SAMPLE_PARAMETERS = frozenset({"label_smoothing", "focal", "poly1", "gce", "sce", "nce_mae"})


def _flattened(fn: Any, params: Tensor, mean: bool) -> Any:
    """:func:`population_loss` for :data:`PER_SAMPLE_PARAMETERS`: one call, no ``vmap``."""

    def call(outputs: Tensor, targets: Tensor) -> Tensor:
        k, batch = outputs.shape[0], outputs.shape[1]
        flat = outputs.reshape(k * batch, *outputs.shape[2:])
        labels = targets.reshape(1, batch).expand(k, batch).reshape(k * batch)
        values = params.to(outputs.device, outputs.dtype).repeat_interleave(batch, dim=0)
        per_sample = fn(flat, labels, *values.unbind(dim=1)).reshape(k, batch)
        return per_sample.mean(dim=1) if mean else per_sample.sum(dim=1)

    return call


def parse_loss_spec(text: str) -> ZooLoss:
    """A zoo loss from ``"name"`` or ``"name:p1,p2"``: ``"gce:0.7"``, ``"sce:0.1,1"``, ``"focal"``.

    Without parameters the family's usual value is taken. Errors are one line
    naming the known losses or the valid range.
    """
    name, colon, rest = text.strip().partition(":")
    name = name.strip()
    zoo_family = family(name)
    if not colon:
        return ZooLoss(name)
    if not zoo_family.params:
        raise LossFileError(f"zoo loss {text!r}: {name} takes no parameters; write {name}")
    params = []
    for item in rest.split(","):
        try:
            params.append(float(item))
        except ValueError:
            raise LossFileError(
                f"zoo loss {text!r}: {item.strip()!r} is not a number "
                f"({name}:{','.join(zoo_family.params)} with {zoo_family.valid_ranges})"
            ) from None
    return ZooLoss(name, params)


__all__ = ["ZooLoss", "check_counts", "check_settings", "parse_loss_spec", "population_loss"]
