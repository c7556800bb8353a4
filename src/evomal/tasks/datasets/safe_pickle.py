"""A restricted unpickler for dataset files that come as pickles (CIFAR batches).

The official CIFAR python batches are pickles, and unpickling runs whatever
the file names. This unpickler resolves only the globals needed to rebuild
numpy arrays; anything else (``os.system``, ``builtins.eval``, any class) is
refused with a ``ValueError`` before it can be called.
"""

from __future__ import annotations

import functools
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from evomal.errors import DataError


def _numpy_attr(*candidates: str) -> Any:
    """The first importable ``module:attribute`` among ``candidates`` (numpy moved some)."""
    for candidate in candidates:
        module_name, attr = candidate.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates} is available in this numpy")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 pickles of bytes (protocol < 3) call.

    Only the form pickle itself emits, ``encode(str, "latin1")``, is allowed.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise DataError("refusing to load a pickle that calls _codecs.encode in an unusual way")
    return text.encode("latin1")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attr(
        "numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct"
    )
    frombuffer = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, lists, dicts, numbers and strings only.

    Any other global (``os.system``, ``builtins.eval``, a class) raises
    ``ValueError`` before it is called. Allowed: numpy's array and dtype
    reconstructors (old and new module paths, protocols 2 to 5) and
    ``_codecs.encode`` restricted to latin-1, which protocol-2 pickles written
    by Python 3 use for ``bytes``.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise DataError(
                f"refusing to load {module}.{name} from a pickle: only numpy arrays are allowed"
            )
        return allowed[(module, name)]


def load_restricted_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`, ``encoding="bytes"`` as for CIFAR.

    Every failure (forbidden global, truncated or corrupt file) is a
    ``ValueError`` naming the file.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            return RestrictedUnpickler(handle, encoding="bytes").load()
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
        except (
            pickle.UnpicklingError,
            EOFError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            OverflowError,
        ) as exc:
            raise DataError(f"{path} is not a valid pickle ({type(exc).__name__}: {exc})") from None
