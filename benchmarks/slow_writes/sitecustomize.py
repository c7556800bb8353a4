"""Loaded by the kill soak's child processes only (via PYTHONPATH): every atomic write pauses
50 ms between writing its temporary file and renaming it, so a kill can land inside one.

This simulates a slow disk; evomal itself is unchanged (the pause wraps ``os.replace``).
"""

import os
import time

_replace = os.replace


def _slow_replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
    if str(src).endswith(".tmp"):
        time.sleep(0.05)
    return _replace(src, dst, *args, **kwargs)


os.replace = _slow_replace
