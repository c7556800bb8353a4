"""AdaLFL, hypergrad and the online tree: finalists that adapt online, end to end, tiny."""

import json

import pytest
import torch

from evomal.config import OnlineConfig, build_config
from evomal.experiment import ONLINE_TRACE, ExperimentSpec, run_experiment
from evomal.losses import LearnedLoss, load_loss
from evomal.losses.document import OnlineSettings
from evomal.methods.loss_test import meta_test_seeds
from evomal.methods.online import online_finalists
from evomal.methods.selection import Candidate
from evomal.search import search
from evomal.training import train
from tests.methods.test_methods import TINY, _task

TREE = "mul(-1, mul(y, log(fx)))"


def _candidate(key: str) -> Candidate:
    return Candidate(key, LearnedLoss(TREE).to_dict(), 0.5, key)


def test_online_finalists_enter_once_per_meta_learning_rate():
    """AdaLFL and hypergrad enter only adapting (their fixed self is ML3's or the task loss),
    once per meta lr; online.enabled adds the adapting twins beside the fixed finalists."""
    grid = OnlineConfig(meta_lrs=(1e-4, 1e-2), snapshot_every=7)
    chosen = [_candidate("a"), _candidate("b")]
    assert online_finalists(chosen, None, grid) == chosen
    always = online_finalists(chosen, "lr", grid)
    assert [c.document["online"] for c in always] == [
        {"adapts": "lr", "meta_lr": m, "snapshot_every": 7, "batch": "next"}
        for _ in "ab"
        for m in (1e-4, 1e-2)
    ]
    assert len({c.key for c in always}) == 4 and all(c.fitness == 0.5 for c in always)
    assert online_finalists(chosen, None, OnlineConfig(enabled=True))[2].key.startswith("a|")
    assert len(online_finalists(chosen, None, OnlineConfig(enabled=True))) == 2 + 3  # 1 tree
    enabled = online_finalists(chosen, None, OnlineConfig(enabled=True, meta_lrs=(1e-3,),
                                                          trees=2))  # fmt: skip
    assert enabled[:2] == chosen
    assert [c.document["online"]["adapts"] for c in enabled[2:]] == ["loss", "loss"]
    assert [c.label for c in enabled[2:]] == ["a [online, meta lr 0.001]",
                                              "b [online, meta lr 0.001]"]  # fmt: skip
    same = online_finalists(chosen, "loss", OnlineConfig(meta_lrs=(1e-3,), batch="same"))
    assert [c.document["online"]["batch"] for c in same] == ["same", "same"]
    assert same[0].label == "a [online, same batch, meta lr 0.001]"
    assert same[0].key != always[0].key
    # online.enabled is the online *tree*: ML3 and TaylorGLO finalists stay fixed
    assert online_finalists(chosen, None, OnlineConfig(enabled=True), trees=False) == chosen


def test_the_online_tree_keeps_the_tree_and_adapts_its_weights(tmp_path):
    """EvoMAL with online.enabled: the selection trains each chosen tree fixed and adapting;
    whichever is returned, its file is the tree the search found, with or without ``online``."""
    extra = ["method=evomal", "selection.k=1", "online.enabled=true", "online.meta_lrs=[0.01]"]
    config = build_config(None, [*TINY, *extra])
    result = search(_task(), "linear", config, out=tmp_path / "run")
    labels = [f["label"] for f in result.selection]
    assert len(labels) == 3 and labels[2] == f"{labels[1]} [online, meta lr 0.01]"
    fixed, online = (f["document"] for f in result.selection[1:])
    assert online == {**fixed, "online": {"adapts": "loss", "meta_lr": 0.01,
                                          "snapshot_every": 100, "batch": "next"}}  # fmt: skip
    saved = load_loss(tmp_path / "run" / "best_loss.json")
    assert saved.to_dict()["phi"] == result.best.to_dict()["phi"]


