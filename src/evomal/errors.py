"""The errors a user can fix, one type per kind of mistake.

Every error evomal raises because of what it was given (a name, a setting,
a data file, a loss file, a model, a run directory) is an :class:`EvomalError`.
Callers of the Python API catch the kind they care about; the CLI turns any
of them into a one-line message and exit code 2. Anything else escaping
evomal is a bug, not a user error.

``EvomalError`` derives from ``ValueError`` so that code written against
earlier versions, which raised plain ``ValueError``, keeps working. The
missing-file variants also derive from ``FileNotFoundError`` for the same
reason.

This module is the bottom layer: it imports nothing from evomal.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DataMissingError",
    "EvomalError",
    "LossFileError",
    "ModelError",
    "RunDirectoryError",
    "RunDirectoryInUse",
    "UnknownNameError",
]


class EvomalError(ValueError):
    """Bad input a user can fix; the message names the problem and the fix."""


class ConfigError(EvomalError):
    """A setting is unknown, of the wrong type or out of range (``--set``, presets, options)."""


class UnknownNameError(ConfigError):
    """A task, model, method, preset or other registered name that does not exist."""


class DataError(EvomalError):
    """A dataset cannot be used: empty, corrupt, truncated, NaN, wrong shapes or labels."""


class DataMissingError(DataError, FileNotFoundError):
    """A dataset's files (or a data file named by the user) are not there."""


class ModelError(EvomalError):
    """A model cannot be built or does not fit the task (import path, output shape)."""


class LossFileError(EvomalError):
    """A loss file or expression is unreadable, malformed or not a loss evomal can build."""


class RunDirectoryError(EvomalError):
    """A run directory cannot be used: not a run, an incompatible version, or ``--out`` clashes."""


class RunDirectoryInUse(RunDirectoryError):
    """Another live process holds the run directory's lock."""
