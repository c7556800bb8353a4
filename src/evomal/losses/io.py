"""Load any learned loss from its JSON document, whatever its kind."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from evomal.losses.base import WeightedLoss
from evomal.losses.document import OnlineSettings, TrainingAdvice, fail, read_document
from evomal.losses.learned import LearnedLoss
from evomal.losses.neural import NeuralLoss
from evomal.losses.taylor import TaylorLoss
from evomal.losses.zoo.module import ZooLoss

LOSS_KINDS: dict[str, Any] = {
    "symbolic": LearnedLoss,
    "taylor": TaylorLoss,
    "neural": NeuralLoss,
    "zoo": ZooLoss,
}


def loss_from_dict(doc: Any, source: str = "loss document") -> nn.Module:
    """A loss module from a validated document: symbolic, Taylor, neural or zoo.

    A document's ``training`` field (the learning-rate factor and early
    stopping it was selected with) becomes the loss's ``training_advice``;
    its ``online`` field (the loss adapts while it trains) the loss's ``online``.
    """
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or kind not in LOSS_KINDS:
        raise fail(source, f"unknown loss kind {kind!r}; expected one of {sorted(LOSS_KINDS)}")
    advice = None
    if "training" in doc:
        advice = TrainingAdvice.from_dict(doc["training"], source)
        doc = {k: v for k, v in doc.items() if k != "training"}
    online = None
    if "online" in doc:
        online = OnlineSettings.from_dict(doc["online"], source)
        doc = {k: v for k, v in doc.items() if k != "online"}
    loss = LOSS_KINDS[kind].from_dict(doc, source)
    if online is not None:
        if not isinstance(loss, WeightedLoss):
            raise fail(source, f"a {kind} loss cannot adapt online: it has no weights to adapt; "
                               "remove the 'online' field")  # fmt: skip
        loss.adapting(online)
    if advice is not None:
        loss.training_advice = advice
    return loss


def load_loss(path: str | os.PathLike[str]) -> nn.Module:
    """Load a loss file written by any evomal method. JSON only: no pickle, no eval."""
    return loss_from_dict(read_document(path), f"loss file {os.fspath(path)}")


def load_any_loss(spec: str) -> Any:
    """What ``--loss`` takes: ``ce``, ``mse``, ``task`` (kept as strings: the task loss), a
    loss file of any kind, or a known loss ``NAME`` / ``NAME:P1,P2`` (``gce:0.7``)."""
    from pathlib import Path

    from evomal.errors import LossFileError
    from evomal.losses.zoo import FAMILIES, parse_loss_spec

    if spec in ("ce", "mse", "task"):
        return spec
    if Path(spec).exists():
        return load_loss(spec)
    if spec.partition(":")[0] in FAMILIES:
        return parse_loss_spec(spec)
    raise LossFileError(
        f"--loss {spec!r} is neither ce, mse, task, an existing loss file nor a known loss "
        f"(NAME or NAME:P1,P2 with NAME one of {', '.join(FAMILIES)})"
    )
