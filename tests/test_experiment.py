"""Experiments: every (method, seed) searched and meta-tested, resumable; the tables."""

import csv
import io
import json
import statistics

import pytest
from scipy import stats
from typer.testing import CliRunner

from evomal.cli import app
from evomal.experiment import ExperimentSpec, run_experiment
from evomal.report.sources import load_cells
from evomal.report.tables import csv_table, markdown_table, method_rows

TINY = (
    "gp.population_size=4",
    "gp.generations=2",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=100",
    "meta_test.steps=40",
    "training.lr=0.1",
    "cmaes.population_size=4",
    "cmaes.generations=2",
    "ml3.steps=3",
)


def test_experiment_runs_each_pair_once_and_resumes(tmp_path):
    spec = ExperimentSpec(
        methods=("baseline", "gplfl"),
        task="wine",
        model="linear",
        seeds=(0, 1),
        preset="quick",
        overrides=TINY,
    )
    messages = []
    run_experiment(spec, tmp_path, progress=messages.append)
    records = load_cells(tmp_path)
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("baseline", 0),
        ("baseline", 1),
        ("gplfl", 0),
        ("gplfl", 1),
    ]
    assert all(r["test_metric"] is not None for r in records)
    messages.clear()
    run_experiment(spec, tmp_path, progress=messages.append)
    assert all("skipped" in m for m in messages) and len(messages) == 4
    # a different task in the same directory is refused
    with pytest.raises(ValueError, match="holds an experiment"):
        run_experiment(
            ExperimentSpec(
                methods=("baseline",),
                task="digits",
                model="linear",
                seeds=(0,),
                preset="quick",
                overrides=TINY,
            ),
            tmp_path,
        )


def _interrupted_evomal_search(root):
    """An experiment of one EvoMAL seed on wine whose search stopped after one generation."""
    from evomal.config import build_config
    from evomal.search import search
    from evomal.tasks import get_task

    config = build_config("quick", TINY, {"seed": 0, "method": "evomal"})
    search(get_task("wine", seed=0), "linear", config, out=root / "evomal" / "seed-0" / "search",
           max_generations=1, spec={"task": "wine", "model": "linear"})  # fmt: skip
    return ExperimentSpec(
        methods=("evomal",), task="wine", model="linear", seeds=(0,), preset="quick", overrides=TINY
    )


def test_interrupted_search_is_resumed_by_a_rerun(tmp_path):
    spec = _interrupted_evomal_search(tmp_path)
    messages = []
    run_experiment(spec, tmp_path, progress=messages.append)
    assert any("resuming" in m for m in messages)
    assert load_cells(tmp_path)[0]["test_metric"] is not None


def test_a_resumed_search_is_meta_tested_with_its_own_config(tmp_path, monkeypatch):
    """A preset edited between start and resume must not change how that search is meta-tested."""
    import evomal.experiment
    from evomal.config import build_config

    spec = _interrupted_evomal_search(tmp_path)

    def edited_preset(preset, overrides, extra):  # the preset file now says 7 meta-testing steps
        return build_config(preset, [*overrides, "meta_test.steps=7"], extra)

    monkeypatch.setattr(evomal.experiment, "build_config", edited_preset)
    messages = []
    run_experiment(spec, tmp_path, progress=messages.append)
    assert any("resuming" in m for m in messages)
    assert any("meta-testing for 40 steps" in m for m in messages), messages
    assert load_cells(tmp_path)[0]["config"]["meta_test"]["steps"] == 40


def test_table_tests_each_method_against_the_baseline_paired_and_welch():
    records = [
        {"method": "baseline", "seed": s, "test_metric": v, "search_seconds": 0}
        for s, v in enumerate([0.30, 0.32, 0.31, 0.33, 0.29])
    ]
    records += [
        {"method": "evomal", "seed": s, "test_metric": v, "search_seconds": 10}
        for s, v in enumerate([0.25, 0.27, 0.26, 0.30, 0.24])
    ]
    rows = {r.method: r for r in method_rows(records)}
    evomal_values = [0.25, 0.27, 0.26, 0.30, 0.24]
    baseline_values = [0.30, 0.32, 0.31, 0.33, 0.29]
    test = rows["evomal"].against("baseline")
    welch = stats.ttest_ind(evomal_values, baseline_values, equal_var=False)
    paired = stats.ttest_rel(evomal_values, baseline_values)
    assert test.t_welch == pytest.approx(welch.statistic)
    assert test.p_welch == pytest.approx(welch.pvalue)
    assert test.t_paired == pytest.approx(paired.statistic)
    assert test.p_paired == pytest.approx(paired.pvalue)
    assert test.p_holm == pytest.approx(paired.pvalue)  # one comparison: nothing to adjust
    assert rows["evomal"].mean == pytest.approx(0.264)
    table = markdown_table(list(rows.values()))
    assert "| EvoMAL | 5 | 0.2640 ± 0.0230 |" in table
    assert table.splitlines()[2].startswith("| Baseline | 5 | 0.3100 ± 0.0158 | - | - |")