def test_evomal_test_reruns_the_online_learning_per_seed_from_the_stored_weights(tmp_path):
    """A loss file that adapts online is meta-tested by re-running the online learning from
    the file's initial weights on each seed: each seed's record holds its trajectory, which
    starts at the file's phi, and equals train() on that seed."""
    loss = LearnedLoss(TREE, phi=[1.1, 0.9, 1.0, 1.2, 0.8]).adapting(
        OnlineSettings("loss", 1e-2, 10)
    )
    loss.save(tmp_path / "loss.json")
    config = build_config(None, [*TINY, "meta_test.steps=25"])
    task = _task()
    tested = meta_test_seeds(load_loss(tmp_path / "loss.json"), lambda seed: task, "linear",
                             config, [0, 1], identity={"loss": "loss.json"},
                             out=tmp_path / "test.json")  # fmt: skip
    for run in tested.runs:
        assert run.online is not None
        snapshots = run.online["snapshots"]
        assert [s for s, _ in snapshots] == [0, 10, 20, 25]
        assert snapshots[0][1] == pytest.approx([1.1, 0.9, 1.0, 1.2, 0.8])
        assert snapshots[-1][1] != snapshots[0][1]
        direct = train("linear", loss, task, 25, config.meta_test.optimizer,
                       batch_size=config.meta_test.batch_size, seed=run.seed)  # fmt: skip
        assert direct.online is not None and direct.online.snapshots[-1][1] == snapshots[-1][1]
    record = json.loads((tmp_path / "test.json").read_text())
    assert all("online" in seed for seed in record["runs"])


def test_an_experiment_records_what_adapted_beside_each_cell(tmp_path):
    """hypergrad without selection returns the task loss adapting its lr at the grid's middle
    meta lr; the experiment's meta-test writes its lr multiplier's trajectory beside the cell."""
    overrides = (*TINY, "selection.k=0", "online.meta_lrs=[0.001, 0.01, 0.1]")
    spec = ExperimentSpec(methods=("hypergrad",), task="wine", model="linear", seeds=(0,),
                          preset="quick", overrides=overrides)  # fmt: skip
    run_experiment(spec, tmp_path)
    cell = tmp_path / "hypergrad" / "seed-0"
    record = json.loads((cell / "meta_test.json").read_text())
    assert record["online"] == {"adapts": "lr", "trace": ONLINE_TRACE}
    trace = json.loads((cell / ONLINE_TRACE).read_text())
    assert trace["adapts"] == "lr" and trace["snapshots"][0] == [0, [1.0]]
    best = json.loads((cell / "search" / "best_loss.json").read_text())
    assert best["online"]["meta_lr"] == 0.01 and best["expression"] == TREE
    assert torch.isfinite(torch.tensor(trace["snapshots"][-1][1])).all()


def test_the_report_shows_what_adapted_and_the_shape_at_several_points(tmp_path):
    """An experiment whose AdaLFL loss adapted: the report draws the trajectory of its
    weights (a network: their relative change) and the loss's shape at 4 snapshots."""
    from evomal.report.build import build_report
    from evomal.report.page import Image

    spec = ExperimentSpec(methods=("adalfl",), task="wine", model="linear", seeds=(0,),
                          preset="quick", overrides=(*TINY, "selection.k=0",
                                                     "online.snapshot_every=10"))  # fmt: skip
    run_experiment(spec, tmp_path)
    trace = json.loads((tmp_path / "adalfl" / "seed-0" / ONLINE_TRACE).read_text())
    assert [s for s, _ in trace["snapshots"]] == [0, 10, 20, 30]
    _, sections = build_report([tmp_path])
    images = {b.name: b for s in sections for b in s.blocks if isinstance(b, Image)}
    assert {"online_adalfl", "online_adalfl_shape"} <= set(images)
    assert "4 points of training" in images["online_adalfl_shape"].caption


