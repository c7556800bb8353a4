"""Regression end to end: the task loss passes the screen, and a rejected loss is never returned."""

from evomal.config import build_config
from evomal.events import CandidateEvent
from evomal.runs.tasks import task_for
from evomal.search import search

TINY = [
    "gp.population_size=6",
    "gp.generations=2",
    "local_search.steps=3",
    "local_search.base_steps=2",
    "fitness.steps=40",
    "filters.rejection_steps=300",
    "meta_test.steps=200",
    "selection.k=2",
    "selection.seeds=1",
]


def test_a_regression_search_keeps_mse_and_returns_a_loss_that_passed():
    config = build_config("regression", TINY)
    task = task_for("diabetes", config)
    assert len(task.val) == round(0.25 * (len(task.train) + len(task.val)))  # 60/20/20
    events = []
    result = search(task, "mlp", config, listener=events.append)
    outcomes = [e.outcome for e in events if isinstance(e, CandidateEvent)]
    assert outcomes[0].expression == "square(sub(fx, y))"  # the seeded task loss
    assert outcomes[0].verdict == "evaluated", outcomes[0].reason
    assert outcomes[0].score > 0.99
    passed = {o.expression for o in outcomes if o.verdict in ("evaluated", "cached")}
    if result.task_loss:
        assert result.best.expression == "square(sub(fx, y))"
    else:
        assert result.best.expression in passed
    assert result.best.task == "regression"
    assert result.selection[0]["task_loss"]
