"""Candidate scoring: filters, caches, fault isolation, determinism."""

import numpy as np
import pytest
import torch

from evomal.config import build_config
from evomal.events import (
    CACHED,
    EVALUATED,
    FAILED,
    GRADIENT_EQUIVALENT,
    REJECTED,
)
from evomal.execution.base import SerialExecutor
from evomal.execution.context import ContextSpec, EvaluationContext
from evomal.gp.filters import gradient_norms, gradient_signature, rejection_score
from evomal.methods import stages
from evomal.methods.evaluator import CandidateEvaluator
from evomal.symbolic import compile_tree, parse
from tests.toy import linear_classification

CE = "mul(-1, mul(y, log(fx)))"


def _task():
    return linear_classification(seed=0, n=240, features=6, classes=3, n_test=40)


def _config(*overrides):
    return build_config(
        None,
        [
            "local_search.steps=3",
            "fitness.steps=20",
            "filters.rejection_steps=100",
            "training.lr=0.1",
            "training.batch_size=32",
            *overrides,
        ],
    )


def _evaluator(*overrides):
    config = _config(*overrides)
    executor = SerialExecutor()
    executor.start(ContextSpec((_task().without_test(),), "linear", config))
    return CandidateEvaluator(config.filters, "classification", executor), executor


def test_rejection_protocol_scores():
    ctx = EvaluationContext(ContextSpec((_task(),), "linear", _config()))
    probe = ctx.probes[0]
    good = compile_tree(CE)
    assert rejection_score(good, torch.ones(5), probe, 50, 0.1) > 0.9
    anti = compile_tree("mul(y, log(fx))")  # minimising it makes the true class less likely
    assert rejection_score(anti, torch.ones(3), probe, 50, 0.1) < 0.0
    constant = compile_tree("add(sub(fx, fx), y)")
    assert rejection_score(constant, torch.ones(4), probe, 50, 0.1) == 0.0


def test_gradient_signature_equal_for_equal_gradients():
    ctx = EvaluationContext(ContextSpec((_task(),), "linear", _config()))
    probe = ctx.probes[0]
    sig = lambda expr: gradient_signature(  # noqa: E731
        gradient_norms(compile_tree(expr), torch.ones(parse(expr).n_edges), probe), 2
    )
    assert sig(CE) == sig("add(mul(-1, mul(y, log(fx))), 1)")  # differs by a constant
    assert sig(CE) != sig("mul(-1, mul(y, log(square(fx))))")  # twice the gradient


def test_equivalence_cache_and_duplicates():
    evaluator, _ = _evaluator()
    first = evaluator.evaluate([parse(CE), parse("mul(mul(y, log(fx)), -1)")])
    assert first[0].verdict == EVALUATED
    assert first[1].verdict == CACHED and first[1].reused_from == CE
    assert first[1].fitness == first[0].fitness
    again = evaluator.evaluate([parse("mul(-1, mul(log(fx), y))")])
    assert again[0].verdict == CACHED and again[0].fitness == first[0].fitness
    assert again[0].loss_expression() == CE  # phi belongs to the source tree


def test_rejections_are_cached_too():
    evaluator, _ = _evaluator()
    (out,) = evaluator.evaluate([parse("mul(y, log(fx))")])
    assert out.verdict == REJECTED and out.fitness is None and "below threshold" in out.reason
    (again,) = evaluator.evaluate([parse("mul(log(fx), y)")])
    assert again.verdict == CACHED and again.fitness is None
    assert "rejected" in again.reason


def test_gradient_equivalence_reuses_fitness_within_and_across_batches():
    evaluator, _ = _evaluator("local_search.enabled=false")
    outs = evaluator.evaluate([parse(CE), parse("add(mul(-1, mul(y, log(fx))), 1)")])
    assert [o.verdict for o in outs] == [EVALUATED, GRADIENT_EQUIVALENT]
    assert outs[1].fitness == outs[0].fitness and outs[1].reused_from == CE
    (later,) = evaluator.evaluate([parse("add(mul(-1, mul(y, log(fx))), -1)")])
    assert later.verdict == GRADIENT_EQUIVALENT and later.fitness == outs[0].fitness


