"""Dataset loaders: files in the exact on-disk formats round-trip through loaders and get_task.

Fixtures are written byte for byte as the official distributions store them
(IDX headers, CIFAR pickled dicts with bytes keys, SVHN MATLAB files); the
bundled datasets are checked for shapes, class counts and a test split that
never changes between runs.
"""

import gzip
import os
import pickle
import random
import socket
import struct
import urllib.request

import numpy as np
import pytest
import scipy.io
import torch

from evomal.tasks import get_task
from evomal.tasks.datasets import bundled, images
from evomal.tasks.datasets.images import (
    IDX_FILES,
    load_cifar10,
    load_cifar100,
    load_idx_folder,
    load_mnist,
    load_svhn,
    read_cifar_batch,
    read_idx,
)

# -- writers for the official formats --------------------------------------------


def idx_bytes(array, type_code=0x08):
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype[type_code]).tobytes()


def write_idx(path, array, gz=False, type_code=0x08):
    data = idx_bytes(array, type_code)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def tagged_images(n, shape, rng):
    """Random uint8 images whose first value is the sample's index (an identity tag)."""
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    x.reshape(n, -1)[:, 0] = np.arange(n)
    return x


def make_idx_folder(folder, n_train=40, n_test=12, n_classes=10, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": tagged_images(n_train, (28, 28), rng),
        "y_train": rng.integers(0, n_classes, n_train).astype(np.uint8),
        "x_test": tagged_images(n_test, (28, 28), rng),
        "y_test": rng.integers(0, n_classes, n_test).astype(np.uint8),
    }
    arrays["y_train"][0] = n_classes - 1  # the largest label is present
    for key, stem in IDX_FILES.items():
        write_idx(folder / stem, arrays[key], gz=gz)
    return arrays


def write_cifar_batch(path, data, labels, label_key=b"labels"):
    """A CIFAR batch as distributed: a pickled dict with bytes keys, numpy data, list labels."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        label_key: [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_cifar10(data_dir, per_batch=4, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    root = data_dir / "cifar-10-batches-py"
    root.mkdir(parents=True)
    n_train = 5 * per_batch
    x_train = tagged_images(n_train, (3072,), rng)
    y_train = rng.integers(0, 10, n_train)
    for b in range(5):
        part = slice(b * per_batch, (b + 1) * per_batch)
        write_cifar_batch(root / f"data_batch_{b + 1}", x_train[part], y_train[part])
    x_test, y_test = tagged_images(n_test, (3072,), rng), rng.integers(0, 10, n_test)
    write_cifar_batch(root / "test_batch", x_test, y_test)
    return x_train, y_train, x_test, y_test


def make_svhn(data_dir, n_train=30, n_test=10, label_dtype=np.uint8, seed=0):
    """SVHN .mat files in the official layout: X [32, 32, 3, N] uint8, y [N, 1] in 1..10."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "svhn"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = tagged_images(n, (3, 32, 32), rng)  # [N, C, H, W], the layout we expect back
        y = rng.integers(1, 11, n)
        y[0] = 10
        mat_x = np.ascontiguousarray(x.transpose(2, 3, 1, 0))  # -> [H, W, C, N]
        scipy.io.savemat(
            folder / f"{split}_32x32.mat", {"X": mat_x, "y": y.reshape(-1, 1).astype(label_dtype)}
        )
        out[split] = (x, y)
    return out


def check_task_splits(task, x_train, y_train, x_test, y_test):
    """Validation is 10% of the original train split, test is the original test split."""
    n = len(y_train)
    assert len(task.val) == round(0.1 * n)
    assert len(task.train) + len(task.val) == n
    assert torch.equal(task.test.x, torch.from_numpy(x_test))
    assert torch.equal(task.test.y, torch.from_numpy(y_test))
    # train + validation hold every original training sample exactly once, unchanged
    x = torch.cat([task.train.x, task.val.x])
    y = torch.cat([task.train.y, task.val.y])
    tags = (x.reshape(n, -1)[:, 0] * 255).round().long()
    assert sorted(tags.tolist()) == list(range(n))
    order = torch.argsort(tags)
    assert torch.equal(x[order], torch.from_numpy(x_train))
    assert torch.equal(y[order], torch.from_numpy(y_train))


