"""Fuzzing: the parser and the loss-file loader raise only their documented errors; random trees
compile and never produce NaN; loss files crafted to run code run nothing and write nothing."""

import contextlib
import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from evomal.losses import LossFileError, load_loss, loss_from_dict
from evomal.symbolic import PRIMITIVES, ParseError, compile_elementwise, gen_half_and_half, parse

TOKENS = [*PRIMITIVES, "y", "fx", "1", "-1", "+1", "(", ")", ",", " ", "", "__import__", "'os'"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)))
def test_the_parser_raises_only_parse_errors(text):
    try:
        tree = parse(text)
    except ParseError:
        return
    assert str(parse(str(tree))) == str(tree)  # what parses round-trips


def _document(fields):
    """A valid loss document (cross-entropy as written by evomal) with fuzzed fields on top."""
    from evomal.losses import LearnedLoss

    return {**LearnedLoss.cross_entropy().to_dict(), **fields}


@settings(max_examples=400)
@given(
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(
                [
                    "format",
                    "version",
                    "kind",
                    "expression",
                    "phi",
                    "task",
                    "scale",
                    "output_activation",
                    "eps",
                    "params",
                    "order",
                    "hidden",
                    "metadata",
                    "weights",
                    "extra",
                ]
            ),
            json_values,
            max_size=5,
        ).map(_document),
    )
)
def test_the_loader_raises_only_loss_file_errors(doc):
    try:
        loss = loss_from_dict(doc, "fuzzed document")
    except LossFileError:
        return
    assert isinstance(loss, nn.Module)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_any_bytes_in_a_loss_file_give_a_loss_file_error_or_a_loss(tmp_path, content):
    path = tmp_path / "fuzzed.json"
    path.write_bytes(content)
    with contextlib.suppress(LossFileError):
        load_loss(path)


def test_ten_thousand_random_trees_compile_and_never_give_nan_on_classification_inputs():
    rng = np.random.default_rng(2026)
    y = torch.tensor([0.0, 1.0]).repeat_interleave(64)
    fx = torch.cat([torch.logspace(-7, 0, 64).clamp(max=1 - 1e-7)] * 2)
    bad = []
    for i in range(10_000):
        tree = gen_half_and_half(rng, 2, 6)
        phi = torch.normal(1.0, 1e-3, (tree.n_edges,), generator=torch.Generator().manual_seed(i))
        values = compile_elementwise(tree)(y, fx, phi)
        if torch.isnan(values).any():
            bad.append(str(tree))
    assert bad == []


# -- loss files crafted to execute code --------------------------------------------------------

SENTINEL_NAME = "pwned"


def _payloads(sentinel):
    code = f"__import__('pathlib').Path({str(sentinel)!r}).write_text('x')"
    return [code, f"eval({code!r})", f"exec({code!r})", "{{7*7}}", "${7*7}", "`touch pwned`",
            "../../../../etc/passwd", "/dev/null", "..\\..\\windows", "pwned\x00.json"]  # fmt: skip


class _Exploit:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (str(self.sentinel), "w"))


@pytest.mark.parametrize(
    "field", ["format", "kind", "expression", "task", "output_activation", "metadata", "name"]
)
def test_code_in_any_string_field_is_never_run(tmp_path, field):
    sentinel = tmp_path / SENTINEL_NAME
    for payload in _payloads(sentinel):
        doc = _document({})
        doc[field] = {"note": payload, payload: payload} if field == "metadata" else payload
        path = tmp_path / "crafted.json"
        path.write_text(json.dumps(doc))
        before = sorted(p.name for p in tmp_path.iterdir())
        with contextlib.suppress(LossFileError):
            load_loss(path)
        assert not sentinel.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_pickle_payload_is_not_unpickled(tmp_path):
    sentinel = tmp_path / SENTINEL_NAME
    for name in ("loss.json", "loss.pkl", "loss.pt"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(_Exploit(sentinel)))
        with pytest.raises(LossFileError):
            load_loss(path)
        assert not sentinel.exists()


def test_a_loss_loaded_from_a_crafted_file_computes_only_its_tree(tmp_path):
    """A metadata string that looks like code is kept as plain text, never evaluated."""
    doc = _document({"metadata": {"note": "__import__('os').system('echo hi')"}})
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(doc))
    loss = load_loss(path)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    want = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(loss(logits, labels), want)
