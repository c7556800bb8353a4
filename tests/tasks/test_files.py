"""A user's own data files: csv:PATH, npz:PATH and module:function tasks (issue 11)."""

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import evomal
from evomal.cli import app
from evomal.config import build_config
from evomal.runs.store import RunStore
from evomal.tasks import get_task
from evomal.tasks.datasets.files import CSV_TEST_FRACTION, load_csv, load_npz


def write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def flowers(path, n=90, seed=0):
    """Three well-separated classes named by strings, two numeric features."""
    rng = np.random.default_rng(seed)
    names = ["setosa", "versicolor", "virginica"]
    rows = []
    for i in range(n):
        c = i % 3
        rows.append([f"{3 * c + rng.normal():.5f}", names[c], f"{-2 * c + rng.normal():.5f}"])
    return write_csv(path, ["petal", "species", "sepal"], rows)


# -- CSV ---------------------------------------------------------------------------------


def test_csv_classification_with_text_labels(tmp_path):
    path = flowers(tmp_path / "flowers.csv")
    task = get_task(f"csv:{path}", target="species")
    assert task.kind == "classification" and task.n_outputs == 3
    assert task.input_shape == (2,)
    assert task.info["classes"] == ["setosa", "versicolor", "virginica"]
    n_test = round(CSV_TEST_FRACTION * 90)
    assert len(task.train) + len(task.val) == 90 - n_test


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=6,
        max_size=40,
    )
)
def test_csv_rows_come_back_exactly_split_into_train_and_test(tmp_path, values):
    """Oracle: the train and test rows together are the file's rows, each exactly once."""
    matrix = np.array(values, dtype=np.float64)
    path = write_csv(
        tmp_path / "numbers.csv",
        ["a", "y", "b"],
        [[repr(r[0]), repr(r[1]), repr(r[2])] for r in values],
    )
    raw, kind = load_csv(path, "y", kind="regression")
    assert kind == "regression"
    x = np.concatenate([raw.x_train, raw.x_test])
    y = np.concatenate([raw.y_train, raw.y_test])
    got = sorted(zip(x[:, 0], y, x[:, 1], strict=True))
    want = sorted(zip(matrix[:, 0], matrix[:, 1], matrix[:, 2], strict=True))
    assert got == want
    again, _ = load_csv(path, "y", kind="regression")
    np.testing.assert_array_equal(again.x_test, raw.x_test)  # the same test rows every time


