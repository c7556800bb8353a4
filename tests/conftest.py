"""Shared test configuration.

Hypothesis runs derandomized so CI is reproducible; the example counts in the
tests are what they claim to be on every run.
"""

import pytest
import torch
from hypothesis import settings

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
