"""Task splits, standardisation, hidden test split and construction from datasets."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from evomal.tasks import HiddenTestSplitError, Task


def _arrays(n=200, features=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(n, features))
    y = rng.integers(0, 3, size=n)
    xt = rng.normal(-1.0, 5.0, size=(50, features))
    yt = rng.integers(0, 3, size=50)
    return x, y, xt, yt


def test_validation_is_ten_percent_of_train_chosen_by_seed():
    x, y, xt, yt = _arrays()
    a = Task.from_tensors("t", "classification", x, y, xt, yt, seed=1, standardise="none")
    b = Task.from_tensors("t", "classification", x, y, xt, yt, seed=1, standardise="none")
    c = Task.from_tensors("t", "classification", x, y, xt, yt, seed=2, standardise="none")
    assert (len(a.train), len(a.val), len(a.test)) == (180, 20, 50)
    assert torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.x, c.val.x)
    # validation and training partition the original training split
    together = torch.cat([a.train.x, a.val.x])
    assert sorted(map(tuple, together.tolist())) == sorted(
        map(tuple, torch.tensor(x).float().tolist())
    )
    # the test split is the original one, untouched
    assert torch.allclose(a.test.x, torch.tensor(xt, dtype=torch.float32))


def test_standardisation_uses_training_statistics_only():
    x, y, xt, yt = _arrays()
    raw = Task.from_tensors("t", "classification", x, y, xt, yt, seed=0, standardise="none")
    std = Task.from_tensors("t", "classification", x, y, xt, yt, seed=0)
    mean, scale = raw.train.x.mean(0), raw.train.x.std(0)
    assert torch.allclose(std.train.x.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(std.val.x, (raw.val.x - mean) / scale, atol=1e-5)
    assert torch.allclose(std.test.x, (raw.test.x - mean) / scale, atol=1e-5)
    # the test split's own statistics were not used: its mean is far from zero
    assert std.test.x.mean().abs() > 0.5


def test_regression_targets_and_shapes():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 3)), rng.normal(10.0, 4.0, size=100)
    task = Task.from_tensors("r", "regression", x, y, x[:20], y[:20], standardise_targets=True)
    assert task.n_outputs == 1
    assert task.train.y.shape == (90, 1)
    assert abs(float(task.train.y.mean())) < 1e-5


def test_class_count_and_binary_single_output():
    x, y, xt, yt = _arrays()
    assert Task.from_tensors("t", "classification", x, y, xt, yt).n_outputs == 3
    yb, ytb = y % 2, yt % 2
    assert Task.from_tensors("b", "classification", x, yb, xt, ytb).n_outputs == 2
    assert Task.from_tensors("b", "classification", x, yb, xt, ytb, n_outputs=1).n_outputs == 1
    assert Task.from_tensors("t", "classification", x, y, xt, yt, n_outputs=10).n_outputs == 10


def test_search_view_hides_the_test_split():
    task = Task.from_tensors("t", "classification", *_arrays())
    hidden = task.without_test()
    assert task.has_test and not hidden.has_test
    with pytest.raises(HiddenTestSplitError, match="must not read it"):
        _ = hidden.test
    assert torch.equal(hidden.val.x, task.val.x)
    assert hidden.summary()["n_test"] is None


def test_from_datasets_tensor_and_custom():
    x, y, xt, yt = _arrays()
    a = Task.from_datasets(
        "d",
        "classification",
        TensorDataset(torch.tensor(x), torch.tensor(y)),
        TensorDataset(torch.tensor(xt), torch.tensor(yt)),
    )
    b = Task.from_tensors("d", "classification", x, y, xt, yt)
    assert torch.allclose(a.train.x, b.train.x)

    class Pairs(Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], int(y[i])

    c = Task.from_datasets(
        "d", "classification", Pairs(), TensorDataset(torch.tensor(xt), torch.tensor(yt))
    )
    assert torch.allclose(c.train.x, b.train.x)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kind": "ranking"}, "task kind"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"y": np.array([0.5] * 200)}, "integers"),
        ({"y": -np.ones(200, dtype=int)}, ">= 0"),
        ({"xt": np.zeros((50, 4))}, "differ in shape"),
        ({"standardise": "minmax"}, "standardisation"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, fragment):
    x, y, xt, yt = _arrays()
    args = {"kind": "classification", "x": x, "y": y, "xt": xt, "yt": yt}
    extra = {k: v for k, v in kwargs.items() if k not in args}
    args.update({k: v for k, v in kwargs.items() if k in args})
    with pytest.raises(ValueError, match=fragment):
        Task.from_tensors("t", args["kind"], args["x"], args["y"], args["xt"], args["yt"], **extra)
