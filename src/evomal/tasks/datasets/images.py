"""Loaders for image datasets kept as files: MNIST, Fashion-MNIST, CIFAR-10/100, SVHN.

Every loader returns the dataset's official train/test split as ``x`` float32
in ``[0, 1]`` shaped ``[N, C, H, W]`` and ``y`` int64 ``[N]``. Nothing here
downloads: a missing file raises ``FileNotFoundError`` naming the expected
path and saying how to get the data (``evomal data get mnist`` for MNIST).

The readers check what they read. IDX headers, sizes and payloads must agree;
CIFAR batches are python pickles, so they are opened with
:class:`RestrictedUnpickler`, which can rebuild numpy arrays and nothing else:
a batch file from a stranger cannot run code.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from evomal.errors import DataError, DataMissingError
from evomal.tasks.datasets.raw import DATA_DIR_ENV, RawData
from evomal.tasks.datasets.safe_pickle import load_restricted_pickle

#: The four files of an IDX dataset (MNIST layout), each optionally ``.gz``.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: IDX element type codes (third magic byte) and their big-endian dtypes.
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: IDX payloads claiming more than this are refused (MNIST's largest is 47 MB).
MAX_IDX_BYTES = 4 * 1024**3

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 16 * 1024 * 1024


def _data_dir_hint(data_dir: Path) -> str:
    return (
        f"The data directory is {data_dir}; choose another with --data-dir or the "
        f"{DATA_DIR_ENV} environment variable."
    )


# -- IDX ------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed, detected from its first bytes).

    Returns the array in native byte order with the shape the header gives.
    A bad magic number, a header claiming an absurd size, a truncated payload,
    trailing bytes or a corrupt gzip stream raise ``ValueError`` naming the file.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        stream: io.BufferedIOBase = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115
        with stream:
            return _parse_idx(stream, path)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"IDX file {path} is corrupt: {exc}") from None


def _read_exactly(stream: io.BufferedIOBase, n: int, path: Path, what: str) -> bytes:
    # In chunks, so a header claiming gigabytes costs memory only for bytes that exist.
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(min(remaining, _CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) != n:
        raise DataError(
            f"IDX file {path} is truncated: expected {n} bytes of {what}, found {len(data)}"
        )
    return data


def _parse_idx(stream: io.BufferedIOBase, path: Path) -> np.ndarray:
    magic = _read_exactly(stream, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
        raise DataError(
            f"{path} is not an IDX file: bad magic number 0x{magic.hex()} (expected "
            "0x0000 followed by a type code such as 08 and the number of dimensions)"
        )
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    dims = tuple(
        int(d) for d in np.frombuffer(_read_exactly(stream, 4 * ndim, path, "dimensions"), ">u4")
    )
    n_bytes = math.prod(dims) * dtype.itemsize
    if n_bytes > MAX_IDX_BYTES:
        raise DataError(f"IDX file {path} claims dimensions {dims} ({n_bytes} bytes): too large")
    payload = _read_exactly(stream, n_bytes, path, f"data for dimensions {dims}")
    if stream.read(1):
        raise DataError(f"IDX file {path} has trailing bytes after the data for dimensions {dims}")
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The path of each IDX file (raw preferred over ``.gz``) and the names not found."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def _idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(
            f"IDX image file {images_path} has shape {images.shape}; expected [N, height, width]"
        )
    if images.dtype != np.uint8:
        raise DataError(f"IDX image file {images_path} holds {images.dtype}, expected bytes")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"IDX label file {labels_path} has shape {labels.shape} and type {labels.dtype}; "
            "expected one integer per sample"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if len(labels) and labels.min() < 0:
        raise DataError(f"IDX label file {labels_path} holds a negative label")
    return _to_unit_float(images[:, None]), labels.astype(np.int64)


def _load_idx(folder: Path, missing_hint: str, n_classes: int | None) -> RawData:
    if not folder.is_dir():
        raise DataMissingError(
            f"no folder {folder}; it must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz). {missing_hint}"
        )
    found, missing = _find_idx_files(folder)
    if missing:
        raise DataMissingError(
            f"IDX files missing in {folder}: {', '.join(missing)}. {missing_hint}"
        )
    x_train, y_train = _idx_split(found["x_train"], found["y_train"])
    x_test, y_test = _idx_split(found["x_test"], found["y_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"train images in {folder} are {x_train.shape[2:]} but test images are "
            f"{x_test.shape[2:]}"
        )
    top = int(max(y_train.max(initial=0), y_test.max(initial=0)))
    if n_classes is None:
        n_classes = top + 1
    elif top >= n_classes:
        raise DataError(f"labels in {folder} go up to {top}, expected fewer than {n_classes}")
    return RawData(x_train, y_train, x_test, y_test, n_outputs=n_classes)


def load_idx_folder(folder: Path) -> RawData:
    """Any dataset stored like MNIST: the four IDX files (raw or ``.gz``) in ``folder``.

    Used for ``--task idx:PATH``. Images must be bytes shaped ``[N, H, W]``;
    they become ``[N, 1, H, W]`` in ``[0, 1]``. The number of classes is the
    largest label plus one.
    """
    folder = Path(folder)
    return _load_idx(
        folder,
        "An idx:PATH task reads the four MNIST-format IDX files of one folder.",
        n_classes=None,
    )


def load_mnist(data_dir: Path) -> RawData:
    """MNIST (60000/10000, 1x28x28, 10 classes) from the IDX files in ``data_dir/mnist``."""
    folder = Path(data_dir) / "mnist"
    return _load_idx(
        folder,
        f"Run `evomal data get mnist` to download MNIST into {folder}. "
        + _data_dir_hint(Path(data_dir)),
        n_classes=10,
    )


def load_fashion_mnist(data_dir: Path) -> RawData:
    """Fashion-MNIST (60000/10000, 1x28x28, 10 classes) from ``data_dir/fashion_mnist``."""
    folder = Path(data_dir) / "fashion_mnist"
    return _load_idx(
        folder,
        "Download the four .gz files from https://github.com/zalandoresearch/fashion-mnist "
        f"(folder data/fashion) and put them, unchanged, in {folder}. "
        + _data_dir_hint(Path(data_dir)),
        n_classes=10,
    )


# -- CIFAR (restricted pickle) -----------------------------------------------------


def _get(batch: dict[Any, Any], key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise KeyError(key)


def read_cifar_batch(path: str | Path, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch: ``uint8`` images ``[N, 3, 32, 32]`` and int64 labels ``[N]``.

    ``label_key`` is ``"labels"`` for CIFAR-10 and ``"fine_labels"`` (or
    ``"coarse_labels"``) for CIFAR-100. The file is a pickled dict with bytes
    keys; it is read with :class:`RestrictedUnpickler`.
    """
    path = Path(path)
    batch = load_restricted_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"CIFAR batch {path} holds a {type(batch).__name__}, expected a dict")
    try:
        data, labels = _get(batch, "data"), _get(batch, label_key)
    except KeyError as exc:
        raise DataError(f"CIFAR batch {path} has no {exc.args[0]!r} entry") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"CIFAR batch {path}: 'data' must be a 2-D uint8 array")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"CIFAR batch {path}: rows have {data.shape[1]} values, expected 3072")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"CIFAR batch {path}: labels are not integers") from None
    if y.shape != (data.shape[0],):
        raise DataError(f"CIFAR batch {path}: {data.shape[0]} images but labels shaped {y.shape}")
    if len(y) and y.min() < 0:
        raise DataError(f"CIFAR batch {path} holds a negative label")
    return data.reshape(-1, 3, 32, 32), y


