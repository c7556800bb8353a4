"""Random generation: shapes, height ranges, determinism, no global RNG."""

import random

import numpy as np
import pytest
import torch

from evomal.symbolic import PrimitiveSet, gen_full, gen_grow, gen_half_and_half


def _leaf_depths(tree):
    return {tree.depth(i) for i in tree.terminal_indices()}


def test_full_trees_have_all_leaves_at_their_height():
    rng = np.random.default_rng(0)
    heights = set()
    for _ in range(200):
        tree = gen_full(rng, 2, 4)
        assert _leaf_depths(tree) == {tree.height}
        heights.add(tree.height)
    assert heights == {2, 3, 4}


def test_grow_trees_respect_height_range():
    rng = np.random.default_rng(1)
    heights = set()
    for _ in range(300):
        tree = gen_grow(rng, 2, 4)
        assert tree.height <= 4
        heights.add(tree.height)
        # below min_height every branch continues, so every leaf is at depth >= 2
        assert min(_leaf_depths(tree)) >= 2 or tree.height < 2
    assert heights <= {2, 3, 4} and len(heights) == 3


def test_half_and_half_mixes_both_shapes():
    rng = np.random.default_rng(2)
    trees = [gen_half_and_half(rng, 2, 4) for _ in range(300)]
    full = sum(len(_leaf_depths(t)) == 1 for t in trees)
    assert 0.3 * len(trees) < full < 0.95 * len(trees)


def test_same_seed_same_trees_and_no_global_state():
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    a = [str(gen_half_and_half(np.random.default_rng(7), 2, 4)) for _ in range(5)]
    b = [str(gen_half_and_half(np.random.default_rng(7), 2, 4)) for _ in range(5)]
    assert a == b
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


def test_restricted_primitive_set():
    pset = PrimitiveSet(functions=("add", "mul"), terminals=("y", "fx"))
    rng = np.random.default_rng(3)
    for _ in range(50):
        assert set(gen_full(rng, 1, 3, pset).nodes) <= {"add", "mul", "y", "fx"}


def test_bad_heights():
    with pytest.raises(ValueError, match="min_height"):
        gen_full(np.random.default_rng(0), 3, 2)
