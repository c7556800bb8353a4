"""LearnedLoss: drop-in use, built-ins, display, and JSON save/load hardening."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from evomal import LearnedLoss, LossFileError
from evomal.symbolic import gen_half_and_half


def test_drop_in_criterion_and_phi_parameter():
    criterion = LearnedLoss.from_string("mul(-1, mul(y, log(fx)))", task="classification")
    assert isinstance(criterion.phi, torch.nn.Parameter)
    assert criterion.phi.shape == (5,)
    assert not criterion.phi.requires_grad  # frozen by default: training the model only
    assert [n for n, _ in criterion.named_parameters()] == ["phi"]
    logits, labels = torch.randn(32, 4, requires_grad=True), torch.randint(0, 4, (32,))
    loss = criterion(logits, labels)
    loss.backward()
    assert logits.grad is not None and criterion.phi.grad is None
    assert abs(loss.item() - F.cross_entropy(logits, labels).item()) < 1e-5


def test_trainable_phi_gets_gradients():
    criterion = LearnedLoss.from_string("square(sub(fx, y))", task="regression")
    criterion.phi.requires_grad_(True)
    criterion(torch.randn(8, 1), torch.randn(8)).backward()
    assert criterion.phi.grad is not None and criterion.phi.grad.abs().sum() > 0


def test_builtins_are_trees():
    ce, mse = LearnedLoss.cross_entropy(), LearnedLoss.mse()
    assert ce.expression == "mul(-1, mul(y, log(fx)))" and ce.task == "classification"
    assert mse.expression == "square(sub(fx, y))" and mse.task == "regression"
    pred, target = torch.randn(16, 1), torch.randn(16)
    assert torch.allclose(mse(pred, target), F.mse_loss(pred.squeeze(1), target))


def test_phi_shape_is_checked():
    with pytest.raises(ValueError, match=r"one weight per edge"):
        LearnedLoss.from_string("add(fx, y)", phi=[1.0, 2.0, 3.0])


def test_display():
    loss = LearnedLoss.from_string("mul(y, log(fx))", phi=[0.5, 3.0, 1.25])
    text = str(loss)
    assert "mul(y, log(fx))" in text and "0.5" in text and "1.25" in text
    assert "log" in loss.latex() and "f(x)" in loss.latex()
    plain = loss.to_sympy(weights=False)
    assert str(plain) == "y*log(Abs(fx) + 1.0e-10)"
    assert str(loss.to_sympy()) == "1.5*y*log(1.25*Abs(fx) + 1.0e-10)"


def test_save_load_round_trip(tmp_path):
    loss = LearnedLoss.from_string(
        "div(square(sub(fx, y)), tanh(fx))",
        task="regression",
        phi=np.linspace(0.5, 1.5, 6),
        output_activation="softplus",
    )
    path = tmp_path / "loss.json"
    loss.save(path, metadata={"fitness": 0.1})
    back = LearnedLoss.load(path)
    assert back.expression == loss.expression
    assert torch.equal(back.phi, loss.phi)
    assert (back.task, back.output_activation) == ("regression", "softplus")
    pred, target = torch.randn(8, 2), torch.randn(8, 2)
    assert torch.equal(back(pred, target), loss(pred, target))
    doc = json.loads(path.read_text())
    assert (
        doc["format"] == "evomal-loss" and doc["version"] == 1 and doc["metadata"]["fitness"] == 0.1
    )


@given(st.integers(0, 2**32 - 1))
def test_save_load_round_trip_random_trees(tmp_path_factory, seed):
    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 0, 6)
    loss = LearnedLoss(tree, phi=rng.normal(1.0, 0.5, tree.n_edges))
    back = LearnedLoss.from_dict(json.loads(json.dumps(loss.to_dict())))
    assert back.tree == tree and torch.equal(back.phi, loss.phi)


def _valid_doc():
    return LearnedLoss.cross_entropy().to_dict()


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("expression"), "missing field"),
        (lambda d: d.update(expression="mul(y, exp(fx))"), "invalid expression"),
        (
            lambda d: d.update(expression="__import__('os').system('echo pwned')"),
            "invalid expression",
        ),
        (lambda d: d.update(phi=[1.0, 1.0]), "expected 5"),
        (lambda d: d.update(phi=[1.0, 1.0, "x", 1.0, 1.0]), "must be a number"),
        (lambda d: d.update(phi=[1.0, 1.0, True, 1.0, 1.0]), "must be a number"),
        (lambda d: d.update(phi={"a": 1}), "must be list"),
        (lambda d: d.update(task="ranking"), "task kind"),
        (lambda d: d.update(output_activation="relu"), "output activation"),
        (lambda d: d.update(format="something-else"), "not an evomal loss file"),
        (lambda d: d.update(version=99), "unsupported format version"),
        (lambda d: d.update(kind="neural"), "loss kind"),
        (lambda d: d.update(extra="field"), "unknown field"),
        (lambda d: d.update(eps=1e-3), "eps"),
        (lambda d: d.update(version=True), "boolean"),
    ],
)
def test_tampered_documents_are_rejected(mutate, fragment):
    doc = _valid_doc()
    mutate(doc)
    with pytest.raises(ValueError, match=fragment):
        LearnedLoss.from_dict(doc)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"format": "evomal-loss", "version": 1, "kind"', "not valid JSON"),  # truncated
        (b"", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b"\x80\x04\x95 pickle bytes", "not UTF-8"),
        (b'{"phi": [NaN]}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_files_are_rejected(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(LossFileError, match=fragment) as info:
        LearnedLoss.load(path)
    assert str(path) in str(info.value)


def test_pickle_file_is_not_unpickled(tmp_path):
    """A pickle that would run code on load is rejected as not-JSON, and nothing runs."""

    class Exploit:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

    path = tmp_path / "loss.json"
    path.write_bytes(pickle.dumps(Exploit(), protocol=0))
    with pytest.raises(LossFileError):
        LearnedLoss.load(path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_file(tmp_path):
    with pytest.raises(LossFileError, match="does not exist"):
        LearnedLoss.load(tmp_path / "nope.json")


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "loss.json"
    LearnedLoss.cross_entropy().save(path)
    before = path.read_text()
    broken = LearnedLoss.cross_entropy()
    with torch.no_grad():
        broken.phi[0] = math.nan
    with pytest.raises(ValueError, match="JSON compliant"):
        broken.save(path)
    assert path.read_text() == before
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_a_scaled_loss_is_the_scale_times_the_loss_and_round_trips(tmp_path):
    import torch

    from evomal.losses import load_loss

    logits, labels = torch.randn(16, 4), torch.randint(0, 4, (16,))
    plain = LearnedLoss.cross_entropy()
    scaled = LearnedLoss("mul(-1, mul(y, log(fx)))", scale=0.37)
    assert torch.allclose(scaled(logits, labels), 0.37 * plain(logits, labels))
    scaled.save(tmp_path / "s.json")
    back = load_loss(tmp_path / "s.json")
    assert back.scale == 0.37 and back.to_dict() == scaled.to_dict()
    assert "scale" not in plain.to_dict()  # files without a scale keep the old format
    assert "0.37" in str(scaled) and "scale" in str(scaled)


@pytest.mark.parametrize("bad", [0, -1.0, "2", True, float("inf")])
def test_a_bad_scale_in_a_file_is_a_clear_error(tmp_path, bad):
    import json

    from evomal.losses import load_loss
    from evomal.losses.document import LossFileError

    doc = LearnedLoss.cross_entropy().to_dict()
    doc["scale"] = bad
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(doc) if bad != float("inf") else json.dumps(doc).replace("Infinity", "1e999")
    )
    with pytest.raises(LossFileError, match="scale"):
        load_loss(path)
