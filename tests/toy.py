"""Small synthetic tasks shared by the tests.

A linearly separable toy classification task (labels are the argmax of a random linear map of
Gaussian inputs) is enough for every test that needs a real search, training run or selection
to finish in seconds; each test picks its own seed and sizes so the tests stay independent.
"""

import numpy as np

from evomal.tasks import Task


def linear_classification(
    *, seed: int, n: int, features: int, classes: int, n_test: int, name: str = "toy"
) -> Task:
    """``n`` Gaussian samples labelled by a random linear map; the first ``n_test`` are the test."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x @ rng.normal(size=(features, classes))).argmax(1)
    return Task.from_tensors(name, "classification", x, y, x[:n_test], y[:n_test])
