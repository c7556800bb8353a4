"""Shared test configuration.

Hypothesis runs derandomized so CI is reproducible; the example counts in the
tests are what they claim to be on every run.
"""

from hypothesis import settings

settings.register_profile("evomal", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("evomal")