def test_filters_can_be_switched_off():
    evaluator, _ = _evaluator(
        "filters.equivalence_cache=false",
        "filters.rejection=false",
        "filters.gradient_equivalence=false",
    )
    outs = evaluator.evaluate([parse(CE), parse(CE), parse("mul(y, log(fx))")])
    assert [o.verdict for o in outs] == [EVALUATED, EVALUATED, EVALUATED]
    assert outs[0].fitness == outs[1].fitness  # same tree, same seed: same result


def test_faults_stay_inside_one_candidate(monkeypatch):
    evaluator, _ = _evaluator("filters.rejection=false")
    real = stages.train

    def flaky(model, loss, *args, **kwargs):
        if "square" in loss.expression:
            raise RuntimeError("simulated crash")
        return real(model, loss, *args, **kwargs)

    monkeypatch.setattr(stages, "train", flaky)
    outs = evaluator.evaluate([parse("square(sub(fx, y))"), parse(CE)])
    assert outs[0].verdict == FAILED and "simulated crash" in outs[0].reason
    assert outs[0].fitness is None
    assert outs[1].verdict == EVALUATED and outs[1].fitness is not None


def test_non_finite_loss_fails_cleanly():
    evaluator, _ = _evaluator()
    deep = "square(square(square(square(square(square(log(sub(fx, fx))))))))"
    (out,) = evaluator.evaluate([parse(f"add({deep}, mul(y, fx))")])
    assert out.verdict == FAILED and "non-finite" in out.reason


def test_evaluation_is_deterministic_under_the_run_seed():
    a, _ = _evaluator()
    b, _ = _evaluator()
    trees = [parse(CE), parse("square(sub(fx, y))"), parse("max(fx, y)")]
    assert [o.as_dict() | {"seconds": {}} for o in a.evaluate(trees)] == [
        o.as_dict() | {"seconds": {}} for o in b.evaluate(trees)
    ]


def test_state_round_trips():
    evaluator, executor = _evaluator()
    evaluator.evaluate([parse(CE), parse("mul(y, log(fx))")])
    clone = CandidateEvaluator(evaluator.filters, "classification", executor)
    clone.load_state_dict(evaluator.state_dict())
    assert clone.state_dict() == evaluator.state_dict()


@pytest.mark.parametrize("screening", ["before", "both"])
def test_screening_before_skips_the_local_search_of_rejected_candidates(screening):
    evaluator, _ = _evaluator(f"filters.screening={screening}", "local_search.steps=5")
    (out,) = evaluator.evaluate([parse("mul(y, log(fx))")])
    assert out.verdict == REJECTED
    assert out.seconds["local_search"] == 0.0


def test_batched_evaluation_equals_one_by_one(float64):
    """In float64 (see tests/training/test_population.py for why), batching changes nothing
    a search can see: the same verdicts, the same fitness, phi to round-off."""
    trees = [
        parse(e)
        for e in (
            "square(sub(fx, y))",
            "abs(sub(fx, y))",
            "sub(square(fx), mul(y, fx))",
            "mul(-1, mul(y, tanh(fx)))",
            "mul(y, log(fx))",
            # (cross-entropy's last weight has an exactly-zero meta-gradient, which Adam
            # turns into round-off-sized steps of either sign: tests/meta covers that case)
            "mul(-1, mul(y, log(add(fx, 1))))",
        )
    ]
    results = {}
    for batch in (1, 4):
        config = _config("filters.gradient_equivalence=false")
        executor = SerialExecutor()
        executor.start(ContextSpec((_task().without_test(),), "linear", config))
        evaluator = CandidateEvaluator(config.filters, "classification", executor, batch_size=batch)
        results[batch] = evaluator.evaluate(trees)
    for one, many in zip(results[1], results[4], strict=True):
        assert one.verdict == many.verdict
        assert one.fitness == many.fitness
        np.testing.assert_allclose(one.phi, many.phi, atol=1e-9)


def _pruning_evaluator(batch=1, *overrides):
    config = _config(
        "fitness.prune_at=0.5",
        "fitness.prune_factor=1.5",
        "filters.rejection=false",
        "local_search.enabled=false",
        *overrides,
    )
    executor = SerialExecutor()
    executor.start(ContextSpec((_task().without_test(),), "linear", config))
    evaluator = CandidateEvaluator.from_config(config, "classification", executor, batch)
    return evaluator, executor