def test_csv_kind_is_inferred_and_can_be_overridden(tmp_path):
    rng = np.random.default_rng(1)
    rows = [[f"{v:.4f}", f"{2 * v + 0.1 * rng.normal():.6f}"] for v in rng.normal(size=50)]
    path = write_csv(tmp_path / "line.csv", ["x", "y"], rows)
    assert get_task(f"csv:{path}", target="y").kind == "regression"
    counts = write_csv(tmp_path / "counts.csv", ["x", "n"], [[i, i % 4] for i in range(40)])
    assert get_task(f"csv:{counts}", target="n").kind == "classification"
    as_numbers = get_task(f"csv:{counts}", target="n", kind="regression")
    assert as_numbers.kind == "regression" and as_numbers.n_outputs == 1


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("", "y", "is empty"),
        ("a,y\n", "y", "header but no rows"),
        ("a,y\n1,0\n2,1\n", "label", "no column 'label'; columns: \\['a', 'y'\\]"),
        ("a,y\n1,0\nhello,1\n3,0\n", "y", "feature column 'a' is not numeric \\(row 3: 'hello'\\)"),
        ("a,y\n1,0\n2\n", "y", "row 3 has 1 fields but the header has 2"),
        ("a,y\n1,0\n2,\n3,1\n", "y", "row 3 has no value in target column 'y'"),
        ("a,y\n1,0\n2,0\n3,0\n4,0\n5,0\n", "y", "one class only"),
        ("a,a\n1,0\n", "a", "repeats a column name"),
        ("y\n1\n2\n", "y", "the only column"),
        ("a,y\n1,0\n2,1\n3,0\n", None, "--target COLUMN"),
    ],
)
def test_bad_csv_files_are_one_line_errors(tmp_path, content, target, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        get_task(f"csv:{path}", target=target)
    assert path.read_text() == content  # nothing on disk was touched


def test_a_regression_target_must_be_numeric(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [[1, "big"], [2, "small"], [3, "big"]])
    with pytest.raises(ValueError, match="regression target 'y' is not numeric"):
        get_task(f"csv:{path}", target="y", kind="regression")


def test_missing_csv_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        get_task(f"csv:{tmp_path / 'nope.csv'}", target="y")


# -- NPZ ---------------------------------------------------------------------------------


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_task_matches_the_same_arrays_given_directly(tmp_path):
    """Oracle: npz:PATH equals Task.from_tensors on the arrays it holds."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 5)), rng.integers(0, 4, size=60)
    path = npz(tmp_path / "d.npz", x_train=x[:50], y_train=y[:50], x_test=x[50:], y_test=y[50:])
    task = get_task(f"npz:{path}")
    direct = evomal.Task.from_tensors("d", "classification", x[:50], y[:50], x[50:], y[50:])
    assert task.kind == "classification" and task.n_outputs == direct.n_outputs == 4
    np.testing.assert_allclose(task.train.x.numpy(), direct.train.x.numpy())
    np.testing.assert_array_equal(task.val.y.numpy(), direct.val.y.numpy())
    floats = npz(tmp_path / "r.npz", x_train=x[:50], y_train=x[:50, 0], x_test=x[50:],
                 y_test=x[50:, 0])  # fmt: skip
    assert get_task(f"npz:{floats}").kind == "regression"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.ones((4, 2)), "y_train": np.zeros(4, int)}, "missing array"),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.zeros(3, int), "x_test": np.ones((2, 2)),
             "y_test": np.zeros(2, int)},
            "x_train has 4 samples but y_train has 3",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, -1, 0]),
             "x_test": np.ones((2, 2)), "y_test": np.zeros(2, int)},
            "class labels must be 0..k-1, found -1",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 1, 0]),
             "x_test": np.ones((2, 2)), "y_test": np.array([0, 5])},
            "y_test has label 5, out of the range 0..1",
        ),
        (
            {"x_train": np.array([["a", "b"]] * 4), "y_train": np.zeros(4, int),
             "x_test": np.ones((2, 2)), "y_test": np.zeros(2, int)},
            "not numeric",
        ),
        (
            {"x_train": np.ones((0, 2)), "y_train": np.zeros(0, int), "x_test": np.ones((2, 2)),
             "y_test": np.zeros(2, int)},
            "x_train is empty",
        ),
    ],
)  # fmt: skip
def test_bad_npz_files_are_one_line_errors(tmp_path, arrays, message):
    path = npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_npz(path)


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    ragged = np.empty(4, dtype=object)
    ragged[:] = [[1], [1, 2], [3], [4]]
    np.savez(path, x_train=ragged, y_train=np.zeros(4, int), x_test=ragged, y_test=np.zeros(4, int))
    with pytest.raises(ValueError, match="object arrays, which need pickle"):
        load_npz(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"not a readable \.npz file"):
        load_npz(garbage)


# -- module:function ----------------------------------------------------------------------


def make_task():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4))
    y = (x[:, 0] > 0).astype(int)
    return evomal.Task.from_tensors("mine", "classification", x, y, x[:20], y[:20])


def not_a_task():
    return 42


def test_a_task_function_by_import_path():
    task = get_task("tests.tasks.test_files:make_task")
    assert task.name == "mine" and task.n_outputs == 2
    with pytest.raises(ValueError, match="returned int, not a Task"):
        get_task("tests.tasks.test_files:not_a_task")
    with pytest.raises(ValueError, match="has no 'nothing'"):
        get_task("tests.tasks.test_files:nothing")


# -- end to end -------------------------------------------------------------------------------

TINY = [
    "gp.population_size=4",
    "gp.generations=2",
    "local_search.steps=2",
    "fitness.steps=20",
    "filters.rejection_steps=50",
    "training.lr=0.1",
    "training.batch_size=16",
    "selection.k=1",
    "selection.steps=30",
    "meta_test.steps=30",
]


def test_a_csv_task_is_searched_resumed_and_meta_tested_from_python(tmp_path):
    path = flowers(tmp_path / "flowers.csv")
    config = build_config(None, TINY)
    task = get_task(f"csv:{path}", target="species")
    out = tmp_path / "run"
    spec = {"task": f"csv:{path}", "target": "species"}
    evomal.search(task, "mlp", config, out=out, spec=spec, max_generations=1)
    resumed = evomal.resume(out)  # the task is rebuilt from run.json
    assert resumed.finished and resumed.best is not None
    assert resumed.best.to_dict() == evomal.search(task, "mlp", config).best.to_dict()


def test_the_cli_searches_resumes_tests_and_shows_a_csv_task(tmp_path, monkeypatch):
    runner = CliRunner()
    flowers(tmp_path / "flowers.csv")
    monkeypatch.chdir(tmp_path)  # a relative path, as a user types it
    settings_ = [arg for pair in (("--set", s) for s in TINY) for arg in pair]
    task = ["--task", "csv:flowers.csv", "--target", "species", "--model", "mlp"]
    searched = runner.invoke(app, ["search", *task, *settings_, "--out", "run"])
    assert searched.exit_code == 0, searched.output
    assert "Meta-test" in searched.output
    recorded = RunStore(tmp_path / "run").load_spec()
    assert recorded["task"] == f"csv:{tmp_path / 'flowers.csv'}" and recorded["target"] == "species"
    stopped = tmp_path / "stopped"
    config = build_config(None, TINY)
    spec = {"task": "csv:flowers.csv", "target": "species"}
    task_ = get_task("csv:flowers.csv", target="species")
    evomal.search(task_, "mlp", config, out=stopped, spec=spec, max_generations=1)
    monkeypatch.chdir(tmp_path.parent)
    resumed = runner.invoke(app, ["resume", str(stopped), "--no-meta-test"])
    assert resumed.exit_code == 0, resumed.output
    monkeypatch.chdir(tmp_path)
    tested = runner.invoke(
        app, ["test", "--loss", "run/best_loss.json", *task, "--seeds", "0,1", *settings_]
    )
    assert tested.exit_code == 0, tested.output
    assert "test error rate" in tested.output
    assert runner.invoke(app, ["show", "run/best_loss.json"]).exit_code == 0
    missing = runner.invoke(app, ["search", "--task", "csv:flowers.csv", "--target", "colour"])
    assert missing.exit_code == 2 and "no column 'colour'" in " ".join(missing.output.split())
    assert "Traceback" not in missing.output
