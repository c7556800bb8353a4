"""The JSON records that cross layers: loss documents, finalist records, zoo grid cells.

A loss document is what a loss file holds (written by the loss modules of
:mod:`evomal.losses`, validated by their ``from_dict``); finalist records are
what the selection stage writes to ``selection.json``, ``result.json`` and its
checkpoints (built by :mod:`evomal.methods.finalists`); grid cells are the
zoo's tuning grid (:mod:`evomal.methods.zoo`). The events of
:mod:`evomal.events` carry all three, so their shapes live here, below every
layer that builds, carries or reads them. They are types only: the data stays
plain JSON, and nothing here changes what is written.

A key a record may lack (because its kind does not have it, or because the
file was written before the key existed) is in the ``total=False`` part.
"""

from __future__ import annotations

from typing import TypedDict


class TrainingRecord(TypedDict):
    """A loss file's ``training`` field: the learning-rate factor (and the absolute rate it
    was selected at) and early stopping a returned loss was selected to train with."""

    lr_factor: float
    lr: float | None
    early_stopping: int | None


class OnlineRecord(TypedDict):
    """A loss file's ``online`` field: the loss adapts while it trains (AdaLFL, hypergradient
    descent). ``adapts`` is ``loss`` (its weights) or ``lr`` (the learning rate); ``meta_lr``
    is the meta optimiser's (Adam's) rate; phi is recorded every ``snapshot_every`` steps;
    ``batch`` (``same`` or ``next``) is the batch that scores each meta step."""

    adapts: str
    meta_lr: float
    snapshot_every: int
    batch: str


class LossFields(TypedDict, total=False):
    """The kind-specific fields of a loss document; each kind has its own few of them."""

    #: symbolic: the tree, its edge weights, the output activation and protected-operator eps
    expression: str
    phi: list[float]
    output_activation: str
    eps: float
    #: taylor: the polynomial's order (its centre and coefficients are ``params``)
    order: int
    #: taylor, neural and zoo: the loss's parameters
    params: list[float]
    #: neural: the hidden layer sizes
    hidden: list[int]
    #: zoo: the family, and the training split's class counts and fixed settings it is bound to
    name: str
    class_counts: list[int]
    settings: dict[str, float]


class _TaskField(TypedDict):
    task: str


class _LossHeader(_TaskField):
    format: str
    version: int
    kind: str


class KindFields(_TaskField, LossFields):
    """What a loss module's ``document_fields`` returns: the task, which every kind has,
    and the fields of its own kind."""


class OnlineTraceRecord(TypedDict):
    """What an online training run adapted: ``snapshots`` are ``[step, values]`` (the loss's
    weights, or the multiplier of the scheduled lr); ``meta_loss`` and ``grad_norm`` are
    ``[step, window mean]`` curves of the meta-objective and its gradient's norm."""

    adapts: str
    snapshots: list[list[object]]
    meta_loss: list[list[float]]
    grad_norm: list[list[float]]


class LossDocument(_LossHeader, LossFields, total=False):
    """A loss file: the format tag and version, the loss kind (``symbolic``, ``taylor``,
    ``neural``, ``zoo``), its task and its kind's fields, and optionally the scale the loss
    is multiplied by, free-form metadata and the training it was selected with."""

    scale: float
    metadata: dict[str, object]
    training: TrainingRecord
    online: OnlineRecord


class SparseVector(TypedDict):
    """A per-sample vector as its length and its nonzero entries (``index``, ``value``)."""

    n: int
    index: list[int]
    value: list[float]


class _FinalistRunFields(TypedDict):
    seed: int
    val_metric: float | None


class FinalistRunRecord(_FinalistRunFields, total=False):
    """One finalist's training from one seed at one lr factor; the optional keys are absent
    in records written before they existed. A curve point is ``[step, value]``."""

    lr_factor: float
    failed: str | None
    loss_curve: list[list[float]]
    val_curve: list[list[float]]
    seconds: float
    val_samples: SparseVector | None
    best_step: int | None


class _FinalistFields(TypedDict):
    rank: int
    label: str
    task_loss: bool
    search_fitness: float | None
    val_metric: float | None
    seeds: list[FinalistRunRecord]
    document: LossDocument


class FinalistRecord(_FinalistFields, total=False):
    """A finalist of the selection stage as ``selection.json`` lists it.

    ``val_diff`` and ``val_diff_se`` (the paired difference to the best
    baseline) are on learned finalists only, ``returned`` on the finalist
    returned only; records written before the roles, lr factors and
    identification existed lack those keys.
    """

    role: str
    family: str | None
    early_stopping: int | None
    equals: str | None
    lr_factor: float
    val_by_factor: dict[str, float | None]
    val_diff: float | None
    val_diff_se: float | None
    returned: bool


class GridSeedRecord(TypedDict):
    """One seed's run of a zoo grid cell."""

    seed: int
    val_metric: float | None
    failed: str | None
    seconds: float


class GridCell(TypedDict):
    """A cell of the zoo's grid: a family at one parameter setting and lr factor, its mean
    validation metric over the seeds (``None`` if any failed) and each seed's run."""

    family: str
    params: list[float]
    lr_factor: float
    val_metric: float | None
    seeds: list[GridSeedRecord]
