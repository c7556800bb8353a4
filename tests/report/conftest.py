"""Tiny run directories for every method, in one experiment, shared by the report tests."""

import pytest

from evomal.experiment import ExperimentSpec, run_experiment

TINY = (
    "gp.population_size=5",
    "gp.generations=3",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=100",
    "meta_test.steps=40",
    "selection.k=2",
    "training.lr=0.1",
    "cmaes.population_size=4",
    "cmaes.generations=2",
    "ml3.steps=3",
)
METHODS = ("baseline", "ml3", "taylorglo", "glo", "gplfl", "evomal")


@pytest.fixture(scope="session")
def experiment_dir(tmp_path_factory):
    """Every method, two seeds, on wine with a linear model (seconds, not minutes)."""
    root = tmp_path_factory.mktemp("report") / "experiment"
    run_experiment(ExperimentSpec(METHODS, "wine", "linear", (0, 1), "quick", TINY), root)
    return root


@pytest.fixture(scope="session")
def run_dirs(experiment_dir):
    return sorted(experiment_dir.glob("*/seed-*/search"))
