"""Import a user's own object (a model builder, a task function) by ``package.module:name``.

The current directory is put on ``sys.path`` first, as ``python -m`` would, so
``--model mymodels:build`` finds ``./mymodels.py`` from the command line too
(console scripts do not search the current directory). Importing runs the
user's code; nothing read from a loss file ever gets here.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from evomal.errors import EvomalError


def import_object(path: str, what: str, error: type[EvomalError] = EvomalError) -> Any:
    """The object ``path`` names, or ``error`` saying which part is missing."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise error(f"{what} import path {path!r} must look like 'package.module:name'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {what} module {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"module {module_name!r} has no {attr!r} (from {what} {path})")
        obj = getattr(obj, part)
    return obj