def test_an_experiment_with_online_trees_gives_them_a_row_of_their_own(tmp_path):
    """EvoMAL with online.enabled: the best adapting finalist gets the row ``best_online``
    and the best fixed one ``best_learned``, each meta-tested as selection scored it; with no
    fixed learned finalist (every tree equals a known loss), the adapting one is the best
    learned finalist."""
    overrides = (*TINY, "selection.k=2", "online.enabled=true", "online.meta_lrs=[0.01]")
    spec = ExperimentSpec(methods=("evomal",), task="wine", model="linear", seeds=(0, 1),
                          preset="quick", overrides=overrides)  # fmt: skip
    run_experiment(spec, tmp_path)
    for seed in (0, 1):
        cell = tmp_path / "evomal" / f"seed-{seed}"
        record = json.loads((cell / "meta_test.json").read_text())
        selection = json.loads((cell / "search" / "result.json").read_text())["selection"]
        learned = [f for f in selection if f.get("role") == "learned" and f["val_metric"]
                   is not None and f.get("equals") is None]  # fmt: skip
        fixed = [f for f in learned if "online" not in f["document"]]
        rows = {r["row"]: r for r in record["rows"]}
        if fixed and len(fixed) < len(learned):
            assert set(rows) == {"best_online", "best_learned"}
            assert rows["best_online"]["label"].startswith("best online:")
            assert "online" in rows["best_online"]["label"]
            assert "online" not in rows["best_learned"]["label"]
        else:
            assert set(rows) == {"best_learned"}
        assert all(r["test_metric"] is not None for r in rows.values())


def test_an_online_finalist_selection_did_not_return_keeps_its_trajectory(tmp_path):
    """AdaLFL with a margin no finalist can clear returns the task loss; its best online
    finalist still gets a row whose trajectory and initial weights sit beside the cell. The
    trajectory equals meta-testing that finalist directly, and the report draws it, saying
    that it was not returned."""
    from evomal.methods.finalists import Finalist
    from evomal.methods.meta_test import meta_test
    from evomal.methods.selection import finalist_loss
    from evomal.report.build import build_report
    from evomal.report.page import Image
    from evomal.runs.store import RunStore
    from evomal.runs.tasks import task_from_record

    overrides = (*TINY, "selection.margin_se=100", "online.meta_lrs=[0.01]",
                 "online.snapshot_every=10")  # fmt: skip
    spec = ExperimentSpec(methods=("adalfl",), task="wine", model="linear", seeds=(0,),
                          preset="quick", overrides=overrides)  # fmt: skip
    run_experiment(spec, tmp_path)
    cell = tmp_path / "adalfl" / "seed-0"
    record = json.loads((cell / "meta_test.json").read_text())
    assert record["task_loss"] and "online" not in record
    (row,) = record["rows"]
    assert row["online"] == {"adapts": "loss", "trace": "online_trace_best_learned.json",
                             "loss": "online_loss_best_learned.json"}  # fmt: skip
    trace = json.loads((cell / row["online"]["trace"]).read_text())
    document = json.loads((cell / row["online"]["loss"]).read_text())
    assert document["online"]["meta_lr"] == 0.01
    selection = json.loads((cell / "search" / "result.json").read_text())["selection"]
    (finalist,) = [f for f in selection if f["document"] == document]
    config = RunStore(cell / "search").load_config()
    loss = finalist_loss(Finalist.from_record(finalist), config.meta_test.optimizer.lr)
    direct = meta_test(loss, task_from_record(spec.task_record, config), "linear", config, seed=0)
    assert direct.online is not None
    assert trace["snapshots"] == direct.online.as_record()["snapshots"]
    assert row["test_metric"] == direct.test_metric
    _, sections = build_report([tmp_path])
    images = {b.name: b for s in sections for b in s.blocks if isinstance(b, Image)}
    assert "not returned" in images["online_adalfl"].caption
    assert "4 points of training" in images["online_adalfl_shape"].caption
