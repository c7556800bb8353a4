"""End-to-end: a tiny search, its run directory, resuming, and the all-rejected case."""

import json

import pytest

from evomal import LearnedLoss
from evomal.config import build_config
from evomal.runs.store import RunStore
from evomal.search import resume, search
from evomal.tasks import Task
from tests.toy import linear_classification

TINY = [
    "gp.population_size=5",
    "gp.generations=3",
    "local_search.steps=3",
    "fitness.steps=30",
    "filters.rejection_steps=100",
    "training.lr=0.1",
    "training.batch_size=32",
    "meta_test.steps=50",
]


def _task():
    return linear_classification(seed=1, n=300, features=8, classes=4, n_test=60)


def test_tiny_search_writes_a_complete_run_directory(tmp_path):
    config = build_config(None, TINY)
    result = search(_task(), "linear", config, out=tmp_path / "run")
    store = RunStore(tmp_path / "run")
    for name in (
        "config.json",
        "run.json",
        "events.jsonl",
        "generations.jsonl",
        "checkpoint.json",
        "best_loss.json",
        "result.json",
    ):
        assert (tmp_path / "run" / name).exists(), name
    events = store.read_events()
    assert len(events) >= config.gp.population_size
    for event in events:
        assert {"generation", "expression", "key", "phi", "fitness", "verdict", "seconds"} <= set(
            event
        )
    assert result.best is not None
    loaded = LearnedLoss.load(tmp_path / "run" / "best_loss.json")
    assert loaded.expression == result.best.expression
    assert loaded.phi.tolist() == result.best.phi.tolist()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["environment"]["seed"] == 0 and "torch" in run["environment"]
    assert len(result.history) == config.gp.generations


def test_search_never_reads_the_test_split(monkeypatch):
    task = _task()
    seen = []
    original = Task.test.fget

    def spy(self):
        seen.append(self.name)
        return original(self)

    monkeypatch.setattr(Task, "test", property(spy))
    search(task, "linear", build_config(None, TINY))
    assert seen == []


PRUNING = ["fitness.prune_at=0.5", "fitness.prune_factor=1"]


@pytest.mark.parametrize(
    "extra",
    [[], PRUNING, [*PRUNING, "fitness.prune_before_search=true"]],
    ids=["paper", "pruning", "pruning-before-search"],
)
def test_resume_reaches_the_same_result_as_an_uninterrupted_run(tmp_path, extra):
    config = build_config(None, [*TINY, "gp.generations=4", "seed=3", *extra])
    full = search(_task(), "linear", config, out=tmp_path / "full")
    part = search(_task(), "linear", config, out=tmp_path / "part", max_generations=2)
    assert len(part.history) == 2
    # simulate a kill mid-generation: events written after the last checkpoint
    with (tmp_path / "part" / "events.jsonl").open("a") as handle:
        handle.write('{"generation": 2, "partial": true}\n')
    resumed = resume(tmp_path / "part", task=_task())
    assert resumed.best.expression == full.best.expression
    assert resumed.best.phi.tolist() == full.best.phi.tolist()
    assert resumed.best_fitness == full.best_fitness
    assert resumed.history == full.history

    def strip(events):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in events]

    assert strip(RunStore(tmp_path / "part").read_events()) == strip(
        RunStore(tmp_path / "full").read_events()
    )
    pruned = [e for e in RunStore(tmp_path / "full").read_events() if e.get("pruned")]
    assert bool(pruned) == bool(extra)  # the pruning run did prune, after generation 0
    assert all(e["generation"] > 0 for e in pruned)


def test_existing_run_directory_is_not_overwritten(tmp_path):
    config = build_config(None, [*TINY, "gp.generations=1"])
    search(_task(), "linear", config, out=tmp_path / "run")
    before = (tmp_path / "run" / "events.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds a run"):
        search(_task(), "linear", config, out=tmp_path / "run")
    assert (tmp_path / "run" / "events.jsonl").read_text() == before


@pytest.mark.parametrize("k", [0, 2])
def test_all_rejected_run_returns_the_task_loss_never_a_rejected_one(k):
    """A rejected loss is never handed back: with nothing passing the filters the task loss
    is returned, and the message says why (with or without the selection stage)."""
    config = build_config(
        None,
        [*TINY, "filters.rejection_threshold=1.5", "gp.generations=2", f"selection.k={k}"],
    )
    result = search(_task(), "linear", config)
    assert result.task_loss and result.best_fitness is None
    assert result.best.expression == "mul(-1, mul(y, log(fx)))"
    assert "no candidate passed the filters" in result.message
    assert set(result.verdicts) <= {"rejected", "cached", "failed"}
    if k:
        assert [f["task_loss"] for f in result.selection] == [True]


def test_gplfl_keeps_phi_at_one():
    """GP-LFL has no local search: the loss it learns keeps unit weights. Without selection
    (``selection.k=0``), so that what is checked is the search's own best tree and not
    cross-entropy returned by selection, whose weights are 1 anyway."""
    config = build_config(None, [*TINY, "method=gplfl", "selection.k=0"])
    result = search(_task(), "linear", config)
    assert result.best is not None and not result.task_loss
    assert result.best.tree.n_edges > 0
    assert all(w == 1.0 for w in result.best.phi.tolist())


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (["gp.seed_losses=[task]"], ["mul(-1, mul(y, log(fx)))"]),
        (["gp.seed_losses=none"], []),
        (["gp.seed_losses=auto"], ["mul(-1, mul(y, log(fx)))"]),
        (["gp.seed_losses=auto", "selection.baselines=zoo"],
         ["mul(-1, mul(y, log(fx)))", "abs(sub(y, fx))", "square(sub(y, fx))",
          "mul(y, sub(1, sqrt(fx)))"]),
    ],
)  # fmt: skip
def test_the_seed_losses_open_generation_zero(setting, expected):
    config = build_config(None, [*TINY, "gp.generations=1", "selection.k=0", *setting])
    events = []
    search(_task(), "linear", config, listener=events.append)
    first = [e.outcome.expression for e in events if hasattr(e, "outcome") and e.generation == 0]
    assert first[: len(expected)] == expected


def test_resuming_a_finished_run_keeps_what_its_loss_is(tmp_path):
    """A finished run read back (``resume``) still says which baseline it returned and that
    it is not learned (before the fix it came back as 'learned')."""
    config = build_config(None, [*TINY, "selection.k=2", "selection.baselines=zoo",
                                 "selection.margin_se=100", "zoo.families=[ce, gce, mae]",
                                 "zoo.grids={gce: [[0.7]]}", "zoo.lr_factors=[1]"])  # fmt: skip
    task = _task().with_label_noise(0.3)
    original = search(task, "linear", config, out=tmp_path / "run")
    assert original.baseline is not None and not original.learned
    again = resume(tmp_path / "run", task=task)
    assert (again.baseline, again.equals, again.learned, again.task_loss) == (
        original.baseline, original.equals, original.learned, original.task_loss
    )  # fmt: skip