def _cifar_hint(archive: str, data_dir: Path, folder: str) -> str:
    return (
        f"Download {archive} from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it in "
        f"{data_dir} (`tar xzf {archive} -C {data_dir}`), which creates {data_dir / folder}. "
        + _data_dir_hint(data_dir)
    )


def _load_cifar(
    data_dir: Path,
    folder: str,
    train_names: list[str],
    test_name: str,
    label_key: str,
    n_classes: int,
    archive: str,
) -> RawData:
    root = Path(data_dir) / folder
    paths = [root / name for name in [*train_names, test_name]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(
            f"CIFAR files missing: {', '.join(missing)}. "
            + _cifar_hint(archive, Path(data_dir), folder)
        )
    train_parts = [read_cifar_batch(p, label_key) for p in paths[:-1]]
    x_test, y_test = read_cifar_batch(paths[-1], label_key)
    y_train = np.concatenate([y for _, y in train_parts])
    top = int(max(y_train.max(initial=0), y_test.max(initial=0)))
    if top >= n_classes:
        raise DataError(f"labels in {root} go up to {top}, expected fewer than {n_classes}")
    return RawData(
        _to_unit_float(np.concatenate([x for x, _ in train_parts])),
        y_train,
        _to_unit_float(x_test),
        y_test,
        n_outputs=n_classes,
    )


def load_cifar10(data_dir: Path) -> RawData:
    """CIFAR-10 (50000/10000, 3x32x32, 10 classes) from ``data_dir/cifar-10-batches-py``."""
    return _load_cifar(
        data_dir,
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "labels",
        10,
        "cifar-10-python.tar.gz",
    )


def load_cifar100(data_dir: Path) -> RawData:
    """CIFAR-100 (50000/10000, 3x32x32, 100 fine classes) from ``data_dir/cifar-100-python``."""
    return _load_cifar(
        data_dir,
        "cifar-100-python",
        ["train"],
        "test",
        "fine_labels",
        100,
        "cifar-100-python.tar.gz",
    )


# -- SVHN ---------------------------------------------------------------------------


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN cropped-digits ``.mat`` file: ``uint8`` images ``[N, 3, 32, 32]``, labels ``[N]``.

    The file stores ``X`` as ``[32, 32, 3, N]`` and ``y`` as ``[N, 1]`` with
    digit 0 labelled 10; labels are mapped to 0..9.
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except FileNotFoundError:
        raise
    except Exception as exc:  # scipy's parser on a damaged file: any error means unreadable
        raise DataError(f"cannot read SVHN file {path} ({type(exc).__name__}: {exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"SVHN file {path} lacks the 'X' and 'y' variables")
    x, y = mat["X"], np.asarray(mat["y"])
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"SVHN file {path}: X is {x.dtype} {x.shape}, expected uint8 [32,32,3,N]")
    y = y.reshape(-1)
    if y.shape != (x.shape[3],):
        raise DataError(f"SVHN file {path}: {x.shape[3]} images but {y.size} labels")
    if y.size and (not np.array_equal(y, np.round(y)) or y.min() < 0 or y.max() > 10):
        raise DataError(f"SVHN file {path}: labels must be integers 0..10")
    labels = y.astype(np.int64)
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def load_svhn(data_dir: Path) -> RawData:
    """SVHN cropped digits (73257/26032, 3x32x32, 10 classes) from ``data_dir/svhn``.

    Uses ``train_32x32.mat`` and ``test_32x32.mat``; the "extra" split is not used.
    """
    folder = Path(data_dir) / "svhn"
    paths = [folder / "train_32x32.mat", folder / "test_32x32.mat"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(
            f"SVHN files missing: {', '.join(missing)}. Download train_32x32.mat and "
            f"test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into {folder}. "
            + _data_dir_hint(Path(data_dir))
        )
    x_train, y_train = read_svhn_mat(paths[0])
    x_test, y_test = read_svhn_mat(paths[1])
    return RawData(_to_unit_float(x_train), y_train, _to_unit_float(x_test), y_test, n_outputs=10)


def _to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """``uint8`` pixels as float32 in ``[0, 1]`` (value / 255)."""
    out: np.ndarray = pixels.astype(np.float32)
    out /= np.float32(255.0)
    return out
