"""Shared test configuration.

Hypothesis runs derandomized so CI is reproducible; the example counts in the
tests are what they claim to be on every run.
"""

import pytest
import torch
from hypothesis import settings

from evomal.experiment import ExperimentSpec, run_experiment

settings.register_profile("evomal", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("evomal")


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (models, tasks and tensors built in it).

    Oracle tests that compare two computations of the same thing (batched against one by
    one, unrolled against finite differences) use it: float32 round-off, amplified by
    training, would make them depend on the machine's kernels rather than on the code.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# Tiny run directories for every method, in one experiment (built once, when first asked for).
REPORT_TINY = (
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
    spec = ExperimentSpec(
        methods=METHODS,
        task="wine",
        model="linear",
        seeds=(0, 1),
        preset="quick",
        overrides=REPORT_TINY,
    )
    run_experiment(spec, root)
    return root


@pytest.fixture(scope="session")
def run_dirs(experiment_dir):
    return sorted(experiment_dir.glob("*/seed-*/search"))


@pytest.fixture(params=["trees one by one", "population program"])
def tree_evaluation(request, monkeypatch):
    """Run a batched-evaluation test both ways: the K trees one after another, and as one
    :class:`~evomal.symbolic.population.PopulationProgram` (whatever size the default
    threshold would pick)."""
    import evomal.symbolic.population as population

    size = 1 if request.param == "population program" else 10**9
    monkeypatch.setattr(population, "MIN_PROGRAM_SIZE", size)
    return request.param