def test_csv_rows_time_the_whole_search_like_the_summary():
    # A resumed search's wall time covers only the part after the resume
    # (search_seconds 0.02); each CSV row must give the same work as the summary.
    records = [
        {"method": "evomal", "seed": 0, "test_metric": 0.1, "search_seconds": 0.02,
         "work_seconds": 3000.0},
        {"method": "evomal", "seed": 1, "test_metric": 0.2, "search_seconds": 1000.0,
         "work_seconds": 1000.0},
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(csv_table(records, method_rows(records)))))
    column = rows[0].index("work_seconds")
    per_seed = [float(rows[i][column]) for i in (1, 2)]
    assert per_seed == [3000.0, 1000.0]
    assert rows[3] == []
    summary = rows[5]
    assert float(summary[rows[4].index("mean_work_seconds")]) == statistics.mean(per_seed)


def test_experiment_cli_writes_table_csv_and_plot(tmp_path):
    args = [
        "experiment",
        "--methods",
        "baseline,taylorglo",
        "--task",
        "wine",
        "--model",
        "linear",
        "--seeds",
        "0-1",
        "--preset",
        "quick",
        "--out",
        str(tmp_path),
    ]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "TaylorGLO" in (tmp_path / "table.md").read_text()
    rows = list(csv.reader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert rows[0][:3] == ["method", "seed", "test_metric"]
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert json.loads((tmp_path / "experiment.json").read_text())["task"] == "wine"
    bad = CliRunner().invoke(
        app, ["experiment", "--methods", "baseline,magic", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2
    assert "unknown method" in bad.output


def test_meta_test_cli_per_seed_mean_and_std(tmp_path):
    from evomal import LearnedLoss

    loss_path = tmp_path / "loss.json"
    LearnedLoss.from_string("mul(-1, mul(y, log(fx)))").save(loss_path)
    result = CliRunner().invoke(
        app,
        [
            "test",
            "--loss",
            str(loss_path),
            "--task",
            "wine",
            "--model",
            "linear",
            "--seeds",
            "0-1",
            "--set",
            "meta_test.steps=30",
            "--out",
            str(tmp_path / "t.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "seed 0: test error rate" in result.output and "±" in result.output
    saved = json.loads((tmp_path / "t.json").read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    transfer = CliRunner().invoke(
        app,
        [
            "test",
            "--loss",
            str(loss_path),
            "--task",
            "diabetes",
            "--model",
            "linear",
            "--seeds",
            "0",
        ],
    )
    assert transfer.exit_code == 2
    assert "same kind" in transfer.output


ZOO_CELL = (
    "training.lr=0.1",
    "meta_test.steps=60",
    "selection.seeds=2",
    "zoo.families=[ce, gce, mae, ce_es]",
    "zoo.grids={gce: [[0.7]]}",
    "zoo.lr_factors=[0.5, 1]",
    "meta_test.early_stopping.every=20",
)


def test_a_cell_killed_among_its_meta_tests_reruns_only_the_unfinished_ones(tmp_path, monkeypatch):
    """A zoo cell meta-tests each tuned member; a kill after two of them keeps those two."""
    import evomal.experiment

    spec = ExperimentSpec(methods=("zoo",), task="wine", model="linear", seeds=(0,),
                          preset="quick", overrides=ZOO_CELL)  # fmt: skip
    real = evomal.experiment.meta_test
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(evomal.experiment, "meta_test", counted)
    run_experiment(spec, tmp_path / "whole")
    whole = load_cells(tmp_path / "whole")[0]
    total = len(calls)
    assert total >= 4, "the zoo cell should meta-test its pick and several tuned members"

    calls.clear()

    def killed_on_the_third(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        return counted(*args, **kwargs)

    monkeypatch.setattr(evomal.experiment, "meta_test", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, tmp_path / "part")
    assert not (tmp_path / "part" / "zoo" / "seed-0" / "meta_test.json").exists()

    calls.clear()
    monkeypatch.setattr(evomal.experiment, "meta_test", counted)
    run_experiment(spec, tmp_path / "part")
    assert len(calls) == total - 2  # the two finished meta-tests came from the cache
    resumed = load_cells(tmp_path / "part")[0]

    def untimed(record):
        rows = [{k: v for k, v in r.items() if k != "meta_test_seconds"} for r in record["rows"]]
        keep = ("test_metric", "val_metric", "details", "expression", "lr_factor")
        return {k: record[k] for k in keep}, rows

    assert untimed(resumed) == untimed(whole)


def test_every_row_keeps_its_own_meta_tests_validation_metric(tmp_path):
    """The table picks tuned cross-entropy with or without early stopping per seed by the
    rows' validation metrics, so every row's must be of one kind: its own meta-test's. The
    returned finalist's row reuses the cell's meta-test, so its value is the cell's; the
    selection's mean over its two seeds, a different number, is kept apart. Oracle for the
    rows not returned: each loss meta-tested again directly."""
    from evomal.config import build_config
    from evomal.methods.finalists import Finalist
    from evomal.methods.meta_test import meta_test
    from evomal.methods.selection import finalist_loss
    from evomal.runs.tasks import task_from_record

    overrides = (*ZOO_CELL, "data.label_noise=0.4")  # noisy, so the pick is not the task loss
    spec = ExperimentSpec(methods=("zoo",), task="digits", model="linear", seeds=(0,),
                          preset="quick", overrides=overrides)  # fmt: skip
    run_experiment(spec, tmp_path)
    cell = tmp_path / "zoo" / "seed-0"
    record = json.loads((cell / "meta_test.json").read_text())
    selection = json.loads((cell / "search" / "result.json").read_text())["selection"]
    by_label = {r["label"]: r for r in selection}
    returned = next(r["label"] for r in selection if r.get("returned"))
    config = build_config("quick", list(overrides))
    task = task_from_record(spec.task_record, config)
    differs = False
    for row in record["rows"]:
        finalist = by_label[row["label"]] if row["row"] != "ce_preset" else None
        if finalist is not None:
            assert row["selection_val_metric"] == finalist["val_metric"]
        if row["label"] == returned:
            assert row["val_metric"] == record["val_metric"]
            differs |= row["val_metric"] != row["selection_val_metric"]
        elif finalist is not None:
            loss = finalist_loss(Finalist.from_record(finalist), config.meta_test.optimizer.lr)
            again = meta_test(loss, task, "linear", config, seed=0)
            assert row["val_metric"] == again.val_metric, row["label"]
    assert differs, "the returned row's two validation metrics coincide; the test shows nothing"


@pytest.mark.parametrize("method", ["zoo", "adalfl"])
def test_meta_tests_side_by_side_on_the_workers_equal_those_in_the_calling_process(
    method, tmp_path, monkeypatch
):
    """With the process executor, a cell's meta-tests (the zoo's dozen rows; a learned
    method's returned loss and best finalist, adapting online) run on the workers side by
    side. Oracle: the same experiment with that turned off, each meta-test in the calling
    process one after another: every row's record is the same, online traces included."""
    import evomal.experiment
    from evomal.experiment import _CachedMetaTest

    monkeypatch.setattr(evomal.experiment, "SIDE_BY_SIDE_SECONDS", 0.0)  # tiny meta-tests

    overrides = (*TINY, "execution.executor=process", "execution.workers=2",
                 "selection.baselines=zoo", "selection.k=2", "meta_test.steps=60",
                 "zoo.families=[ce, ce_es, mae, label_smoothing]",
                 "zoo.grids={label_smoothing: [[0.1]]}",
                 "online.meta_lrs=[0.001, 0.01]")  # fmt: skip
    spec = ExperimentSpec(methods=(method,), task="wine", model="linear", seeds=(0,),
                          preset="quick", overrides=overrides)  # fmt: skip
    messages = []
    run_experiment(spec, tmp_path / "side", progress=messages.append)
    assert any("losses side by side" in m for m in messages)
    monkeypatch.setattr(_CachedMetaTest, "prefetch", lambda self, losses, announce=None: None)
    run_experiment(spec, tmp_path / "alone")
    cells = [json.loads((tmp_path / d / method / "seed-0" / "meta_test.json").read_text())
             for d in ("side", "alone")]  # fmt: skip

    def untimed(record):
        drop = ("meta_test_seconds", "search_seconds", "message")
        kept = {k: v for k, v in record.items() if k not in drop and k != "rows"}
        kept["rows"] = [{k: v for k, v in r.items() if k not in drop} for r in record["rows"]]
        return kept

    assert cells[0]["rows"], "the cell has rows to meta-test"
    assert untimed(cells[0]) == untimed(cells[1])
    traces = sorted(p.name for p in (tmp_path / "side" / method / "seed-0").glob("online_*"))
    for name in traces:
        side, alone = (json.loads((tmp_path / d / method / "seed-0" / name).read_text())
                       for d in ("side", "alone"))  # fmt: skip
        assert side == alone, name
    assert (method == "adalfl") == bool(traces)


def test_a_meta_test_is_expected_to_take_as_long_as_selection_runs_say():
    """The median of selection's training runs, scaled to the meta-testing steps; 0 without
    a recorded run (records written before runs kept their seconds)."""
    from evomal.config import build_config
    from evomal.experiment import _expected_meta_test_seconds

    records = [{"seeds": [{"seconds": 10.0}, {"seconds": 30.0}]}, {"seeds": [{"seconds": 20.0}]}]
    full = build_config("quick", ["meta_test.steps=3000"])
    short = build_config("quick", ["meta_test.steps=3000", "selection.steps=1000"])
    assert _expected_meta_test_seconds(records, full) == 20.0
    assert _expected_meta_test_seconds(records, short) == 60.0
    assert _expected_meta_test_seconds([{"seeds": [{"val_metric": 0.1}]}], full) == 0.0
    assert _expected_meta_test_seconds([], full) == 0.0