# -- IDX ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("type_code", "dtype"),
    [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ],
)
def test_read_idx_round_trips_every_type(tmp_path, gz, type_code, dtype):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / "a-idx3", array, gz=gz, type_code=type_code)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def _corrupt_cases():
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    return {
        "bad magic": (b"\x01\x02" + good[2:], "magic"),
        "unknown type": (good[:2] + b"\x07" + good[3:], "magic"),
        "zero dims": (good[:3] + b"\x00" + good[4:], "magic"),
        "truncated header": (good[:9], "truncated"),
        "truncated data": (good[:-1], "truncated"),
        "trailing bytes": (good + b"\x00", "trailing"),
        "empty": (b"", "truncated"),
        "corrupt gzip": (gzip.compress(good)[:12] + b"\xff" * 40, "corrupt"),
        "truncated gzip": (gzip.compress(good)[:-10], "corrupt"),
        "claims a gigabyte": (
            bytes([0, 0, 8, 3]) + struct.pack(">3I", 1000, 1000, 1000),
            "truncated",
        ),
        "absurd size": (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 2**31, 2), "too large"),
    }


@pytest.mark.parametrize("case", list(_corrupt_cases()))
def test_read_idx_rejects_corrupt_files(tmp_path, case):
    data, message = _corrupt_cases()[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trips_through_loader_and_get_task(tmp_path, gz):
    arrays = make_idx_folder(tmp_path / "mnist", gz=gz)
    x_train = arrays["x_train"][:, None].astype(np.float32) / 255
    x_test = arrays["x_test"][:, None].astype(np.float32) / 255
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)

    raw = load_mnist(tmp_path)
    assert raw.x_train.dtype == np.float32 and raw.x_train.shape == (40, 1, 28, 28)
    assert raw.y_train.dtype == np.int64 and raw.n_outputs == 10
    np.testing.assert_array_equal(raw.x_train, x_train)
    np.testing.assert_array_equal(raw.x_test, x_test)
    np.testing.assert_array_equal(raw.y_train, y_train)
    np.testing.assert_array_equal(raw.y_test, y_test)

    task = get_task("mnist", data_dir=tmp_path)
    assert task.kind == "classification" and task.n_outputs == 10
    assert task.input_shape == (1, 28, 28)
    check_task_splits(task, x_train, y_train, x_test, y_test)


def test_mnist_reports_ten_classes_even_if_few_appear(tmp_path):
    make_idx_folder(tmp_path / "mnist", n_classes=3)
    assert load_mnist(tmp_path).n_outputs == 10
    assert get_task("mnist", data_dir=tmp_path).n_outputs == 10


