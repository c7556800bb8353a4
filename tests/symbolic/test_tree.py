"""Prefix trees: structure, text round-trip, parse errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evomal.symbolic import ParseError, Tree, gen_half_and_half, parse

CE = "mul(-1, mul(y, log(fx)))"


def test_parse_and_str_round_trip_example():
    tree = parse(CE)
    assert tree.nodes == ("mul", "-1", "mul", "y", "log", "fx")
    assert str(tree) == CE
    assert parse(" mul( -1 ,mul(y,log( fx ) ) ) ") == tree
    assert parse("add(+1, y)") == parse("add(1, y)")


@given(st.integers(0, 2**32 - 1), st.integers(0, 8))
def test_parse_str_round_trip_random_trees(seed, max_height):
    tree = gen_half_and_half(np.random.default_rng(seed), 0, max_height)
    assert parse(str(tree)) == tree
    assert Tree(tree.nodes) == tree and hash(Tree(tree.nodes)) == hash(tree)


def test_size_height_spans():
    tree = parse(CE)
    assert tree.size == 6 and tree.height == 3 and tree.n_edges == 5
    assert parse("fx").height == 0 and parse("fx").n_edges == 0
    assert tree.span(2) == slice(2, 6)
    assert str(tree.subtree(2)) == "mul(y, log(fx))"
    assert tree.subtree_height(2) == 2
    assert tree.children(0) == (1, 2) and tree.children(4) == (5,)
    assert tree.parents() == (-1, 0, 0, 2, 2, 4)
    assert [tree.depth(i) for i in range(6)] == [0, 1, 1, 2, 2, 3]
    assert tree.variables() == {"y", "fx"}
    assert str(tree.replace(4, parse("square(fx)"))) == "mul(-1, mul(y, square(fx)))"


def test_tree_is_immutable():
    tree = parse(CE)
    with pytest.raises(AttributeError):
        tree.nodes = ("fx",)  # type: ignore[misc]


def test_deep_tree_has_no_recursion_limit():
    text = "sign(" * 5000 + "fx" + ")" * 5000
    tree = parse(text)
    assert tree.height == 5000 and str(tree) == text


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        ("", "empty expression", None),
        ("mul(y fx)", "expected ',' or ')'", 6),
        ("mul(y, exp(fx))", "unknown name 'exp'", 7),
        ("mul(y, fx", "unexpected end of expression inside 'mul'", 9),
        ("mul(y)", "too few arguments to 'mul'", 5),
        ("log(y, fx)", "too many arguments to 'log'", 5),
        ("add(y, 2)", "unknown constant '2'", 7),
        ("fx y", "unexpected 'y' after the end", 3),
        ("mul y", "expected '(' after 'mul'", 4),
        ("mul(y; fx)", "unexpected character ';'", 5),
        ("mul(,y)", "expected an expression, found ','", 4),
    ],
)
def test_parse_errors_say_what_and_where(text, fragment, position):
    with pytest.raises(ParseError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    if position is not None:
        assert f"at position {position}" in message
        caret_line = message.splitlines()[-1]
        assert caret_line.index("^") - 2 == position


def test_parse_rejects_non_strings():
    with pytest.raises(ParseError):
        parse(["mul"])  # type: ignore[arg-type]


def test_tree_validates_prefix_structure():
    with pytest.raises(ValueError, match="missing arguments"):
        Tree(("mul", "y"))
    with pytest.raises(ValueError, match="exactly one"):
        Tree(("y", "fx"))
    with pytest.raises(ValueError, match="unknown node name"):
        Tree(("exp", "y"))
