"""The JSON document format of learned losses, and its strict validation.

A loss file is plain data: a format tag, a version, the loss kind, its
expression or parameters, the transforms and free-form metadata. Loading
validates every field and never executes anything from the file. Any problem
is a ``ValueError`` that names the field and what was expected.

The document's shape is :class:`LossDocument` (its ``training`` field a
:class:`TrainingRecord`), importable from here; it is defined in
:mod:`evomal.records`, below the events that carry loss documents.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evomal.config import META_BATCHES
from evomal.errors import LossFileError
from evomal.records import LossDocument, OnlineRecord, TrainingRecord

FORMAT_TAG = "evomal-loss"
FORMAT_VERSION = 1


def fail(source: str, message: str) -> LossFileError:
    return LossFileError(f"{source}: {message}")


def require_fields(
    doc: Any,
    required: Mapping[str, type | tuple[type, ...]],
    optional: Mapping[str, Any],
    source: str,
) -> dict[str, Any]:
    """Check that ``doc`` is an object with exactly the known fields of the right JSON types."""
    if not isinstance(doc, dict):
        raise fail(source, f"expected a JSON object at the top level, found {type(doc).__name__}")
    unknown = sorted(set(doc) - set(required) - set(optional))
    if unknown:
        raise fail(
            source,
            f"unknown field(s) {unknown}; this file was not written by evomal "
            "or was edited by hand",
        )
    missing = sorted(set(required) - set(doc))
    if missing:
        raise fail(source, f"missing field(s) {missing}; the file may be truncated")
    for name, kind in {**required, **optional}.items():
        if name not in doc:
            continue
        value = doc[name]
        if isinstance(value, bool) and kind is not bool:
            raise fail(source, f"field {name!r} must not be a boolean")
        if not isinstance(value, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            )
            raise fail(source, f"field {name!r} must be {expected}, found {type(value).__name__}")
    return doc


def check_header(doc: Mapping[str, Any], kind: str, source: str) -> None:
    if doc.get("format") != FORMAT_TAG:
        raise fail(
            source,
            f"not an evomal loss file (format tag is {doc.get('format')!r}, "
            f"expected {FORMAT_TAG!r})",
        )
    if doc.get("version") != FORMAT_VERSION:
        raise fail(
            source,
            f"unsupported format version {doc.get('version')!r}; this evomal "
            f"reads version {FORMAT_VERSION}",
        )
    if doc.get("kind") != kind:
        raise fail(source, f"loss kind is {doc.get('kind')!r}, expected {kind!r}")


def float_list(value: Any, name: str, source: str, length: int | None = None) -> list[float]:
    """A list of finite numbers (not booleans), optionally of a given length."""
    if not isinstance(value, list):
        raise fail(source, f"field {name!r} must be a list of numbers")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise fail(source, f"{name}[{i}] must be a number, found {type(v).__name__}")
        if not math.isfinite(v):
            raise fail(source, f"{name}[{i}] is not finite")
        out.append(float(v))
    if length is not None and len(out) != length:
        raise fail(source, f"field {name!r} has {len(out)} entries, expected {length}")
    return out


def read_scale(doc: Mapping[str, Any], source: str) -> float:
    """The optional ``scale`` field: a positive, finite number (1 when absent)."""
    if "scale" not in doc:
        return 1.0
    value = doc["scale"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(source, f"field 'scale' must be a number, found {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise fail(source, f"field 'scale' must be positive and finite, found {value}")
    return float(value)


@dataclass(frozen=True)
class TrainingAdvice:
    """How a returned loss was selected to train, recorded in its file (field ``training``).

    ``lr_factor`` multiplies the learning rate of whatever config trains the
    loss (so it transfers across tasks); ``lr`` is the absolute rate it was
    selected at, for the record; ``early_stopping`` the steps between
    early stopping's validation scores, or None.
    """

    lr_factor: float = 1.0
    lr: float | None = None
    early_stopping: int | None = None

    def as_dict(self) -> TrainingRecord:
        return {"lr_factor": self.lr_factor, "lr": self.lr, "early_stopping": self.early_stopping}

    @property
    def is_default(self) -> bool:
        return self.lr_factor == 1.0 and self.early_stopping is None

    def describe(self) -> str:
        parts = [] if self.lr_factor == 1.0 else [f"lr x{self.lr_factor:.3g}"]
        if self.early_stopping is not None:
            parts.append(f"early stopping every {self.early_stopping} steps")
        return ", ".join(parts) or "as configured"

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> TrainingAdvice:
        """Validate a document's ``training`` field."""
        require_fields(doc, {"lr_factor": (int, float)},
                       {"lr": (int, float, type(None)), "early_stopping": (int, type(None))},
                       f"{source}, field 'training'")  # fmt: skip
        factor, lr, every = doc["lr_factor"], doc.get("lr"), doc.get("early_stopping")
        if not (math.isfinite(factor) and factor > 0):
            raise fail(source, f"training.lr_factor must be positive, found {factor}")
        if lr is not None and not (math.isfinite(lr) and lr > 0):
            raise fail(source, f"training.lr must be positive, found {lr}")
        if every is not None and every < 1:
            raise fail(source, f"training.early_stopping must be >= 1 step, found {every}")
        return cls(float(factor), None if lr is None else float(lr), every)


