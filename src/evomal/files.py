"""Small, safe file helpers: atomic writes and bounded JSON reads.

Every write goes to a temporary file in the same directory and is moved into
place with ``os.replace``, so a crash mid-write never leaves a truncated file
and never destroys the previous version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from evomal.errors import EvomalError

#: JSON files read by evomal (losses, configs, checkpoints) larger than this
#: are refused rather than loaded into memory.
MAX_JSON_BYTES = 256 * 1024 * 1024


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file + ``os.replace``), as UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with the permissions a plain write would give."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Serialise ``data`` as indented JSON and write it atomically.

    ``allow_nan=False`` makes a NaN or infinity a ``ValueError`` at write time
    instead of a file that strict JSON readers reject.
    """
    return write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_json(
    path: str | os.PathLike[str], what: str = "JSON file", error: type[EvomalError] = EvomalError
) -> Any:
    """Read a JSON file, turning every failure into ``error`` (an :class:`EvomalError`) naming it.

    Only JSON is parsed: no pickle, no ``eval``. NaN/Infinity literals are
    rejected, as are files over :data:`MAX_JSON_BYTES` and nesting deep enough
    to exhaust the recursion limit.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror}") from None
    if size > MAX_JSON_BYTES:
        raise error(f"{what} {p} is {size} bytes, over the {MAX_JSON_BYTES}-byte limit")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {p} is not UTF-8 text (is it a binary or pickle file?)") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror}") from None

    def _reject_constant(name: str) -> None:
        raise error(f"{what} {p} contains {name}, which is not valid JSON")

    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file may be truncated or corrupted"
        ) from None
    except RecursionError:
        raise error(f"{what} {p} is nested too deeply to be a valid file") from None
