"""``evomal test``'s seed loop as a library function: resumable, and equal to one-by-one."""

import json

import numpy as np
import pytest

from evomal.config import build_config
from evomal.errors import RunDirectoryError
from evomal.methods import loss_test
from evomal.methods.loss_test import meta_test_seeds
from evomal.methods.meta_test import meta_test
from tests.toy import linear_classification

CONFIG = build_config(None, ["meta_test.steps=30", "training.lr=0.1"])
IDENTITY = {"loss": "ce", "task": "toy", "model": "linear", "preset": "none", "overrides": []}


def _task(seed):
    return linear_classification(seed=0, n=160, features=5, classes=3, n_test=40)


def test_every_seed_is_the_plain_meta_test_of_that_seed():
    """Oracle: the loop's per-seed test metric is meta_test's, seed by seed."""
    tested = meta_test_seeds("task", _task, "linear", CONFIG, [0, 1, 2], identity=IDENTITY)
    for run in tested.runs:
        alone = meta_test("task", _task(run.seed), "linear", CONFIG, seed=run.seed)
        assert run.test_metric == alone.test_metric
    values = [run.test_metric for run in tested.runs]
    assert tested.summary.mean == pytest.approx(float(np.mean(values)))
    assert tested.summary.std == pytest.approx(float(np.std(values, ddof=1)))


def test_a_stopped_test_resumes_without_training_its_finished_seeds(tmp_path, monkeypatch):
    out = tmp_path / "test.json"
    first = meta_test_seeds("task", _task, "linear", CONFIG, [0, 1], identity=IDENTITY, out=out)
    assert json.loads(out.read_text())["complete"] is True
    trained = []
    real = loss_test.meta_test

    def counting(*args, **kwargs):
        trained.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loss_test, "meta_test", counting)
    heard = []
    again = meta_test_seeds(
        "task", _task, "linear", CONFIG, [0, 1, 2], identity=IDENTITY, out=out,
        on_seed=lambda run, outcome: heard.append(outcome is None),
    )  # fmt: skip
    assert trained == [2]  # seeds 0 and 1 were read back
    assert heard == [True, True, False]
    assert again.runs[:2] == first.runs
    fresh = meta_test_seeds("task", _task, "linear", CONFIG, [0, 1, 2], identity=IDENTITY)
    assert [r.test_metric for r in again.runs] == [r.test_metric for r in fresh.runs]
    assert json.loads(out.read_text())["seeds"] == [0, 1, 2]


def test_a_record_of_another_test_is_an_error_and_stays_on_disk(tmp_path):
    out = tmp_path / "test.json"
    meta_test_seeds("task", _task, "linear", CONFIG, [0], identity=IDENTITY, out=out)
    before = out.read_text()
    other = {**IDENTITY, "loss": "gce:0.7"}
    with pytest.raises(RunDirectoryError, match="another loss"):
        meta_test_seeds("task", _task, "linear", CONFIG, [0], identity=other, out=out)
    faster = build_config(None, ["meta_test.steps=30", "training.lr=0.2"])
    with pytest.raises(RunDirectoryError, match="another lr"):
        meta_test_seeds("task", _task, "linear", faster, [0], identity=IDENTITY, out=out)
    assert out.read_text() == before