def _plain_fitness(expression, steps):
    """The validation metric of the same partial training, without pruning, after ``steps``."""
    evaluator, _ = _evaluator(
        "filters.rejection=false", "local_search.enabled=false", f"fitness.steps={steps}"
    )
    (out,) = evaluator.evaluate([parse(expression)])
    return out.fitness


def test_pruning_stops_a_candidate_clearly_behind_the_best_so_far(float64):
    evaluator, _ = _pruning_evaluator()
    assert evaluator.prune_threshold() == float("inf")  # nothing to compare with yet
    (first,) = evaluator.evaluate([parse(CE)])
    assert not first.pruned and first.fitness == _plain_fitness(CE, 20)
    assert evaluator.best_rung == _plain_fitness(CE, 10)  # the metric at step 10 of 20
    assert evaluator.prune_threshold() == 1.5 * evaluator.best_rung
    behind = "mul(-1, mul(y, sqrt(fx)))"
    rung = _plain_fitness(behind, 10)
    assert rung > evaluator.prune_threshold(), "the test needs a loss clearly behind at step 10"
    (out,) = evaluator.evaluate([parse(behind)])
    assert out.verdict == EVALUATED and out.pruned and out.fitness == rung
    assert evaluator.best_rung == _plain_fitness(CE, 10)  # a pruned run is no reference
    clone = CandidateEvaluator(evaluator.filters, "classification", SerialExecutor())
    clone.load_state_dict(evaluator.state_dict())
    assert clone.best_rung == evaluator.best_rung


def test_pruning_is_the_same_batched_and_one_by_one(float64):
    trees = [
        parse("abs(sub(fx, y))"),
        parse("mul(-1, mul(y, sqrt(fx)))"),
        parse("square(sub(fx, y))"),
    ]
    results = {}
    for batch in (1, 3):
        evaluator, _ = _pruning_evaluator(batch)
        evaluator.evaluate([parse(CE)])  # sets the reference
        results[batch] = evaluator.evaluate(trees)
    assert any(o.pruned for o in results[1]) and not all(o.pruned for o in results[1])
    for one, many in zip(results[1], results[3], strict=True):
        assert (one.verdict, one.pruned) == (many.verdict, many.pruned)
        assert one.fitness == pytest.approx(many.fitness, rel=1e-9)


def test_pruning_is_off_by_default():
    evaluator, _ = _evaluator("filters.rejection=false")
    evaluator.evaluate([parse(CE)])
    assert evaluator.best_rung is None and evaluator.prune_threshold() == float("inf")


def test_pruning_before_the_search_skips_the_local_search_of_a_candidate_behind(float64):
    evaluator, _ = _pruning_evaluator(
        1, "local_search.enabled=true", "fitness.prune_before_search=true"
    )
    assert evaluator.prune_before_search
    (first,) = evaluator.evaluate([parse(CE)])  # no reference yet: searched and trained in full
    assert not first.pruned and first.seconds["local_search"] > 0
    behind = "mul(-1, mul(y, sqrt(fx)))"
    # the oracle: the same candidate with its initial (untuned) weights, trained to step 10
    untuned, _ = _evaluator("filters.rejection=false", "local_search.steps=0", "fitness.steps=10")
    (rung,) = untuned.evaluate([parse(behind)])
    assert rung.fitness > evaluator.prune_threshold()
    (out,) = evaluator.evaluate([parse(behind), parse("square(sub(fx, y))")])[:1]
    assert out.pruned and out.fitness == rung.fitness and out.phi == rung.phi
    assert out.seconds["local_search"] == 0.0


def test_pruning_before_the_search_is_the_same_batched_and_one_by_one(float64):
    trees = [parse(e) for e in ("abs(sub(fx, y))", "mul(-1, mul(y, sqrt(fx)))", "square(fx)")]
    results = {}
    for batch in (1, 3):
        evaluator, _ = _pruning_evaluator(
            batch, "local_search.enabled=true", "fitness.prune_before_search=true"
        )
        evaluator.evaluate([parse(CE)])
        results[batch] = evaluator.evaluate(trees)
    assert any(o.pruned for o in results[1])
    for one, many in zip(results[1], results[3], strict=True):
        assert (one.verdict, one.pruned) == (many.verdict, many.pruned)
        assert one.fitness == pytest.approx(many.fitness, rel=1e-9)
