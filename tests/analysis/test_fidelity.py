"""Fidelity: rho of first-stage fitness against full-schedule validation, on a real tiny run."""

import json

import pytest
from scipy import stats

import evomal.analysis.fidelity as fidelity_module
from evomal.analysis.fidelity import (
    FRESH_SEED_OFFSET,
    bootstrap_interval,
    evaluated_candidates,
    fidelity,
    spearman,
    write_fidelity,
)
from evomal.config import build_config
from evomal.errors import ConfigError, RunDirectoryError
from evomal.runs.store import RunStore
from evomal.runs.tasks import task_for
from evomal.search import search

TINY = ["gp.population_size=14", "gp.generations=6", "local_search.steps=2", "fitness.steps=30",
        "filters.rejection=false", "meta_test.steps=40", "selection.k=0", "training.lr=0.1",
        "seed=2"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity") / "run"
    config = build_config(None, TINY)
    search(task_for("wine", config), "linear", config, out=root, spec={"task": "wine"})
    return root


def test_spearman_and_its_interval_are_scipys():
    x = [0.1, 0.4, 0.2, 0.9, 0.5, 0.3]
    y = [0.2, 0.5, 0.1, 0.7, 0.6, 0.35]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    low, high = bootstrap_interval(x, y, seed=1, resamples=500)
    assert low <= spearman(x, y) <= high
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_fidelity_retrains_a_uniform_sample_from_a_fresh_seed(run_dir, monkeypatch):
    candidates = evaluated_candidates(RunStore(run_dir))
    assert len(candidates) >= 30, len(candidates)
    seeds = []
    real = fidelity_module.train

    def spy(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fidelity_module, "train", spy)
    result = fidelity(run_dir, 30, seed=3)
    assert len(result.points) == 30 and len({p["key"] for p in result.points}) == 30
    assert set(seeds) == {2 + FRESH_SEED_OFFSET} and len(seeds) == 30
    x = [p["fitness"] for p in result.points]
    worst = max(p["val_metric"] for p in result.points if p["val_metric"] is not None) + 1
    y = [worst if p["val_metric"] is None else p["val_metric"] for p in result.points]
    assert result.rho == pytest.approx(stats.spearmanr(x, y).statistic)
    # Every fitness is the candidate's first-stage fitness, as its event recorded it.
    recorded = {c.get("key"): c["fitness"] for c in candidates}
    assert all(recorded[p["key"]] == p["fitness"] for p in result.points)
    seeds.clear()
    again = fidelity(run_dir, 30, seed=3)  # resumed: every cell is read back
    assert seeds == [] and again.rho == result.rho
    write_fidelity(run_dir, result)
    saved = json.loads((run_dir / "fidelity.json").read_text())
    assert saved["spearman_rho"] == result.rho and saved["sample"] == 30
    assert (run_dir / "fidelity.png").exists() and (run_dir / "fidelity.md").exists()


def test_a_small_sample_or_too_few_candidates_is_a_clear_error(run_dir):
    with pytest.raises(ConfigError, match="at least 30"):
        fidelity(run_dir, 10)
    with pytest.raises(RunDirectoryError, match="fewer than"):
        fidelity(run_dir, 10_000)
