"""The GP loop with a cheap deterministic evaluator: invariants, determinism, resume."""

import itertools
import json

from evomal.config import GPConfig
from evomal.events import EVALUATED, CandidateEvent, GenerationEvent, Outcome, Scored
from evomal.gp.loop import GeneticProgramming, GPState
from evomal.symbolic import parse


def size_fitness(trees):
    """Smaller trees are fitter; a tree using sign is 'failed' (fitness None)."""
    return [
        Outcome(
            expression=str(t),
            key=str(t),
            phi=[1.0] * t.n_edges,
            fitness=None if "sign" in t.nodes else t.size / 100,
            verdict=EVALUATED,
        )
        for t in trees
    ]


def record(outcome, generation):
    """A stand-in for a method's record: the expression is the whole 'loss file'."""
    return Scored(
        document={"expression": outcome.expression},
        fitness=outcome.fitness,
        generation=generation,
        label=outcome.expression,
        key=outcome.key,
    )


CONFIG = GPConfig(population_size=10, generations=6, max_height=6)


def run(seed=0, config=CONFIG, listener=None, checkpoint=None):
    gp = GeneticProgramming(config, size_fitness, record, listener, checkpoint)
    return gp.run(gp.initial_state(seed))


def test_invariants_hold_every_generation():
    seen, states = [], []
    state = run(listener=seen.append, checkpoint=lambda s: states.append(s.as_dict()))
    generations = [e for e in seen if isinstance(e, GenerationEvent)]
    assert len(generations) == CONFIG.generations == len(states)
    assert state.done and state.generation == CONFIG.generations
    bests = [g.summary.population_best for g in generations]
    assert all(b2 <= b1 for b1, b2 in itertools.pairwise(bests))  # elitism
    for saved in states:
        assert len(saved["population"]) == CONFIG.population_size
        for ind in saved["population"]:
            tree = parse(ind["expression"])
            assert tree.variables() == {"y", "fx"}
            assert tree.height <= CONFIG.max_height
    assert state.best.fitness == min(b for b in bests if b is not None)
    assert [g.best for g in generations][-1] == state.best


def test_only_new_individuals_are_scored():
    events = []
    run(listener=events.append)
    per_gen = {}
    for e in events:
        if isinstance(e, CandidateEvent):
            per_gen[e.generation] = per_gen.get(e.generation, 0) + 1
    assert per_gen[0] == CONFIG.population_size
    # after generation 0, elites and unchanged copies keep their fitness
    assert all(per_gen.get(g, 0) < CONFIG.population_size for g in range(1, CONFIG.generations))


def test_same_seed_same_run_different_seed_different():
    a, b, c = run(0), run(0), run(1)
    assert a.history == b.history and a.population == b.population
    assert a.population != c.population


def test_resume_from_a_json_checkpoint_reaches_the_same_result():
    gp = GeneticProgramming(CONFIG, size_fitness, record)
    uninterrupted = gp.run(gp.initial_state(3))
    partial = gp.run(gp.initial_state(3), max_generations=2)
    assert partial.generation == 2 and not partial.done
    restored = GPState.from_dict(json.loads(json.dumps(partial.as_dict())))
    resumed = gp.run(restored)
    assert resumed.as_dict() == uninterrupted.as_dict()


def test_elitism_keeps_at_least_one():
    assert GPConfig(population_size=10, elitism=0.05).n_elites == 1
    assert GPConfig(population_size=25, elitism=0.05).n_elites == 1
    assert GPConfig(population_size=40, elitism=0.05).n_elites == 2


def test_seeded_individuals_replace_the_first_random_ones_only():
    gp = GeneticProgramming(CONFIG, size_fitness, record)
    plain = gp.initial_state(4)
    seeded = gp.initial_state(4, ["mul(-1, mul(y, log(fx)))"])
    assert seeded.population[0].expression == "mul(-1, mul(y, log(fx)))"
    assert seeded.population[1:] == plain.population[1:]
    assert seeded.rng_state == plain.rng_state


def test_a_seeded_individual_bounds_the_best_fitness_through_elitism():
    """With the seeded tree scored in generation 0, elitism keeps something at least as fit."""
    seeded_tree = "sub(y, fx)"  # size 3: fitter than any random tree of height >= 2
    gp = GeneticProgramming(CONFIG, size_fitness, record)
    state = gp.run(gp.initial_state(5, [seeded_tree]))
    first = next(h for h in state.history if h.generation == 0)
    assert first.population_best == 0.03
    assert all(h.population_best <= 0.03 for h in state.history)
    assert state.best.fitness <= 0.03


def test_generation_summary_counts_verdicts_and_round_trips():
    """One summary type for every method: counts, finite-only statistics, extras kept."""
    from evomal.events import GenerationSummary

    summary = GenerationSummary.of(
        3, ["evaluated", "cached", "evaluated", "failed"], [0.5, None, 0.25, float("nan")],
        0.2, "mul(y, fx)", sigma=0.7,
    )  # fmt: skip
    assert summary.scored == 4
    assert summary.verdicts == {"evaluated": 2, "cached": 1, "failed": 1}
    assert (summary.population_best, summary.population_mean) == (0.25, 0.375)
    assert summary.as_dict()["sigma"] == 0.7
    assert GenerationSummary.from_dict(summary.as_dict()) == summary


def _screened(trees):
    """Trees with 'sign' are rejected (no fitness); the rest pass, smaller ones fitter."""
    from evomal.events import REJECTED

    return [
        Outcome(
            expression=str(t), key=str(t), phi=[1.0] * t.n_edges, fitness=None, verdict=REJECTED
        )
        if "sign" in t.nodes
        else Outcome(
            expression=str(t),
            key=str(t),
            phi=[1.0] * t.n_edges,
            fitness=t.size / 100,
            verdict=EVALUATED,
        )
        for t in trees
    ]


def test_keep_minimum_breeds_only_from_parents_that_passed():
    """With gp.keep_minimum = 1 every new tree of generation 1 is add, max or tanh of trees
    that passed in generation 0 (never of a rejected one)."""
    config = GPConfig(population_size=12, generations=2, max_height=10, keep_minimum=1.0,
                      mutation_prob=0.0, crossover_prob=0.0)  # fmt: skip
    events = []
    GeneticProgramming(config, _screened, record, events.append).run(
        GeneticProgramming(config, _screened, record).initial_state(3)
    )
    cands = [e for e in events if isinstance(e, CandidateEvent)]
    passed = {e.outcome.expression for e in cands if e.generation == 0 and e.outcome.fitness}
    assert passed and any(e.outcome.fitness is None for e in cands if e.generation == 0)
    new = [parse(e.outcome.expression) for e in cands if e.generation == 1]
    assert new
    for tree in new:
        assert tree.nodes[0] in ("add", "max", "tanh")
        args = [str(tree.subtree(i)) for i in tree.children(0)]
        assert args[0] in passed and (tree.nodes[0] == "tanh" or args[1] in passed)