def test_fashion_mnist_and_mixed_raw_gz_files(tmp_path):
    arrays = make_idx_folder(tmp_path / "fashion_mnist", gz=True)
    # a raw file next to gz ones is fine too
    (tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte", arrays["y_test"])
    task = get_task("fashion_mnist", data_dir=tmp_path)
    assert task.n_outputs == 10 and task.input_shape == (1, 28, 28)
    assert torch.equal(task.test.y, torch.from_numpy(arrays["y_test"].astype(np.int64)))


def test_idx_folder_task_counts_classes_from_labels(tmp_path):
    arrays = make_idx_folder(tmp_path / "anything", n_classes=5, gz=True)
    raw = load_idx_folder(tmp_path / "anything")
    assert raw.n_outputs == 5
    task = get_task(f"idx:{tmp_path / 'anything'}")
    assert task.n_outputs == 5
    check_task_splits(
        task,
        arrays["x_train"][:, None].astype(np.float32) / 255,
        arrays["y_train"].astype(np.int64),
        arrays["x_test"][:, None].astype(np.float32) / 255,
        arrays["y_test"].astype(np.int64),
    )


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_task("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "evomal data get mnist" in message
    assert str(tmp_path / "mnist") in message and "train-images-idx3-ubyte" in message
    assert "--data-dir" in message and "EVOMAL_DATA_DIR" in message
    # one file missing: only it is named
    make_idx_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels") as info:
        load_mnist(tmp_path)
    assert "train-images" not in str(info.value)


def test_missing_fashion_mnist_and_idx_folder_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="zalandoresearch/fashion-mnist"):
        get_task("fashion_mnist", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        get_task(f"idx:{tmp_path / 'nowhere'}")


def test_idx_inconsistent_files_are_rejected(tmp_path):
    folder = tmp_path / "mnist"
    arrays = make_idx_folder(folder)
    write_idx(folder / "train-labels-idx1-ubyte", arrays["y_train"][:-1])
    with pytest.raises(ValueError, match="labels"):
        load_mnist(tmp_path)
    make_idx_folder(folder)
    write_idx(folder / "train-images-idx3-ubyte", arrays["x_train"].reshape(40, -1))
    with pytest.raises(ValueError, match="expected \\[N, height, width\\]"):
        load_mnist(tmp_path)
    make_idx_folder(folder, n_classes=12)
    with pytest.raises(ValueError, match="fewer than 10"):
        load_mnist(tmp_path)


# -- CIFAR ----------------------------------------------------------------------------


def test_cifar10_round_trips_through_loader_and_get_task(tmp_path):
    x_train, y_train, x_test, y_test = make_cifar10(tmp_path)
    as_images = lambda x: x.reshape(-1, 3, 32, 32).astype(np.float32) / 255  # noqa: E731
    raw = load_cifar10(tmp_path)
    assert raw.x_train.shape == (20, 3, 32, 32) and raw.x_train.dtype == np.float32
    assert raw.n_outputs == 10
    np.testing.assert_array_equal(raw.x_train, as_images(x_train))
    np.testing.assert_array_equal(raw.y_train, y_train)
    np.testing.assert_array_equal(raw.x_test, as_images(x_test))
    np.testing.assert_array_equal(raw.y_test, y_test)
    # the layout is channel-major: the first 1024 values are the red plane
    np.testing.assert_array_equal(raw.x_train[3, 0].ravel(), x_train[3, :1024] / np.float32(255))

    task = get_task("cifar10", data_dir=tmp_path)
    assert task.input_shape == (3, 32, 32) and task.n_outputs == 10
    check_task_splits(task, as_images(x_train), y_train, as_images(x_test), y_test)


def test_cifar100_uses_fine_labels_and_100_classes(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    x_train, x_test = tagged_images(30, (3072,), rng), tagged_images(7, (3072,), rng)
    fine_train, fine_test = rng.integers(0, 100, 30), rng.integers(0, 100, 7)
    for name, x, fine in (("train", x_train, fine_train), ("test", x_test, fine_test)):
        batch = {
            b"filenames": [b"a.png"] * len(fine),
            b"batch_label": b"training batch 1 of 1",
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) // 5 for v in fine],
            b"data": x,
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    raw = load_cifar100(tmp_path)
    assert raw.n_outputs == 100
    np.testing.assert_array_equal(raw.y_train, fine_train)
    np.testing.assert_array_equal(raw.y_test, fine_test)
    task = get_task("cifar100", data_dir=tmp_path)
    assert task.n_outputs == 100
    as_images = lambda x: x.reshape(-1, 3, 32, 32).astype(np.float32) / 255  # noqa: E731
    check_task_splits(task, as_images(x_train), fine_train, as_images(x_test), fine_test)


def _python2_cifar_pickle(data, labels):
    """Bytes as Python 2's cPickle wrote the official CIFAR batches (str keys, old numpy paths).

    Python 3 cannot produce this (it pickles bytes through ``_codecs.encode``),
    so the opcodes are assembled by hand.
    """

    def string(s):
        return b"U" + bytes([len(s)]) + s

    def int32(v):
        return b"J" + struct.pack("<i", v)

    dtype = (
        b"cnumpy\ndtype\n"
        + string(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + string(b"|")
        + b"NNN"
        + int32(-1)
        + int32(-1)
        + b"K\x00tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + b"K\x00\x85"
        + string(b"b")
        + b"\x87R"
        + b"(K\x01("
        + int32(data.shape[0])
        + int32(data.shape[1])
        + b"t"
        + dtype
        + b"\x89"
        + b"T"
        + struct.pack("<I", data.nbytes)
        + data.tobytes()
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (
        b"\x80\x02}("
        + string(b"batch_label")
        + string(b"testing batch 1 of 1")
        + string(b"labels")
        + label_list
        + string(b"data")
        + array
        + b"u."
    )


def test_python2_style_cifar_batch_loads(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    path = tmp_path / "test_batch"
    path.write_bytes(_python2_cifar_pickle(data, [4, 0, 9]))
    # the oracle: the standard library's unrestricted loader reads the same thing
    reference = pickle.loads(path.read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(reference[b"data"], data)
    x, y = read_cifar_batch(path)
    np.testing.assert_array_equal(x, data.reshape(3, 3, 32, 32))
    np.testing.assert_array_equal(y, [4, 0, 9])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batch_loads_under_every_modern_protocol(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=protocol))
    x, y = read_cifar_batch(path)
    np.testing.assert_array_equal(x.reshape(2, -1), data)
    np.testing.assert_array_equal(y, [1, 2])


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [_RunsCode, _Evaluates])
def test_malicious_cifar_pickle_is_refused_and_not_run(tmp_path, payload):
    make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    batch = {b"data": payload(marker), b"labels": [0]}
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="refusing to load") as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="refusing to load"):
        get_task("cifar10", data_dir=tmp_path)
    assert not marker.exists()
    # the payload is live: the standard, unrestricted unpickler does run it
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_codecs_global_is_limited_to_what_pickle_emits(tmp_path):
    class Rot13:
        def __reduce__(self):
            import _codecs

            return (_codecs.encode, ("hello", "rot13"))

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": Rot13()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        read_cifar_batch(path)


def test_cifar_bad_batches_are_value_errors(tmp_path):
    path = tmp_path / "batch"
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)
    cases = {
        "not a valid pickle": good[: len(good) // 2],
        "expected a dict": pickle.dumps([1, 2], protocol=2),
        "no 'labels'": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2),
        "3072": pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}),
        "uint8": pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [1, 2]}),
        "labels shaped": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}),
    }
    for message, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            read_cifar_batch(path)


