"""The typed JSON records describe what the writers write, and the writers' output is unchanged.

The TypedDicts of :mod:`evomal.records`, :mod:`evomal.events` and the methods are
types only; these tests keep them in step with the dataclasses and loss modules
whose plain data they describe, and check that the records are written exactly
as ``dataclasses.asdict`` wrote them before the records were typed.
"""

import json
from dataclasses import asdict, fields

import pytest

from evomal.events import (
    GenerationExtra,
    GenerationRecord,
    GenerationSummary,
    Outcome,
    OutcomeRecord,
    Scored,
    ScoredRecord,
)
from evomal.losses.base import WeightedLoss
from evomal.losses.document import LossDocument, TrainingAdvice
from evomal.losses.learned import LearnedLoss
from evomal.losses.neural import NeuralLoss, n_parameters
from evomal.losses.taylor import TaylorLoss
from evomal.losses.zoo import ZooLoss
from evomal.methods.finalists import Finalist, FinalistRun
from evomal.records import FinalistRecord, FinalistRunRecord, TrainingRecord


def _keys(record_type: type) -> set[str]:
    return set(record_type.__required_keys__) | set(record_type.__optional_keys__)


def _outcome() -> Outcome:
    return Outcome(
        expression="mul(y, fx)", key="k", phi=[1.0, 0.5], fitness=0.25, verdict="evaluated",
        seconds={"screen": 0.1}, scale=2.0, invariant={"authors": True, "softmax": False},
    )  # fmt: skip


def _losses() -> list:
    return [
        LearnedLoss.from_string("mul(-1, mul(y, log(fx)))"),
        TaylorLoss([0.1] * 8),
        NeuralLoss([0.0] * n_parameters((3,)), hidden=(3,)),
        ZooLoss("gce", [0.7]),
        ZooLoss("logit_adjust").bound(3, [10, 20, 30]),
        ZooLoss("square").bound(3, [10, 20, 30]),
    ]


@pytest.mark.parametrize("loss", _losses(), ids=lambda loss: f"{loss.kind}")
def test_every_loss_kind_writes_a_loss_document(loss):
    if isinstance(loss, WeightedLoss):
        loss.set_scale(2.0)
    doc = loss.to_dict({"method": "test"})
    doc["training"] = TrainingAdvice(2.0, 0.2, 50).as_dict()
    assert set(LossDocument.__required_keys__) <= set(doc) <= _keys(LossDocument)
    assert set(doc["training"]) == _keys(TrainingRecord)


def test_outcome_and_scored_records_name_every_field_and_nothing_else():
    assert _keys(OutcomeRecord) == {f.name for f in fields(Outcome)}
    assert _keys(ScoredRecord) == {f.name for f in fields(Scored)}
    own = {f.name for f in fields(GenerationSummary)} - {"extra"}
    assert _keys(GenerationRecord) == own | _keys(GenerationExtra)


def test_records_are_written_as_asdict_wrote_them():
    """Same keys, same order, same values: events.jsonl and checkpoints are unchanged."""
    outcome = _outcome()
    assert json.dumps(outcome.as_dict()) == json.dumps(asdict(outcome))
    scored = Scored(
        document=LearnedLoss.mse().to_dict({"a": [1]}), fitness=0.5, generation=2, label="x"
    )
    assert json.dumps(scored.as_dict()) == json.dumps(asdict(scored))
    assert scored.as_dict()["document"] is not scored.document  # a copy, as asdict made
    summary = GenerationSummary.of(1, ["evaluated"], [0.5], 0.5, "x", sigma=0.3)
    old = {k: v for k, v in asdict(summary).items() if k != "extra"} | {"sigma": 0.3}
    assert json.dumps(summary.as_dict()) == json.dumps(old)


def test_records_read_back_ignore_keys_that_are_not_fields():
    outcome = _outcome()
    line = {"generation": 3, "index": 1, **outcome.as_dict()}  # an events.jsonl line
    assert Outcome.from_dict(line) == outcome
    old = {k: v for k, v in outcome.as_dict().items() if k not in ("pruned", "invariant")}
    assert Outcome.from_dict(old).pruned is False


def test_finalist_records_hold_only_their_typed_keys_and_read_back():
    run = FinalistRun(0, 0.5, None, [(10, 1.5)], [(5, 0.4)], 1.25, [0.0, 1.0], 2.0, 7)
    assert set(run.as_dict()) == _keys(FinalistRunRecord)
    assert FinalistRun.from_dict(json.loads(json.dumps(run.as_dict()))) == run
    finalist = Finalist("x", LearnedLoss.mse().to_dict(), 0.1, False, [run])
    record = finalist.record(1)
    assert set(FinalistRecord.__required_keys__) <= set(record) <= _keys(FinalistRecord)
    again = Finalist.from_record(json.loads(json.dumps(record)))
    assert again.record(1) == json.loads(json.dumps(record))
