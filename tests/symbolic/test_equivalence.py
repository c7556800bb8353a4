"""Equivalence keys merge rewritings of the same function and split different functions."""

import numpy as np
import pytest

from evomal.symbolic import equivalence_key, gen_half_and_half, parse


def key(text, domain="any"):
    return equivalence_key(parse(text), domain)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("add(fx, y)", "add(y, fx)"),  # commutativity
        ("mul(y, log(fx))", "mul(log(fx), y)"),
        ("max(fx, y)", "max(y, fx)"),
        ("add(sub(fx, fx), square(y))", "square(y)"),  # x - x
        ("mul(fx, 1)", "fx"),  # x * 1
        ("mul(-1, mul(-1, fx))", "fx"),  # double negation
        ("sub(y, sub(y, fx))", "fx"),
        ("add(fx, fx)", "mul(fx, add(1, 1))"),  # the same subtree written twice
        ("min(log(fx), log(fx))", "log(fx)"),
        ("mul(-1, mul(y, log(fx)))", "mul(y, mul(-1, log(fx)))"),
        ("add(add(fx, y), 1)", "add(fx, add(y, 1))"),  # associativity
    ],
)
def test_equivalent_rewritings_share_a_key(a, b):
    assert key(a) == key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("add(fx, y)", "sub(fx, y)"),
        ("fx", "y"),
        ("mul(-1, mul(y, log(fx)))", "square(sub(fx, y))"),
        ("sqrt(square(fx))", "abs(fx)"),  # differ by eps
        ("add(fx, y)", "add(fx, add(y, 1))"),  # differ by a constant: same gradient, other value
        ("div(fx, y)", "div(y, fx)"),
    ],
)
def test_different_functions_get_different_keys(a, b):
    assert key(a) != key(b)


def test_domain_matters_for_binary_labels():
    # y * y == y only when y is 0 or 1
    assert key("mul(y, y)", "classification") == key("y", "classification")
    assert key("mul(y, y)", "regression") != key("y", "regression")
    with pytest.raises(ValueError, match="domain"):
        key("y", "images")


def test_keys_are_deterministic_and_mostly_distinct():
    rng = np.random.default_rng(0)
    trees = [gen_half_and_half(rng, 2, 4) for _ in range(200)]
    first = [equivalence_key(t) for t in trees]
    assert first == [equivalence_key(t) for t in trees]
    # Random trees are often equivalent (e.g. constant trees), but keys must not collapse.
    assert len(set(first)) > 100
    assert len({str(t) for t in trees}) >= len(set(first))
