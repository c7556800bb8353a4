"""Loaders for the small datasets that ship with evomal's dependencies.

None of these touch the network. scikit-learn's bundled sets (digits, breast
cancer, wine, diabetes) and mlxtend's copy of Boston housing come without a
test split, so :func:`fixed_split` makes one: 80/20, stratified by class for
classification, drawn from a generator seeded with :data:`SPLIT_SEED` that is
independent of any run seed. The test set is therefore the same samples in
every run, on every machine, as the paper's protocol requires. MNIST-1D is
generated offline with the ``mnist1d`` package and keeps its own official
4000/1000 split. California housing is read from scikit-learn's download
cache only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evomal.errors import DataError, DataMissingError
from evomal.tasks.datasets.raw import RawData

#: Seed of the fixed train/test split of the datasets without an official one.
#: Changing it changes every reported test error on those datasets.
SPLIT_SEED = 0

#: Fraction of the samples held out as the test split of those datasets.
TEST_FRACTION = 0.2


def fixed_split(
    y: np.ndarray,
    *,
    stratify: bool,
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices (each sorted) of a deterministic hold-out split.

    With ``stratify`` every class contributes ``round(test_fraction * n_class)``
    samples to the test split, so class proportions match. Uses numpy's
    legacy ``RandomState``, whose stream numpy keeps stable across versions,
    so the split does not drift when numpy or scikit-learn is upgraded.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.RandomState(seed)
    n = len(y)
    groups = [np.flatnonzero(y == label) for label in np.unique(y)] if stratify else [np.arange(n)]
    test_parts = []
    for members in groups:
        shuffled = members[rng.permutation(len(members))]
        test_parts.append(shuffled[: round(test_fraction * len(members))])
    is_test = np.zeros(n, dtype=bool)
    is_test[np.concatenate(test_parts)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _split_raw(x: np.ndarray, y: np.ndarray, *, classification: bool) -> RawData:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64 if classification else np.float32)
    train, test = fixed_split(y, stratify=classification)
    return RawData(x[train], y[train], x[test], y[test])


def _sklearn_bundled(loader: Callable[..., Any], *, classification: bool) -> RawData:
    x, y = loader(return_X_y=True)
    return _split_raw(x, y, classification=classification)


def load_digits(data_dir: Path) -> RawData:
    """scikit-learn's 8x8 digits (1797 x 64, 10 classes); fixed stratified 80/20 split.

    ``data_dir`` is unused: the data ships with scikit-learn.
    """
    from sklearn import datasets

    return _sklearn_bundled(datasets.load_digits, classification=True)


def load_breast_cancer(data_dir: Path) -> RawData:
    """Wisconsin breast cancer (569 x 30, 2 classes); fixed stratified 80/20 split.

    ``data_dir`` is unused: the data ships with scikit-learn.
    """
    from sklearn import datasets

    return _sklearn_bundled(datasets.load_breast_cancer, classification=True)


def load_wine(data_dir: Path) -> RawData:
    """Wine recognition (178 x 13, 3 classes); fixed stratified 80/20 split.

    ``data_dir`` is unused: the data ships with scikit-learn.
    """
    from sklearn import datasets

    return _sklearn_bundled(datasets.load_wine, classification=True)


def load_diabetes(data_dir: Path) -> RawData:
    """Diabetes progression (442 x 10, regression); fixed 80/20 split.

    ``data_dir`` is unused: the data ships with scikit-learn.
    """
    from sklearn import datasets

    return _sklearn_bundled(datasets.load_diabetes, classification=False)


def load_boston(data_dir: Path) -> RawData:
    """Boston housing (506 x 13, regression) from mlxtend's bundled copy; fixed 80/20 split.

    ``data_dir`` is unused: the data ships with mlxtend.
    """
    from mlxtend.data import boston_housing_data

    x, y = boston_housing_data()
    return _split_raw(x, y, classification=False)


def load_mnist1d(data_dir: Path) -> RawData:
    """MNIST-1D (40-sample signals, 10 classes) with its official 4000/1000 split.

    Generated offline from the ``mnist1d`` package's default arguments (seed
    42), which reproduces the published dataset; the package's download path
    is never used. Generation takes about a second and is not cached.
    ``make_dataset`` reseeds numpy's and Python's global generators, so both
    states are saved and restored around it: loading data must not change
    the random numbers a caller draws next. ``data_dir`` is unused.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    numpy_state = np.random.get_state()  # noqa: NPY002
    python_state = random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    return RawData(
        np.asarray(data["x"], dtype=np.float32),
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float32),
        np.asarray(data["y_test"], dtype=np.int64),
    )


def load_california(data_dir: Path) -> RawData:
    """California housing (20640 x 8, regression) from scikit-learn's download cache.

    The data is not bundled with any dependency, and evomal never downloads
    at run time, so it must already be in scikit-learn's data home (the
    ``SCIKIT_LEARN_DATA`` environment variable, default ``~/scikit_learn_data``).
    Only that cache is read (scikit-learn stores it as a joblib pickle, so a
    copy in evomal's data directory is deliberately not consulted). Fixed
    80/20 split. ``data_dir`` is unused.
    """
    from sklearn.datasets import fetch_california_housing, get_data_home

    try:
        x, y = fetch_california_housing(return_X_y=True, download_if_missing=False)
    except OSError:
        home = get_data_home()
        raise DataMissingError(
            f"the California housing dataset is not in scikit-learn's download cache ({home}); "
            "evomal does not download it. On a machine with internet run "
            '`python -c "from sklearn.datasets import fetch_california_housing as f; f()"`, '
            f"then copy the cache (the file cal_housing_py3.pkz) into {home}, or point the "
            "SCIKIT_LEARN_DATA environment variable at a folder holding it"
        ) from None
    return _split_raw(x, y, classification=False)
