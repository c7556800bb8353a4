"""Known losses as generation-0 trees (``gp.seed_losses``)."""

import warnings

import pytest

from evomal.config import build_config
from evomal.errors import ConfigError
from evomal.gp.seeds import SEED_TREES, seed_expressions
from evomal.losses.identity import known_equal
from evomal.losses.learned import LearnedLoss
from evomal.losses.zoo import ZooLoss
from evomal.symbolic.primitives import PRIMITIVES

ALL = tuple(PRIMITIVES)
ZOO_NAME = {"ce": ("ce", None), "mae": ("mae", None), "brier": ("brier", None),
            "gce": ("gce", [0.5]), "mse": ("mse", None), "l1": ("l1", None)}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k, trees in SEED_TREES.items() for n in trees]
)
def test_each_seed_tree_is_its_zoo_member_up_to_a_positive_scale(kind, name):
    """Oracle: the gradient direction of the tree equals the zoo module's, on the probe
    identity uses, and differs from every other seed's."""
    tree = LearnedLoss.from_string(SEED_TREES[kind][name], task=kind)
    family, params = ZOO_NAME[name]
    n_outputs = 10 if kind == "classification" else 1
    zoo = ZooLoss(family, params)
    if kind == "classification":
        zoo = zoo.bound(n_outputs)
    assert known_equal(tree, {name: zoo}, kind, n_outputs) == name
    others = {other: ZooLoss(*ZOO_NAME[other]) for other in SEED_TREES[kind] if other != name}
    if kind == "classification":
        others = {k: v.bound(n_outputs) for k, v in others.items()}
    assert known_equal(tree, others, kind, n_outputs) is None


def test_auto_is_the_task_loss_against_the_task_and_every_tree_against_the_zoo():
    assert seed_expressions("auto", "classification", "task", ALL) == [
        SEED_TREES["classification"]["ce"]
    ]
    assert seed_expressions(("auto",), "classification", "zoo", ALL) == list(
        SEED_TREES["classification"].values()
    )
    assert seed_expressions(("auto",), "regression", "zoo", ALL) == list(
        SEED_TREES["regression"].values()
    )
    assert seed_expressions(("none",), "classification", "zoo", ALL) == []


def test_named_seeds_keep_their_order_and_skip_the_other_kind():
    got = seed_expressions(("gce", "task", "mse", "gce"), "classification", "task", ALL)
    assert got == [SEED_TREES["classification"]["gce"], SEED_TREES["classification"]["ce"]]


def test_a_seed_needing_a_left_out_primitive():
    functions = [f for f in ALL if f != "sqrt"]
    with pytest.raises(ConfigError, match=r"gce .* needs sqrt"):
        seed_expressions(("gce",), "classification", "task", functions)
    auto = seed_expressions("auto", "classification", "zoo", functions)
    assert SEED_TREES["classification"]["gce"] not in auto and len(auto) == 3


def test_unknown_seed_names_are_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"unknown loss 'focal'.*brier, ce, gce"):
        build_config(None, ["gp.seed_losses=[ce,focal]"])
    assert build_config(None, ["gp.seed_losses=[ce,mae]"]).gp.seed_losses == ("ce", "mae")
    assert build_config(None, ["gp.seed_losses=none"]).gp.seed_losses == ("none",)


@pytest.mark.parametrize(("old", "new"), [(True, ("task",)), (False, ("none",))])
def test_the_deprecated_seed_task_loss_maps_onto_seed_losses(old, new):
    with pytest.warns(DeprecationWarning, match="gp.seed_losses"):
        config = build_config(None, [f"gp.seed_task_loss={old}"])
    assert config.gp.seed_losses == new and config.gp.seed_task_loss is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a saved config loads again without a warning
        from evomal.config import SearchConfig, from_dict, to_dict

        assert from_dict(SearchConfig, to_dict(config)).gp.seed_losses == new


def test_the_config_knows_exactly_the_seed_names():
    from evomal.config import SEED_LOSS_NAMES

    trees = {n for kind in SEED_TREES.values() for n in kind}
    assert set(SEED_LOSS_NAMES) == {"task", *trees}
