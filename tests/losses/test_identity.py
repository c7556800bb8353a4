"""Which returned losses are learned: equal up to a positive scale to a known loss, or not."""

import pytest

from evomal.losses import LearnedLoss
from evomal.losses.identity import known_equal, known_losses
from evomal.losses.zoo import ZooLoss

KNOWN = known_losses("classification", 10)


@pytest.mark.parametrize(
    ("expression", "phi", "name"),
    [
        ("mul(-1, mul(y, log(fx)))", [2.5, 1.0, 1.0, 1.0, 1.0], "ce"),  # scaled cross-entropy
        ("abs(sub(y, fx))", None, "mae"),
        ("abs(max(fx, y))", None, "mae"),  # MAE/2 plus a constant for one-hot targets
        ("mul(y, sub(1, sqrt(fx)))", [3.0, 1.0, 1.0, 1.0, 1.0], "gce(q=0.5)"),
        ("square(sub(fx, y))", None, "brier"),
    ],
)
def test_trees_that_are_known_losses_are_named(expression, phi, name):
    tree = LearnedLoss.from_string(expression, phi=phi)
    assert known_equal(tree, KNOWN, "classification", 10) == name
    assert tree.phi.dtype == LearnedLoss.from_string(expression).phi.dtype  # left untouched


@pytest.mark.parametrize(
    "expression", ["mul(-1, mul(y, log(add(fx, square(fx)))))", "mul(sub(fx, y), tanh(fx))"]
)
def test_a_new_tree_is_learned(expression):
    assert known_equal(LearnedLoss.from_string(expression), KNOWN, "classification", 10) is None


def test_zoo_members_are_told_apart():
    assert known_equal(ZooLoss("focal", [1.0]), KNOWN, "classification", 10) == "focal(gamma=1)"
    assert known_equal(ZooLoss("focal", [1.5]), KNOWN, "classification", 10) is None
    assert "logit_adjust(tau=1)" in known_losses("classification", 10, list(range(1, 11)))
    assert "huber(delta=1)" in known_losses("regression", 1)


def test_selection_marks_learned_finalists_that_are_known_losses():
    from types import SimpleNamespace

    from evomal.methods.finalists import BASELINE, Finalist
    from evomal.methods.selection import identify
    from tests.toy import linear_classification

    run = SimpleNamespace(task=linear_classification(seed=0, n=120, features=4, classes=3,
                                                     n_test=20))  # fmt: skip
    scaled_ce = LearnedLoss.from_string("mul(-1, mul(y, log(fx)))", phi=[3, 1, 1, 1, 1])
    new = LearnedLoss.from_string("mul(sub(fx, y), tanh(fx))")
    finalists = [
        Finalist("ce x3", scaled_ce.to_dict(), 0.1),
        Finalist("new", new.to_dict(), 0.2),
        Finalist("gce", ZooLoss("gce", [0.7]).to_dict(), None, role=BASELINE),
    ]
    identify(run, finalists)
    assert [f.equals for f in finalists] == ["ce", None, None]
    assert [f.is_new for f in finalists] == [False, True, False]
    assert finalists[0].describe() == "ce x3 (= ce up to scale)"
    assert Finalist.from_record(finalists[0].record(1)).equals == "ce"


def test_a_known_tree_with_nudged_weights_is_still_that_loss():
    """The local search moves phi off 1: as found, regression's MSE tree with weights
    1.03 and 0.97 inside is no longer MSE up to scale (its minimum moves), but the tree is."""
    from evomal.losses.identity import known_equal_document

    known = known_losses("regression", 1)
    nudged = LearnedLoss("square(sub(fx, y))", [1.0, 1.03, 0.97], "regression")
    assert known_equal(nudged, known, "regression", 1) is None
    assert known_equal_document(nudged.to_dict(), known, "regression", 1) == "mse"
    new = LearnedLoss("add(abs(sub(fx, y)), square(sub(fx, y)))", None, "regression")
    assert known_equal_document(new.to_dict(), known, "regression", 1) is None
