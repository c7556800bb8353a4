"""A cache of training runs, shared by the methods of one experiment.

With ``selection.baselines=zoo`` every method's selection trains the same
tuned baselines from the same seeds, and ``--method zoo`` trains them too. A
run is a pure function of what it trains (the task and its scenario, the
validation split's seed, the model, the meta-testing schedule, the loss
document, the seed, the lr factor, early stopping), so an experiment keeps
one cache directory and each (method, seed) reads the runs another already
trained. An entry is one small JSON file named by the SHA-256 of its key, and
holds the key itself, so a hash collision or a hand-edited file is never
mistaken for a hit. The cache is read and written by the process that runs
the method, never by workers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from evomal.errors import RunDirectoryError
from evomal.files import read_json, write_json_atomic


def key_digest(key: Any) -> str:
    """The SHA-256 of a key's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class TrainingCache:
    """``root/<2 hex>/<sha256>.json``: one finished training run (or grid) per key."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: Any) -> Any | None:
        """The value stored under ``key``, or None."""
        path = self._path(key_digest(key))
        if not path.exists():
            return None
        try:
            entry = read_json(path, "training cache entry", RunDirectoryError)
        except RunDirectoryError:
            return None  # a damaged entry is a miss: the run is trained again
        if not isinstance(entry, dict) or entry.get("key") != json.loads(
            json.dumps(key, sort_keys=True, default=str)
        ):
            return None
        return entry.get("value")

    def put(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` (atomically; a later put replaces it)."""
        write_json_atomic(self._path(key_digest(key)), {"key": key, "value": value})
