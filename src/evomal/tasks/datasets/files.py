"""A user's own data files: ``csv:PATH`` and ``npz:PATH`` tasks.

* CSV: a header row, then one sample per row. ``target`` names the label (or
  regression target) column; every other column is a numeric feature. The
  task kind is inferred from the target column (text, or at most
  :data:`MAX_INFERRED_CLASSES` distinct integers: classification; other
  numbers: regression) unless ``kind`` says otherwise. Class labels of any
  form are mapped to ``0..k-1`` in sorted order (``classes`` in the task info
  maps them back). A CSV has no test split of its own, so a fixed
  :data:`CSV_TEST_FRACTION` of its rows, drawn with a fixed seed, is held out
  as the test split: the same rows for every run.
* NPZ: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (read with
  ``allow_pickle=False``: an object array, which would need pickle, is
  refused). Integer targets mean classification, floating ones regression,
  unless ``kind`` says otherwise. Classification labels must lie in
  ``0..k-1``.

Every problem with a file is one ``ValueError`` line naming the file and
what to change.
"""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evomal.errors import DataError, DataMissingError
from evomal.symbolic.transforms import TaskKind
from evomal.tasks.datasets.raw import RawData

#: Share of a CSV's rows held out as the test split (fixed seed, the same rows every run).
CSV_TEST_FRACTION = 0.2
#: A numeric target with at most this many distinct integer values is taken as class labels.
MAX_INFERRED_CLASSES = 20
_TEST_SPLIT_SEED = 0
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_csv(
    path: str | Path, target: str | None, kind: TaskKind | None = None
) -> tuple[RawData, TaskKind]:
    """The rows of a CSV file as a train/test split, and the task kind (given or inferred)."""
    path = Path(path).expanduser()
    header, rows = _read_csv(path)
    if target is None:
        raise DataError(
            f"{path}: say which column is the target with --target COLUMN (target=...); "
            f"columns: {header}"
        )
    if target not in header:
        raise DataError(f"{path}: no column {target!r}; columns: {header}")
    t = header.index(target)
    features = [i for i in range(len(header)) if i != t]
    if not features:
        raise DataError(f"{path}: the target {target!r} is the only column; no features left")
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for r, row in enumerate(rows):
        for c, i in enumerate(features):
            x[r, c] = _number(row[i], path, r, header[i])
    labels = [row[t].strip() for row in rows]
    for r, value in enumerate(labels):
        if not value:
            raise DataError(f"{path}: row {r + 2} has no value in target column {target!r}")
    kind = kind or _infer_kind(labels)
    y, classes = _targets(labels, kind, path, target)
    n_test = max(1, round(CSV_TEST_FRACTION * len(rows)))
    if len(rows) - n_test < 2:
        raise DataError(f"{path}: {len(rows)} rows are too few to hold out a test split")
    order = np.random.default_rng(_TEST_SPLIT_SEED).permutation(len(rows))
    test, train = order[:n_test], order[n_test:]
    info: dict[str, Any] = {"classes": classes} if classes is not None else {}
    raw = RawData(x[train], y[train], x[test], y[test], len(classes) if classes else None)
    return _with_info(raw, info), kind


