"""One process at a time per run directory: a lock file holding the owner's PID and host.

A second ``search`` or ``resume`` on a run directory that is in use would
interleave two event logs and two checkpoints. :func:`run_lock` creates
``RUN_DIR/run.lock`` atomically (``O_CREAT | O_EXCL``) and removes it when the
run ends. A lock left by a process that is gone (killed, crashed) on this
machine is stale and is taken over; a lock from another host cannot be
checked from here, so it is refused with the command to remove it by hand.
Taking the lock also removes the temporary files of atomic writes that a
killed process left behind (half-written, never renamed, so never read).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evomal.errors import RunDirectoryError, RunDirectoryInUse

LOCK_NAME = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # half-written or unreadable: treated as stale below
    return data if isinstance(data, dict) else {}


def _stale(owner: dict[str, object]) -> bool:
    pid, host = owner.get("pid"), owner.get("host")
    if not isinstance(pid, int) or host is None:
        return True
    return host == socket.gethostname() and not _alive(pid)


def ensure_free(root: Path) -> None:
    """Raise :class:`RunDirectoryInUse` now if a live process holds ``root`` (takes nothing)."""
    path = root / LOCK_NAME
    if path.exists():
        held = _read(path)
        if not _stale(held):
            raise _in_use(root, path, held)


def _in_use(root: Path, path: Path, held: dict[str, object]) -> RunDirectoryInUse:
    where = "" if held.get("host") == socket.gethostname() else f" on {held.get('host')}"
    return RunDirectoryInUse(
        f"{root} is in use by process {held.get('pid')}{where}; wait for it to finish, "
        f"or if that process is gone remove {path}"
    )


def _remove_orphans(root: Path) -> None:
    """Temporary files of atomic writes a killed process never renamed (we hold the lock now)."""
    for orphan in root.glob(".*.tmp"):
        orphan.unlink(missing_ok=True)


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Hold ``root/run.lock`` for the duration of the block (see the module docstring)."""
    if root.exists() and not root.is_dir():
        raise RunDirectoryError(f"--out {root} is a file, not a directory; choose a directory")
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(2):  # a second try after clearing a stale lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(path)
            if not _stale(held):
                raise _in_use(root, path, held) from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        _remove_orphans(root)
        break
    else:
        raise RunDirectoryInUse(f"{root}: could not take {path}; another process raced for it")
    try:
        yield
    finally:
        if _read(path).get("pid") == owner["pid"]:
            path.unlink(missing_ok=True)
