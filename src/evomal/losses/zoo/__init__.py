"""A zoo of known losses: the yardstick a learned loss has to beat.

One small, documented function per loss, each returning per-sample losses
(``[B]``) with its paper in the docstring, and :class:`ZooLoss` to use any of
them at one parameter value as a drop-in criterion saved as JSON::

    from evomal.losses.zoo import ZooLoss, parse_loss_spec

    criterion = parse_loss_spec("gce:0.7")         # or ZooLoss("gce", [0.7])
    loss = criterion(logits, labels)

:data:`FAMILIES` lists every family with its parameters, valid ranges, the
usual grid to tune over and its source.
"""

from evomal.losses.zoo.classification import (
    brier,
    cross_entropy,
    focal,
    gce,
    label_smoothing,
    mae,
    nce_mae,
    poly1,
    sce,
    square,
    square_scaling,
)
from evomal.losses.zoo.families import (
    FAMILIES,
    ParamRange,
    ZooFamily,
    check_params,
    default_families,
    family,
)
from evomal.losses.zoo.imbalance import balanced_softmax, class_balanced, ldam, logit_adjust
from evomal.losses.zoo.module import ZooLoss, parse_loss_spec, population_loss
from evomal.losses.zoo.regression import huber, l1, log_cosh, mse

__all__ = [
    "FAMILIES",
    "ParamRange",
    "ZooFamily",
    "ZooLoss",
    "balanced_softmax",
    "brier",
    "check_params",
    "class_balanced",
    "cross_entropy",
    "default_families",
    "family",
    "focal",
    "gce",
    "huber",
    "l1",
    "label_smoothing",
    "ldam",
    "log_cosh",
    "logit_adjust",
    "mae",
    "mse",
    "nce_mae",
    "parse_loss_spec",
    "poly1",
    "population_loss",
    "sce",
    "square",
    "square_scaling",
]
