"""Bad input, table-driven: exit code 2, one line naming the problem, no traceback, nothing changed.

Each case builds what it needs in a scratch directory that also holds a finished
run directory; after the command, every file there must be byte-for-byte as it was.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import evomal
from evomal import errors as E
from evomal.cli import app
from evomal.experiment import ExperimentSpec, run_experiment
from evomal.losses.io import load_any_loss
from evomal.losses.zoo import ZooLoss
from evomal.methods.meta_test import meta_test, parse_seeds

runner = CliRunner()
TINY = ["gp.population_size=4", "gp.generations=1", "local_search.steps=2", "fitness.steps=20",
        "selection.k=0"]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "run"
    evomal.search(evomal.get_task("wine"), "linear", evomal.build_config(None, TINY), out=root)
    return root


def _snapshot(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _csv(path, text):
    path.write_text(text)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _loss(path, **changes):
    doc = evomal.LearnedLoss.cross_entropy().to_dict()
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path


def _idx(folder):
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
        (folder / name).write_bytes(b"\x00\x00\x08\x03\x00\x00")  # a header cut short
    return folder


def _cifar(folder):
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"):  # fmt: skip
        (batches / name).write_bytes(b"\x80\x04garbage")
    return folder


def _svhn(folder):
    (folder / "svhn").mkdir(parents=True)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        (folder / "svhn" / name).write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    return folder


def _old_version(run, tmp):
    import shutil

    copy = tmp / "old_run"
    shutil.copytree(run, copy)
    checkpoint = json.loads((copy / "checkpoint.json").read_text())
    checkpoint["version"] = 999
    (copy / "checkpoint.json").write_text(json.dumps(checkpoint))
    (copy / "result.json").unlink()
    return copy


def _huge_tree():
    expression = "fx"
    for _ in range(300):
        expression = f"add({expression}, y)"
    return expression


def _rows(path, *rows):
    return _csv(path, "\n".join(rows) + "\n")


def _labels_out_of_range(t):
    return _npz(t / "l.npz", x_train=np.ones((4, 2)), y_train=np.array([0, 1, 0, 1]),
                x_test=np.ones((2, 2)), y_test=np.array([0, 7]))  # fmt: skip


def _mismatched(t):
    return _npz(t / "s.npz", x_train=np.ones((4, 2)), y_train=np.zeros(3, int),
                x_test=np.ones((2, 2)), y_test=np.zeros(2, int))  # fmt: skip


def _empty_npz(t):
    return _npz(t / "z.npz", x_train=np.ones((0, 2)), y_train=np.zeros(0, int),
                x_test=np.ones((2, 2)), y_test=np.zeros(2, int))  # fmt: skip


W = ["--task", "wine", "--model", "linear"]

# fmt: off
CASES = [
    ("unknown task", lambda t, r: ["search", "--task", "nosuch"], "unknown task"),
    ("unknown model", lambda t, r: ["search", *W[:2], "--model", "nosuch"], "unknown model"),
    ("unknown method", lambda t, r: ["search", *W, "--method", "nosuch"], "unknown method"),
    ("unknown preset", lambda t, r: ["search", *W, "--preset", "nosuch"], "preset"),
    ("misspelt key", lambda t, r: ["search", *W, "--set", "gp.populaton_size=3"], "did you mean"),
    ("unknown group", lambda t, r: ["search", *W, "--set", "gpp.generations=3"], "did you mean gp"),
    ("wrong type", lambda t, r: ["search", *W, "--set", "gp.population_size=abc"], "integer"),
    ("zero size", lambda t, r: ["search", *W, "--set", "gp.population_size=0"], "population_size"),
    ("negative steps", lambda t, r: ["search", *W, "--set", "fitness.steps=-5"], "fitness.steps"),
    ("zero lr", lambda t, r: ["search", *W, "--set", "training.lr=0"], "learning rate"),
    ("momentum 1.5", lambda t, r: ["search", *W, "--set", "training.momentum=1.5"], "momentum"),
    ("negative k", lambda t, r: ["search", *W, "--set", "selection.k=-1"], "selection"),
    ("prune at 1", lambda t, r: ["search", *W, "--set", "fitness.prune_at=1"], "prune_at"),
    ("prune factor", lambda t, r: ["search", *W, "--set", "fitness.prune_factor=0.5"], ">= 1"),
    ("not a mapping", lambda t, r: ["search", *W, "--set", "gp=3"], "gp"),
    ("empty csv", lambda t, r: ["search", "--task", f"csv:{_csv(t / 'e.csv', '')}",
                               "--target", "y"], "is empty"),
    ("nan feature", lambda t, r: ["search", "--task",
                                 f"csv:{_rows(t / 'n.csv', 'a,y', '1,0', 'nan,1', '2,0')}",
                                 "--target", "y"], "'nan'"),
    ("missing column", lambda t, r: ["search", "--task",
                                    f"csv:{_rows(t / 'm.csv', 'a,y', '1,0', '2,1')}",
                                    "--target", "label"], "no column 'label'"),
    ("ragged csv", lambda t, r: ["search", "--task", f"csv:{_rows(t / 'r.csv', 'a,y', '1,0', '2')}",
                                "--target", "y"], "fields"),
    ("no target", lambda t, r: ["search", "--task", f"csv:{_rows(t / 'n2.csv', 'a,y', '1,0')}"],
     "--target"),
    ("labels out of range", lambda t, r: ["search", "--task", f"npz:{_labels_out_of_range(t)}"],
     "out of the range"),
    ("mismatched shapes", lambda t, r: ["search", "--task", f"npz:{_mismatched(t)}"],
     "must match"),
    ("empty dataset", lambda t, r: ["search", "--task", f"npz:{_empty_npz(t)}"], "empty"),
    ("truncated idx", lambda t, r: ["train", "--task", f"idx:{_idx(t / 'idx')}"], "IDX"),
    ("corrupt cifar", lambda t, r: ["train", "--task", "cifar10", "--data-dir",
                                   str(_cifar(t / "c"))], "CIFAR"),
    ("truncated svhn", lambda t, r: ["train", "--task", "svhn", "--data-dir", str(_svhn(t / "s"))],
     "SVHN"),
    ("truncated loss", lambda t, r: ["show", str(_csv(t / "t.json", '{"format": "evomal-loss'))],
     "not valid JSON"),
    ("unknown primitive", lambda t, r: ["show", str(_loss(t / "p.json",
                                                          expression="mul(y, cube(fx))"))], "cube"),
    ("wrong arity", lambda t, r: ["show", str(_loss(t / "a.json", expression="log(y, fx)"))],
     "log"),
    ("wrong phi length", lambda t, r: ["show", str(_loss(t / "f.json", phi=[1.0, 2.0]))], "phi"),
    ("huge tree", lambda t, r: ["show", str(_loss(t / "h.json", expression=_huge_tree(),
                                                  phi=[1.0] * 600))], "height"),
    ("missing loss file", lambda t, r: ["train", *W, "--loss", str(t / "none.json")],
     "neither ce"),
    ("incompatible version", lambda t, r: ["resume", str(_old_version(r, t))], "version"),
    ("resume a non-run", lambda t, r: ["resume", str(t)], "run"),
    ("out is a file", lambda t, r: ["search", *W, "--out", str(_csv(t / "file.txt", "x"))],
     "is a file"),
    ("out holds a run", lambda t, r: ["search", *W, "--out", str(r)], "already holds a run"),
    ("model import fails", lambda t, r: ["search", *W[:2], "--model", "no_such_pkg:build"],
     "cannot import"),
    ("bad seeds", lambda t, r: ["test", "--loss", "ce", *W, "--seeds", "a-b"], "seed"),
    ("unknown method in experiment", lambda t, r: ["experiment", "--methods", "baseline,nosuch",
                                                  *W, "--out", str(t / "exp")], "nosuch"),
    ("bad kind", lambda t, r: ["search", "--task", "wine", "--kind", "ranking"], "--kind"),
    ("noise rate of 1", lambda t, r: ["search", *W, "--set", "data.label_noise=1"], "[0, 1)"),
    ("unknown noise kind", lambda t, r: ["test", "--loss", "ce", *W, "--set",
                                        "data.noise_kind=flip"], "symmetric, pair"),
    ("imbalance below 1", lambda t, r: ["train", *W, "--set", "data.imbalance=0.1"],
     "did you mean 10"),
    ("noise on regression", lambda t, r: ["test", "--loss", "mse", "--task", "diabetes",
                                         "--model", "linear", "--set", "data.label_noise=0.2"],
     "regression"),
    ("balanced error on regression", lambda t, r: ["search", "--task", "diabetes", "--set",
                                                  "data.metric=balanced_error"], "regression"),
    ("zoo parameter out of range", lambda t, r: ["test", "--loss", "gce:1.5", *W], "(0, 1]"),
    ("unknown zoo loss", lambda t, r: ["train", *W, "--loss", "foo:1"], "known loss"),
    ("zoo loss of the other kind", lambda t, r: ["test", "--loss", "huber:1", *W], "regression"),
    ("unknown zoo family", lambda t, r: ["search", *W, "--method", "zoo", "--set",
                                        "zoo.families=[ce, nope]"], "unknown family"),
    ("online batch", lambda t, r: ["search", *W, "--set", "online.batch=previous"],
     "online.batch"),
    ("unknown baselines", lambda t, r: ["search", *W, "--set", "selection.baselines=all"],
     "task, zoo"),
]
# fmt: on


@pytest.mark.parametrize(("name", "args", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(finished_run, tmp_path, name, args, fragment):
    argv = args(tmp_path, finished_run)
    before = _snapshot(finished_run)
    scratch = _snapshot(tmp_path)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert _snapshot(finished_run) == before
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in scratch} == scratch  # nothing edited


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


# The same mistakes made through the Python API raise typed errors (evomal.errors).
# Each row names the error type the caller can catch; every one is an EvomalError.
@pytest.fixture(scope="module")
def wine():
    return evomal.get_task("wine")


def _cfg(*overrides):
    return lambda: evomal.build_config(None, [*TINY, *overrides])


def _search(task, model="linear", *overrides, out=None):
    return evomal.search(task, model, evomal.build_config(None, [*TINY, *overrides]), out=out)


# fmt: off
API_CASES = [
    ("unknown task", lambda t, r, w: evomal.get_task("nosuch"), E.UnknownNameError),
    ("unknown model", lambda t, r, w: _search(w, "nosuch"), E.UnknownNameError),
    ("unknown method", lambda t, r, w: _search(w, "linear", "method=nosuch"), E.UnknownNameError),
    ("unknown preset", lambda t, r, w: evomal.build_config("nosuch"), E.UnknownNameError),
    ("misspelt key", lambda t, r, w: _cfg("gp.populaton_size=3")(), E.ConfigError),
    ("unknown group", lambda t, r, w: _cfg("gpp.generations=3")(), E.ConfigError),
    ("wrong type", lambda t, r, w: _cfg("gp.population_size=abc")(), E.ConfigError),
    ("zero size", lambda t, r, w: _cfg("gp.population_size=0")(), E.ConfigError),
    ("negative steps", lambda t, r, w: _cfg("fitness.steps=-5")(), E.ConfigError),
    ("zero lr", lambda t, r, w: _cfg("training.lr=0")(), E.ConfigError),
    ("momentum 1.5", lambda t, r, w: _cfg("training.momentum=1.5")(), E.ConfigError),
    ("negative k", lambda t, r, w: _cfg("selection.k=-1")(), E.ConfigError),
    ("prune at 1", lambda t, r, w: _cfg("fitness.prune_at=1")(), E.ConfigError),
    ("prune factor", lambda t, r, w: _cfg("fitness.prune_factor=0.5")(), E.ConfigError),
    ("not a mapping", lambda t, r, w: _cfg("gp=3")(), E.ConfigError),
    ("empty csv", lambda t, r, w: evomal.get_task(f"csv:{_csv(t / 'e.csv', '')}", target="y"),
     E.DataError),
    ("nan feature", lambda t, r, w: evomal.get_task(
        f"csv:{_rows(t / 'n.csv', 'a,y', '1,0', 'nan,1', '2,0')}", target="y"), E.DataError),
    ("missing column", lambda t, r, w: evomal.get_task(
        f"csv:{_rows(t / 'm.csv', 'a,y', '1,0', '2,1')}", target="label"), E.DataError),
    ("ragged csv", lambda t, r, w: evomal.get_task(
        f"csv:{_rows(t / 'r.csv', 'a,y', '1,0', '2')}", target="y"), E.DataError),
    ("no target", lambda t, r, w: evomal.get_task(f"csv:{_rows(t / 'n2.csv', 'a,y', '1,0')}"),
     E.DataError),
    ("missing csv", lambda t, r, w: evomal.get_task(f"csv:{t / 'none.csv'}", target="y"),
     E.DataMissingError),
    ("labels out of range", lambda t, r, w: evomal.get_task(f"npz:{_labels_out_of_range(t)}"),
     E.DataError),
    ("mismatched shapes", lambda t, r, w: evomal.get_task(f"npz:{_mismatched(t)}"), E.DataError),
    ("empty dataset", lambda t, r, w: evomal.get_task(f"npz:{_empty_npz(t)}"), E.DataError),
    ("truncated idx", lambda t, r, w: evomal.get_task(f"idx:{_idx(t / 'idx')}"), E.DataError),
    ("missing idx", lambda t, r, w: evomal.get_task(f"idx:{t / 'none'}"), E.DataMissingError),
    ("corrupt cifar", lambda t, r, w: evomal.get_task("cifar10", data_dir=_cifar(t / "c")),
     E.DataError),
    ("missing cifar", lambda t, r, w: evomal.get_task("cifar10", data_dir=t), E.DataMissingError),
    ("truncated svhn", lambda t, r, w: evomal.get_task("svhn", data_dir=_svhn(t / "s")),
     E.DataError),
    ("truncated loss", lambda t, r, w: evomal.load_loss(
        _csv(t / "t.json", '{"format": "evomal-loss')), E.LossFileError),
    ("unknown primitive", lambda t, r, w: evomal.load_loss(
        _loss(t / "p.json", expression="mul(y, cube(fx))")), E.LossFileError),
    ("wrong arity", lambda t, r, w: evomal.load_loss(_loss(t / "a.json", expression="log(y, fx)")),
     E.LossFileError),
    ("wrong phi length", lambda t, r, w: evomal.load_loss(_loss(t / "f.json", phi=[1.0, 2.0])),
     E.LossFileError),
    ("huge tree", lambda t, r, w: evomal.load_loss(
        _loss(t / "h.json", expression=_huge_tree(), phi=[1.0] * 600)), E.LossFileError),
    ("missing loss file", lambda t, r, w: evomal.load_loss(t / "none.json"), E.LossFileError),
    ("incompatible version", lambda t, r, w: evomal.resume(_old_version(r, t)),
     E.RunDirectoryError),
    ("resume a non-run", lambda t, r, w: evomal.resume(t), E.RunDirectoryError),
    ("out is a file", lambda t, r, w: _search(w, out=_csv(t / "file.txt", "x")),
     E.RunDirectoryError),
    ("out holds a run", lambda t, r, w: _search(w, out=r), E.RunDirectoryError),
    ("model import fails", lambda t, r, w: _search(w, "no_such_pkg:build"), E.ModelError),
    ("model output shape", lambda t, r, w: _search(w, _wrong_outputs), E.ModelError),
    ("bad seeds", lambda t, r, w: parse_seeds("a-b"), E.ConfigError),
    ("unknown method in experiment", lambda t, r, w: run_experiment(
        ExperimentSpec(methods=("baseline", "nosuch"), task="wine", model="linear", seeds=(0,),
                       preset="quick"), t / "exp"),
     E.UnknownNameError),
    ("bad kind", lambda t, r, w: evomal.get_task("wine", kind="ranking"), E.ConfigError),
    ("noise rate of 1", lambda t, r, w: w.with_label_noise(1.0), E.ConfigError),
    ("unknown noise kind", lambda t, r, w: w.with_label_noise(0.2, "flip"), E.ConfigError),
    ("imbalance below 1", lambda t, r, w: w.with_imbalance(0.1), E.ConfigError),
    ("noise on regression", lambda t, r, w: evomal.get_task("diabetes").with_label_noise(0.2),
     E.DataError),
    ("balanced error on regression", lambda t, r, w: evomal.get_task("diabetes").with_metric(
        "balanced_error"), E.DataError),
    ("zoo parameter out of range", lambda t, r, w: ZooLoss("gce", [1.5]), E.LossFileError),
    ("unknown zoo loss", lambda t, r, w: load_any_loss("foo:1"), E.LossFileError),
    ("zoo loss of the other kind", lambda t, r, w: meta_test(
        ZooLoss("huber", [1.0]), w, "linear", _cfg()(), seed=0), E.LossFileError),
    ("unknown zoo family", lambda t, r, w: _search(w, "linear", "method=zoo",
                                                   "zoo.families=[ce, nope]"), E.ConfigError),
    ("online batch", lambda t, r, w: _cfg("online.batch=previous")(), E.ConfigError),
    ("unknown baselines", lambda t, r, w: _cfg("selection.baselines=all")(), E.ConfigError),
]
# fmt: on


def test_train_takes_only_data_settings_in_set():
    result = runner.invoke(app, ["train", *W, "--set", "gp.generations=2"])
    assert result.exit_code == 2
    assert "data.*" in result.output and len(result.output.strip().splitlines()) == 1


def _wrong_outputs(input_shape, n_outputs, seed):
    import torch

    return torch.nn.Linear(int(np.prod(input_shape)), n_outputs + 1)


@pytest.mark.parametrize(("name", "call", "error"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_raises_a_typed_error(finished_run, wine, tmp_path, name, call, error):
    before = _snapshot(finished_run)
    with pytest.raises(error) as caught:
        call(tmp_path, finished_run, wine)
    assert isinstance(caught.value, E.EvomalError)
    assert "\n" not in str(caught.value).strip() or name in ("unknown primitive", "wrong arity")
    assert _snapshot(finished_run) == before


def test_every_cli_case_has_an_api_case():
    assert {c[0] for c in CASES} <= {c[0] for c in API_CASES}
