"""GP operators: selection, crossover, mutation, repair."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.gp.operators import cx_one_point, mut_uniform, repair, sel_best, sel_tournament
from evomal.symbolic import gen_grow, gen_half_and_half, parse


def test_tournament_picks_the_best_contestant():
    fitnesses = [0.5, 0.1, None, 0.9, 0.3]
    rng = np.random.default_rng(0)
    # With a tournament as large as the draw, replaying the draws gives the same winners.
    picks = sel_tournament(rng, fitnesses, 200, 3)
    replay = np.random.default_rng(0)
    for pick in picks:
        contestants = replay.integers(0, 5, size=3).tolist()
        best = min(
            contestants, key=lambda i: float("inf") if fitnesses[i] is None else fitnesses[i]
        )
        assert pick == best
    assert picks.count(1) > picks.count(3)  # selection pressure towards low (good) fitness
    assert 2 not in picks or all(fitnesses[i] is None for i in [2])


def test_sel_best_orders_by_fitness_with_missing_last():
    assert sel_best([0.5, None, 0.1, 0.1], 3) == [2, 3, 0]


@given(st.integers(0, 2**32 - 1))
def test_one_point_crossover_swaps_subtrees(seed):
    rng = np.random.default_rng(seed)
    a, b = gen_half_and_half(rng, 1, 4), gen_half_and_half(rng, 1, 4)
    replay = np.random.default_rng(seed)
    gen_half_and_half(replay, 1, 4), gen_half_and_half(replay, 1, 4)
    c, d = cx_one_point(rng, a, b)
    assert c.size + d.size == a.size + b.size
    if a.size > 1 and b.size > 1:
        i, j = int(replay.integers(1, a.size)), int(replay.integers(1, b.size))
        assert c == a.replace(i, b.subtree(j))
        assert d == b.replace(j, a.subtree(i))
        assert c.nodes[0] == a.nodes[0] and d.nodes[0] == b.nodes[0]  # roots are kept
    else:
        assert (c, d) == (a, b)


@given(st.integers(0, 2**32 - 1))
def test_uniform_mutation_replaces_one_subtree(seed):
    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 2, 4)
    state = rng.bit_generator.state
    mutant = mut_uniform(rng, tree, 0, 2)
    replay = np.random.default_rng()
    replay.bit_generator.state = state
    index = int(replay.integers(0, tree.size))
    new = gen_grow(replay, 0, 2)
    assert mutant == tree.replace(index, new)
    assert new.height <= 2


@given(st.integers(0, 2**32 - 1))
def test_repair_makes_both_arguments_present(seed):
    rng = np.random.default_rng(seed)
    tree = gen_half_and_half(rng, 0, 4)
    fixed = repair(rng, tree)
    assert fixed.variables() == {"y", "fx"}
    if tree.variables() == {"y", "fx"}:
        assert fixed == tree
    else:
        # exactly one terminal became a binary node over (y, fx): size grows by 2
        assert fixed.size == tree.size + 2
        assert fixed.height <= tree.height + 1


def test_repair_example_from_fig_2():
    rng = np.random.default_rng(1)
    fixed = repair(rng, parse("add(1, square(-1))"))
    assert fixed.variables() == {"y", "fx"}
    assert any(
        str(fixed.subtree(i))
        in {f"{op}(y, fx)" for op in ("add", "sub", "mul", "div", "min", "max")}
        or str(fixed.subtree(i))
        in {f"{op}(fx, y)" for op in ("add", "sub", "mul", "div", "min", "max")}
        for i in range(fixed.size)
    )


FITTING = ["square(sub(fx, y))", "abs(sub(y, fx))", "tanh(square(sub(y, fx)))",
           "add(abs(sub(fx, y)), square(sub(fx, y)))", "max(-1, abs(sub(fx, y)))"]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 4), st.floats(-3, 3))
def test_combinations_keep_the_minimum_at_the_target(seed, rounds, target):
    """Oracle: evaluated on a grid of predictions, every combination of losses that are least
    at fx = y is least at fx = y too, however many times the operator is applied."""
    import torch

    from evomal.gp.operators import combine_keeping_minimum
    from evomal.symbolic import compile_tree

    rng = np.random.default_rng(seed)
    pool = [parse(e) for e in FITTING]
    for _ in range(rounds):
        a, b = (pool[int(i)] for i in rng.integers(len(pool), size=2))
        pool.append(combine_keeping_minimum(rng, a, b))
    tree = pool[-1]
    assert tree.nodes[0] in ("add", "max", "tanh")
    loss = compile_tree(tree, "regression")
    grid = torch.linspace(target - 4, target + 4, 801, dtype=torch.float64)
    grid = torch.cat([grid, torch.tensor([target], dtype=torch.float64)])
    values = loss.pointwise(
        grid.view(-1, 1), torch.full((len(grid), 1), target, dtype=torch.float64),
        torch.ones(tree.n_edges, dtype=torch.float64),
    ).view(-1)  # fmt: skip
    assert values[-1] <= values.min() + 1e-9, str(tree)


def test_without_the_primitives_there_is_no_combination():
    from evomal.gp.operators import combine_keeping_minimum
    from evomal.symbolic.primitives import PrimitiveSet

    pset = PrimitiveSet(("sub", "mul", "square"))
    a = parse("square(sub(fx, y))")
    assert combine_keeping_minimum(np.random.default_rng(0), a, a, pset) is None
    only_max = PrimitiveSet(("sub", "max", "square"))
    assert str(combine_keeping_minimum(np.random.default_rng(0), a, a, only_max)).startswith("max(")