def test_missing_cifar_says_where_to_get_and_unpack(tmp_path):
    for name, folder, archive in (
        ("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python", "cifar-100-python.tar.gz"),
    ):
        with pytest.raises(FileNotFoundError) as info:
            get_task(name, data_dir=tmp_path)
        message = str(info.value)
        assert str(tmp_path / folder) in message and archive in message
        assert "cs.toronto.edu/~kriz/cifar.html" in message
        assert "--data-dir" in message and "EVOMAL_DATA_DIR" in message


# -- SVHN -------------------------------------------------------------------------------


@pytest.mark.parametrize("label_dtype", [np.uint8, np.float64])
def test_svhn_round_trips_and_maps_label_10_to_0(tmp_path, label_dtype):
    data = make_svhn(tmp_path, label_dtype=label_dtype)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    expected_train, expected_test = y_train % 10, y_test % 10
    raw = load_svhn(tmp_path)
    assert raw.x_train.shape == (30, 3, 32, 32) and raw.n_outputs == 10
    assert raw.y_train[0] == 0 and raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(raw.x_train, x_train.astype(np.float32) / 255)
    np.testing.assert_array_equal(raw.y_train, expected_train)
    np.testing.assert_array_equal(raw.y_test, expected_test)
    task = get_task("svhn", data_dir=tmp_path)
    check_task_splits(
        task,
        x_train.astype(np.float32) / 255,
        expected_train,
        x_test.astype(np.float32) / 255,
        expected_test,
    )


def test_svhn_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_task("svhn", data_dir=tmp_path)
    assert "ufldl.stanford.edu/housenumbers" in str(info.value)
    assert str(tmp_path / "svhn" / "train_32x32.mat") in str(info.value)
    make_svhn(tmp_path)
    bad = tmp_path / "svhn" / "test_32x32.mat"
    scipy.io.savemat(bad, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[11], [1]])})
    with pytest.raises(ValueError, match=r"0\.\.10"):
        load_svhn(tmp_path)
    bad.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"test_32x32\.mat"):
        load_svhn(tmp_path)


# -- bundled datasets ----------------------------------------------------------------------

