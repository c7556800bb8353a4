"""A run's hall of fame: distinct losses from events.jsonl, simplified formulas, LaTeX."""

import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import evomal
from evomal.cli import app
from evomal.methods.selection import top_distinct
from evomal.runs.hall_of_fame import hall_of_fame, latex_table
from evomal.symbolic.generate import gen_half_and_half
from evomal.symbolic.sympy_form import FX, Y, display_form, to_sympy
from evomal.symbolic.tree import parse
from tests.toy import linear_classification

TINY = [
    "gp.population_size=6",
    "gp.generations=3",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=50",
    "training.lr=0.1",
    "training.batch_size=32",
    "selection.k=2",
    "selection.steps=30",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    task = linear_classification(seed=7, n=300, features=6, classes=3, n_test=60)
    out = tmp_path_factory.mktemp("fame") / "run"
    result = evomal.search(task, "linear", evomal.build_config(None, TINY), out=out)
    return result, out


def test_top_matches_the_searchs_own_distinct_candidates(finished_run):
    """Oracle: from events.jsonl, the same losses and fitnesses as the GP's in-memory ranking."""
    result, _ = finished_run
    expected = top_distinct(result.candidates, 5)
    entries = result.top(5)
    assert [e.expression for e in entries] == [c.document["expression"] for c in expected]
    assert [e.fitness for e in entries] == pytest.approx([c.fitness for c in expected])
    assert [e.rank for e in entries] == list(range(1, len(entries) + 1))
    assert all(e.size == parse(e.expression).size for e in entries)


def test_finalists_carry_their_validation_metric(finished_run):
    result, out = finished_run
    entries = hall_of_fame(out, 50)
    by_expression = {e.expression: e for e in entries}
    for record in result.selection:
        expression = record["document"]["expression"]
        if expression in by_expression:
            assert by_expression[expression].val_metric == pytest.approx(record["val_metric"])
    finalists = {r["document"]["expression"] for r in result.selection}
    assert all(e.val_metric is None for e in entries if e.expression not in finalists)
    returned = [e for e in entries if e.returned]
    assert len(returned) <= 1
    if returned:
        assert returned[0].expression == result.best.expression


def test_a_search_without_a_run_directory_says_top_needs_one():
    task = linear_classification(seed=7, n=200, features=4, classes=2, n_test=40)
    result = evomal.search(task, "linear", evomal.build_config(None, [*TINY, "selection.k=0"]))
    with pytest.raises(ValueError, match="out=DIR"):
        result.top(3)


def _values(expr, y, fx):
    f = sympy.lambdify((Y, FX), expr, modules="numpy")
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(f(y, fx), dtype=float), fx.shape)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_simplified_formula_computes_what_the_tree_computes(seed):
    """Oracle: simplification keeps the loss's values where the eps guards do not matter."""
    tree = gen_half_and_half(np.random.default_rng(seed), 1, 3)
    exact = to_sympy(tree)
    fx = np.linspace(0.05, 0.95, 19)
    y = np.ones_like(fx)
    want = _values(exact, y, fx)
    got = _values(display_form(tree, "classification").expr, y, fx)
    ok = np.isfinite(want) & (np.abs(want) < 1e6)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-5)


def test_the_guards_disappear_from_the_display():
    tree = parse("mul(-1, mul(y, log(fx)))")
    assert str(display_form(tree, "classification").expr) == "-y*log(fx)"
    assert "e-10" not in str(display_form(parse("div(y, add(fx, 1))"), "regression"))


def test_latex_table_in_the_style_of_table_5(finished_run):
    _, out = finished_run
    entries = hall_of_fame(out, 3)
    text = latex_table(entries)
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    rows = [line for line in text.splitlines() if line[:2] in ("a.", "b.", "c.")]
    assert len(rows) == len(entries)
    for entry, row in zip(entries, rows, strict=True):
        assert entry.latex in row and f"{entry.fitness:.4f}" in row
        assert row.count("$") % 2 == 0 and not math.isnan(entry.fitness)


def test_show_lists_a_run_and_writes_latex(finished_run, tmp_path):
    _, out = finished_run
    runner = CliRunner()
    latex = tmp_path / "table.tex"
    shown = runner.invoke(app, ["show", str(out), "--top", "3", "--latex", str(latex)])
    assert shown.exit_code == 0, shown.output
    assert "Best 3 distinct losses" in " ".join(shown.output.split())
    assert latex.read_text().startswith(r"\begin{table}")
    bad = runner.invoke(app, ["show", str(tmp_path)])
    assert bad.exit_code == 2 and "not an evomal run directory" in bad.output
    zero = runner.invoke(app, ["show", str(out), "--top", "0"])
    assert zero.exit_code == 2 and "at least 1" in zero.output


def test_simplification_past_its_time_bound_keeps_the_tidy_form():
    """sympy cannot be interrupted: past the bound the child is killed and the tidy form kept."""
    tree = parse("mul(-1, mul(y, log(fx)))")
    late = display_form(tree, "classification", timeout=0.0)
    assert not late.simplified
    fx = np.linspace(0.05, 0.95, 7)
    np.testing.assert_allclose(
        _values(late.expr, np.ones_like(fx), fx), _values(to_sympy(tree), np.ones_like(fx), fx)
    )
    on_time = display_form(tree, "classification", timeout=30.0)
    assert on_time.simplified and str(on_time) == "-y*log(fx)"
