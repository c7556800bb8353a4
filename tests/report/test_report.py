"""evomal report: every section from run directories alone, figures checked against oracles."""

import statistics
from collections import Counter

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evomal.cli import app
from evomal.report import figures
from evomal.report.build import build_report, write_report
from evomal.report.page import Formula, Image, Table, render_latex
from evomal.report.sources import collect, load_run
from evomal.symbolic.primitives import PRIMITIVES
from evomal.symbolic.tree import parse
from tests.images import assert_real_image

# -- oracles for the numbers behind the figures ------------------------------------------


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_true_class_logits_give_the_probability_asked_for(classes):
    p = torch.linspace(0.01, 0.99, 17)
    probs = torch.softmax(figures.true_class_logits(p, classes), dim=1)
    torch.testing.assert_close(probs[:, 0], p)
    torch.testing.assert_close(probs.sum(1), torch.ones(17))


def test_cross_entropy_shape_is_minus_log_p():
    from evomal.losses import LearnedLoss

    p = torch.linspace(0.05, 0.95, 10)
    values = figures.loss_values(
        LearnedLoss.cross_entropy(), figures.true_class_logits(p, 10), torch.zeros(10).long()
    )
    np.testing.assert_allclose(values, -np.log(p.numpy()), rtol=1e-5)


def test_rescaling_keeps_direction_and_maps_the_ends():
    rising = figures.rescaled([5.0, 7.0, 9.0])
    falling = figures.rescaled([-3.0, -4.0, -5.0])
    assert rising == [-1.0, -0.5, 0.0] and falling == [1.0, 0.5, 0.0]
    assert figures.rescaled([2.0, 2.0]) == [0.0, 0.0]


def test_figure_numbers_match_the_run_files(run_dirs):
    runs = [load_run(p) for p in run_dirs if "evomal" in p.parts]
    counts = figures.verdict_counts(runs)
    expected = Counter((e["generation"], e["verdict"]) for r in runs for e in r.events)
    for verdict, per_generation in counts.items():
        for g, value in enumerate(per_generation):
            assert value == pytest.approx(expected[(g, verdict)] / len(runs))
    columns = figures.best_so_far_columns(runs)
    means, stds = figures.mean_std(columns)
    for g, column in enumerate(columns):
        want = [r.generations[g].best_so_far for r in runs if g < len(r.generations)]
        assert sorted(column) == sorted(want)
        assert means[g] == pytest.approx(statistics.fmean(want))
        assert stds[g] == pytest.approx(statistics.pstdev(want))
    for run in runs:
        seconds = figures.stage_seconds(run)
        total_fitness = sum(e["seconds"].get("fitness", 0.0) for e in run.events)
        assert seconds["fitness"] == pytest.approx(total_fitness)
        assert seconds["final selection"] > 0


def test_primitive_counts_match_the_parsed_trees():
    expressions = ["mul(-1, mul(y, log(fx)))", "add(square(sub(fx, y)), log(fx))"]
    counts = figures.primitive_counts(expressions)
    want = Counter(n for e in expressions for n in parse(e).nodes if n in PRIMITIVES)
    assert counts == want


def test_latex_renders_or_says_it_cannot():
    assert render_latex(r"- y \log{\left(f(x) \right)}").startswith(b"\x89PNG")
    assert render_latex(r"\begin{cases} 1 & \text{for}\: y = 0 \end{cases}") is None


# -- the report --------------------------------------------------------------------


def test_report_sections_come_from_every_methods_runs(experiment_dir, run_dirs, tmp_path):
    runs, experiments = collect([experiment_dir])
    assert experiments == [experiment_dir]
    assert {r.method for r in runs} == {"baseline", "ml3", "taylorglo", "glo", "gplfl", "evomal"}
    _, sections = build_report([experiment_dir], top=3, timeout=10.0)
    names = [s.title for s in sections]
    for wanted in ("Runs", "The best loss", "Loss shape", "Meta-training", "Filter activity",
                   "Primitives", "Where the time went", "Finalists and hall of fame"):  # fmt: skip
        assert wanted in names
    assert names[-1] == f"Experiment {experiment_dir.name}"
    images = [b for s in sections for b in s.blocks if isinstance(b, Image)]
    assert len(images) >= 7
    for image in images:
        assert_real_image(image.png, tmp_path)
    formulas = [b for s in sections for b in s.blocks if isinstance(b, Formula)]
    assert formulas and all(f.latex for f in formulas)
    overview = next(s for s in sections if s.title == "Runs").blocks[0]
    assert isinstance(overview, Table) and len(overview.rows) == len(run_dirs)


@pytest.mark.parametrize("method", ["baseline", "ml3", "taylorglo", "glo", "gplfl", "evomal"])
def test_report_on_one_run_of_each_method(experiment_dir, method, tmp_path):
    run = experiment_dir / method / "seed-0" / "search"
    html, markdown = write_report([run], tmp_path / "r.html", top=3)
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text
    assert 'src="http' not in text  # self-contained: nothing to fetch
    body = markdown.read_text()
    for link in [line for line in body.splitlines() if line.startswith("![")]:
        target = markdown.parent / link.split("](")[1].rstrip(")")
        assert_real_image(target)


def test_the_cli_writes_the_report_and_rebuilds_the_experiment_table(experiment_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["report", str(experiment_dir), "--out", str(out), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert out.exists() and out.with_suffix(".md").exists()
    assert (experiment_dir / "table.md").exists()
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "neither a run directory" in " ".join(bad.output.split())
    suffix = runner.invoke(app, ["report", str(experiment_dir), "--out", str(tmp_path / "x.txt")])
    assert suffix.exit_code == 2 and "must end in .html" in suffix.output


def test_a_stopped_run_is_reported_as_stopped(tmp_path):
    import evomal
    from tests.toy import linear_classification

    task = linear_classification(seed=3, n=200, features=5, classes=3, n_test=40)
    config = evomal.build_config(None, ["gp.population_size=4", "gp.generations=3",
                                        "local_search.steps=2", "fitness.steps=20"])  # fmt: skip
    evomal.search(task, "linear", config, out=tmp_path / "run", max_generations=1)
    _, sections = build_report([tmp_path / "run"], top=2)
    overview = sections[0].blocks[0]
    assert overview.rows[0][4] == "stopped"


def test_search_signal_counts_invariant_violations_and_shows_fidelity(experiment_dir, tmp_path):
    import shutil

    from evomal.analysis.fidelity import FidelityResult, write_fidelity

    run = tmp_path / "run"
    shutil.copytree(experiment_dir / "evomal" / "seed-0" / "search", run)
    events = load_run(run).events
    checked = [e["invariant"] for e in events if e.get("invariant")]
    assert checked, "wine is classification: every screened tree is checked"
    points = tuple({"generation": 0, "fitness": float(i), "val_metric": float(i % 7),
                    "expression": "fx"} for i in range(30))  # fmt: skip
    write_fidelity(run, FidelityResult(0.42, 0.1, 0.7, points, 99, 300))
    _, sections = build_report([run], top=2)
    table = next(s for s in sections if s.title == "Search signal").blocks[1]
    assert isinstance(table, Table)
    (row,) = table.rows
    assert row[1] == "0.42 [0.10, 0.70], n = 30"
    assert row[2:5] == [str(len(checked)), str(sum(not c["authors"] for c in checked)),
                        str(sum(not c["softmax"] for c in checked))]  # fmt: skip
    assert row[5] == "0"  # filters.invariant is off by default