BUNDLED = {
    # name: (kind, n_samples, n_features, n_classes or None)
    "digits": ("classification", 1797, 64, 10),
    "breast_cancer": ("classification", 569, 30, 2),
    "wine": ("classification", 178, 13, 3),
    "diabetes": ("regression", 442, 10, None),
    "boston": ("regression", 506, 13, None),
}


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_dataset_shapes_and_fixed_split(tmp_path, name):
    kind, n, features, n_classes = BUNDLED[name]
    loader = getattr(bundled, f"load_{name}")
    raw = loader(tmp_path)
    assert raw.x_train.dtype == np.float32 and raw.x_train.shape[1] == features
    assert len(raw.y_train) + len(raw.y_test) == n
    assert abs(len(raw.y_test) - 0.2 * n) <= (n_classes or 1)
    if kind == "classification":
        assert raw.y_train.dtype == np.int64
        # stratified: every class is in the test split in its overall proportion
        for label in range(n_classes):
            total = (raw.y_train == label).sum() + (raw.y_test == label).sum()
            assert (raw.y_test == label).sum() == round(0.2 * total)
    else:
        assert raw.y_train.dtype == np.float32 and raw.y_train.ndim == 1

    again = loader(tmp_path)
    np.testing.assert_array_equal(raw.x_test, again.x_test)
    np.testing.assert_array_equal(raw.y_test, again.y_test)

    a, b = get_task(name, data_dir=tmp_path, seed=1), get_task(name, data_dir=tmp_path, seed=2)
    assert a.kind == kind and a.input_shape == (features,)
    assert a.n_outputs == (n_classes if kind == "classification" else 1)
    assert len(a.test) == len(raw.y_test) and len(a.val) == round(0.1 * len(raw.y_train))
    # the run seed chooses validation samples, never the test set: undoing each task's
    # standardisation (fitted on its own training part) gives back the same raw test split
    for task in (a, b):
        mean, std = task.info["feature_mean_std"]
        np.testing.assert_allclose(task.test.x * std + mean, raw.x_test, rtol=1e-4, atol=1e-3)
        y = task.test.y
        if kind == "regression":
            y_mean, y_std = task.info["target_mean_std"]
            y = (y * y_std + y_mean).reshape(-1)
            np.testing.assert_allclose(y, raw.y_test, rtol=1e-5, atol=1e-4)
        else:
            assert torch.equal(y, torch.from_numpy(raw.y_test))
    assert not torch.equal(a.val.x, b.val.x)


def test_fixed_split_does_not_depend_on_global_random_state():
    y = np.repeat(np.arange(3), 20)
    np.random.seed(123)
    first = bundled.fixed_split(y, stratify=True)
    np.random.seed(456)
    second = bundled.fixed_split(y, stratify=True)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    train, test = first
    assert len(test) == 12 and np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(60))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    requests = pytest.importorskip("requests")
    monkeypatch.setattr(requests, "get", refuse)


def test_mnist1d_offline_official_split_and_global_rng_untouched(tmp_path, no_network):
    np.random.seed(7)
    random.seed(7)
    numpy_before = np.random.get_state()[1].copy()
    python_before = random.getstate()

    task = get_task("mnist1d", data_dir=tmp_path)

    np.testing.assert_array_equal(np.random.get_state()[1], numpy_before)
    assert random.getstate() == python_before
    assert task.kind == "classification" and task.n_outputs == 10
    assert task.input_shape == (40,)
    assert (len(task.train) + len(task.val), len(task.test)) == (4000, 1000)
    assert len(task.val) == 400
    assert list(tmp_path.iterdir()) == []  # nothing written

    raw = bundled.load_mnist1d(tmp_path)
    assert raw.x_train.shape == (4000, 40) and raw.x_test.shape == (1000, 40)
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int64
    assert set(np.unique(raw.y_train)) == set(range(10))
    # generation is deterministic: the test split task saw is the one generated again
    assert torch.equal(task.test.y, torch.from_numpy(raw.y_test))


def test_california_not_cached_says_how_to_get_it(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn_home"))
    with pytest.raises(FileNotFoundError) as info:
        get_task("california", data_dir=tmp_path)
    message = str(info.value)
    assert "not in scikit-learn's download cache" in message
    assert "fetch_california_housing" in message and str(tmp_path / "sklearn_home") in message


def test_image_loaders_are_registered_under_the_expected_names():
    from evomal.tasks.registry import DATASETS

    for name, function in (
        ("mnist", "load_mnist"),
        ("fashion_mnist", "load_fashion_mnist"),
        ("cifar10", "load_cifar10"),
        ("cifar100", "load_cifar100"),
        ("svhn", "load_svhn"),
    ):
        assert DATASETS[name].loader == f"{images.__name__}:{function}"