def advice_of(loss: Any) -> TrainingAdvice | None:
    """The training advice a loss carries (``None`` for a plain loss)."""
    advice = getattr(loss, "training_advice", None)
    return advice if isinstance(advice, TrainingAdvice) else None


#: What an online loss adapts while it trains: its own weights (AdaLFL) or the lr (hypergrad).
ADAPTS = ("loss", "lr")


@dataclass(frozen=True)
class OnlineSettings:
    """A loss that adapts while it trains (field ``online`` of its file).

    ``adapts="loss"``: the loss's weights take one Adam step (rate ``meta_lr``)
    after every base update, differentiating the task loss through that update
    (AdaLFL), on the batch the update trained on (``batch="same"``, the paper's
    Algorithm 2) or on the next training batch (``batch="next"``). ``adapts="lr"``:
    the loss stays fixed and a multiplier of the scheduled learning rate,
    log-parametrised, adapts by the same step (hypergradient descent). The file
    holds the *initial* weights; every training run starts from them.
    ``snapshot_every`` sets how often the adapted values are recorded.
    """

    adapts: str = "loss"
    meta_lr: float = 1e-3
    snapshot_every: int = 100
    batch: str = "next"

    def __post_init__(self) -> None:
        if self.batch not in META_BATCHES:
            raise LossFileError(
                f"online.batch must be one of {list(META_BATCHES)}, found {self.batch!r}"
            )
        if self.adapts not in ADAPTS:
            raise LossFileError(
                f"online.adapts must be one of {list(ADAPTS)}, found {self.adapts!r}"
            )
        if not (math.isfinite(self.meta_lr) and self.meta_lr >= 0):
            raise LossFileError(
                f"online.meta_lr must be a finite number >= 0, found {self.meta_lr}"
            )
        if self.snapshot_every < 1:
            raise LossFileError(
                f"online.snapshot_every must be >= 1 step, found {self.snapshot_every}"
            )

    def as_dict(self) -> OnlineRecord:
        return {"adapts": self.adapts, "meta_lr": self.meta_lr,
                "snapshot_every": self.snapshot_every, "batch": self.batch}  # fmt: skip

    def describe(self) -> str:
        what = "its weights" if self.adapts == "loss" else "the learning rate"
        return f"adapts {what} online (meta lr {self.meta_lr:g}, {self.batch} batch)"

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> OnlineSettings:
        """Validate a document's ``online`` field."""
        require_fields(doc, {"adapts": str, "meta_lr": (int, float), "snapshot_every": int},
                       {"batch": str}, f"{source}, field 'online'")  # fmt: skip
        try:
            return cls(doc["adapts"], float(doc["meta_lr"]), doc["snapshot_every"],
                       doc.get("batch", "next"))  # fmt: skip
        except LossFileError as exc:
            raise fail(source, str(exc)) from None


def online_of(loss: Any) -> OnlineSettings | None:
    """The online settings a loss carries (``None``: the loss is fixed while it trains)."""
    online = getattr(loss, "online", None)
    return online if isinstance(online, OnlineSettings) else None


class JsonLoss:
    """Save/load for loss modules that define ``to_dict`` and ``from_dict``.

    Saving is atomic (an existing file is replaced only on success); loading
    reads JSON only, so a file from a stranger runs no code.
    """

    def to_dict(self, metadata: dict[str, Any] | None = None) -> LossDocument:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, doc: Any, source: str = "loss document") -> Any:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> None:
        """Write the loss as JSON, atomically, with its training advice if it has any."""
        from evomal.files import write_json_atomic

        doc = self.to_dict(metadata)
        advice = advice_of(self)
        if advice is not None:
            doc["training"] = advice.as_dict()
        write_json_atomic(path, doc)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Load a loss saved by :meth:`save`; any problem is a ``LossFileError`` naming it."""
        return cls.from_dict(read_document(path), f"loss file {os.fspath(path)}")


def read_document(path: str | os.PathLike[str]) -> Any:
    """The parsed JSON of a loss file, or a ``LossFileError``."""
    from evomal.files import read_json

    try:
        return read_json(path, "loss file", LossFileError)
    except ValueError as exc:
        raise LossFileError(str(exc)) from None