def load_npz(path: str | Path, kind: TaskKind | None = None) -> tuple[RawData, TaskKind]:
    """The four arrays of an ``.npz`` file, and the task kind (given or inferred)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataMissingError(f"{path} does not exist or is not a file")
    with path.open("rb") as handle:
        if handle.read(2) != b"PK":  # numpy would try it as .npy or as a pickle
            raise DataError(f"{path} is not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in NPZ_KEYS if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {missing}; an npz task holds {list(NPZ_KEYS)} "
                    f"(found {archive.files})"
                )
            arrays = {k: archive[k] for k in NPZ_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{path} holds object arrays, which need pickle; save plain numeric arrays"
            ) from None
        raise
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) == 0:
            raise DataError(f"{path}: x_{split} is empty")
        if len(x) != len(y):
            raise DataError(
                f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}; "
                "they must match"
            )
        for name, a in ((f"x_{split}", x), (f"y_{split}", y)):
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
                raise DataError(f"{path}: {name} is {a.dtype}, not numeric")
            if not np.isfinite(a.astype(np.float64)).all():
                raise DataError(f"{path}: {name} contains NaN or infinite values")
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if kind is None:
        kind = "classification" if np.issubdtype(y_train.dtype, np.integer) else "regression"
    n_outputs = None
    if kind == "classification":
        n_outputs = _check_label_range(path, y_train, y_test)
    return RawData(arrays["x_train"], y_train, arrays["x_test"], y_test, n_outputs), kind


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DataMissingError(f"{path} does not exist or is not a file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            lines = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; is it really a CSV file?") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV ({exc})") from None
    if not lines:
        raise DataError(f"{path} is empty; expected a header row and one row per sample")
    header = [name.strip() for name in lines[0]]
    if len(set(header)) != len(header):
        raise DataError(f"{path}: the header repeats a column name: {header}")
    rows = lines[1:]
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{path}: row {r + 2} has {len(row)} fields but the header has {len(header)}"
            )
    return header, rows


def _number(text: str, path: Path, r: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"{path}: feature column {column!r} is not numeric (row {r + 2}: {text.strip()!r}); "
            "encode it as numbers or drop it"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{path}: feature column {column!r}, row {r + 2} is {text.strip()!r}")
    return value


def _as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _infer_kind(labels: list[str]) -> TaskKind:
    values = [_as_float(v) for v in labels]
    if any(v is None for v in values):
        return "classification"
    distinct = set(values)
    if all(float(v).is_integer() for v in distinct) and len(distinct) <= MAX_INFERRED_CLASSES:  # type: ignore[arg-type]
        return "classification"
    return "regression"


def _targets(
    labels: list[str], kind: str, path: Path, column: str
) -> tuple[np.ndarray, list[str | float] | None]:
    values = [_as_float(v) for v in labels]
    if kind == "regression":
        bad = next((r for r, v in enumerate(values) if v is None), None)
        if bad is not None:
            raise DataError(
                f"{path}: regression target {column!r} is not numeric "
                f"(row {bad + 2}: {labels[bad]!r}); use --kind classification for labels"
            )
        return np.asarray(values, dtype=np.float64), None
    if kind != "classification":
        raise DataError(f"task kind must be classification or regression, got {kind!r}")
    numeric = all(v is not None for v in values)
    keys: list[str | float] = list(values) if numeric else list(labels)  # type: ignore[arg-type]
    classes = sorted(set(keys), key=lambda k: (isinstance(k, str), k))
    if len(classes) < 2:
        raise DataError(f"{path}: target {column!r} has one class only ({classes[0]!r})")
    index = {c: i for i, c in enumerate(classes)}
    plain = [int(c) if isinstance(c, float) and c.is_integer() else c for c in classes]
    return np.asarray([index[k] for k in keys], dtype=np.int64), plain


def _check_label_range(path: Path, y_train: np.ndarray, y_test: np.ndarray) -> int:
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1:
            raise DataError(f"{path}: {name} must be 1-D class labels, got shape {y.shape}")
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{path}: {name} holds non-integer class labels")
    low = min(int(y_train.min()), int(y_test.min()))
    n_classes = int(y_train.max()) + 1
    if low < 0:
        raise DataError(f"{path}: class labels must be 0..k-1, found {low}")
    if int(y_test.max()) >= n_classes:
        raise DataError(
            f"{path}: y_test has label {int(y_test.max())}, out of the range 0..{n_classes - 1} "
            "seen in y_train"
        )
    return n_classes


def _with_info(raw: RawData, info: dict[str, Any]) -> RawData:
    return RawData(raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.n_outputs, info)
