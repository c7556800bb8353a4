"""Label noise, class imbalance and the balanced error: oracle tests of the scenarios."""

import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.config import Scenario, build_config
from evomal.errors import ConfigError, DataError
from evomal.runs.tasks import task_for
from evomal.tasks import Task, get_task
from evomal.tasks.scenarios import corrupt, flip_labels, long_tail_counts
from evomal.training.diagnostics import class_errors, memorisation
from evomal.training.loop import evaluate, evaluate_per_sample


def _pool(n_per_class=400, classes=10):
    return np.repeat(np.arange(classes), n_per_class)


def _within_binomial(count, n, rate, sigmas=4.5):
    return abs(count - n * rate) <= sigmas * math.sqrt(n * rate * (1 - rate)) + 1


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.4, 0.8])
@pytest.mark.parametrize("kind", ["symmetric", "pair"])
def test_the_flip_rate_is_within_binomial_tolerance(rate, kind):
    y = _pool()
    noisy = flip_labels(y, rate, kind, 10, seed=3)
    assert _within_binomial(int((noisy != y).sum()), len(y), rate)


def test_pair_noise_maps_each_flipped_label_to_the_next_class():
    y = _pool(classes=7)
    noisy = flip_labels(y, 0.5, "pair", 7, seed=0)
    flipped = noisy != y
    assert flipped.any()
    assert np.array_equal(noisy[flipped], (y[flipped] + 1) % 7)


def test_symmetric_noise_never_keeps_a_flipped_label_and_reaches_every_other_class():
    y = _pool(n_per_class=3000, classes=5)
    noisy = flip_labels(y, 0.4, "symmetric", 5, seed=1)
    flipped = noisy != y
    for c in range(5):
        targets = noisy[flipped & (y == c)]
        counts = np.bincount(targets, minlength=5)
        assert counts[c] == 0
        others = counts[np.arange(5) != c]
        assert all(_within_binomial(k, len(targets), 1 / 4) for k in others), counts


def test_under_imbalance_the_kept_samples_are_flipped_at_the_rate():
    # Regression: one shared stream made the kept samples exactly the flipped ones (0.43).
    y = _pool(n_per_class=1000)
    found = corrupt(y, Scenario(label_noise=0.2, imbalance=10), 10)
    assert _within_binomial(int((found.labels != found.clean).sum()), len(found.keep), 0.2)


def _exact_long_tail(counts, ratio):
    """Independently: the largest m with m <= n_max * ratio^(-c/(K-1)), by Fraction powers."""
    k, n_max = len(counts), max(counts)
    r = Fraction(repr(float(ratio)))
    out = []
    for c, n in enumerate(counts):
        # m^(K-1) <= n_max^(K-1) / r^c; search downwards from n_max.
        bound = Fraction(n_max) ** (k - 1) / r**c
        m = n_max
        while m > 0 and Fraction(m) ** (k - 1) > bound:
            m -= 1
        out.append(min(n, m))
    return out


def test_the_long_tail_counts_match_the_formula_where_floats_round_wrong():
    # 1000 * 10 ** -1 is 100 exactly; 1000 * 10 ** (-9/9) in floats is 99.99999999999999.
    assert long_tail_counts([1000] * 10, 10) == [1000, 774, 599, 464, 359, 278, 215, 166, 129, 100]
    assert long_tail_counts([5000] * 10, 100)[-1] == 50
    assert long_tail_counts([5000] * 10, 100) == _exact_long_tail([5000] * 10, 100)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 600), min_size=2, max_size=12),
    ratio=st.sampled_from([1.0, 1.5, 2.0, 10.0, 20.0, 50.0, 100.0, 2.5, 7.25]),
)
def test_long_tail_counts_match_an_exact_computation(counts, ratio):
    assert long_tail_counts(counts, ratio) == _exact_long_tail(counts, ratio)


def test_imbalance_keeps_the_formula_counts_of_each_true_class():
    y = _pool(n_per_class=500)
    found = corrupt(y, Scenario(imbalance=10, label_noise=0.3), 10)
    kept = np.bincount(found.clean, minlength=10).tolist()
    assert kept == long_tail_counts([500] * 10, 10)


def _clean_and_noisy(seed=0, **scenario):
    config = build_config("quick", [f"data.{k}={v}" for k, v in scenario.items()])
    clean = task_for("digits", build_config("quick"), seed=seed)
    return clean, task_for("digits", config, seed=seed)


def test_the_test_split_is_bit_identical_to_the_clean_tasks():
    clean, noisy = _clean_and_noisy(label_noise=0.4)
    assert torch.equal(noisy.test.x, clean.test.x)
    assert torch.equal(noisy.test.y, clean.test.y)
    assert noisy.test.y_clean is None
    # With imbalance the test samples and labels are the same; features are standardised with
    # the (imbalanced) training split's statistics, as every split is.
    _, imbalanced = _clean_and_noisy(imbalance=10)
    assert torch.equal(imbalanced.test.y, clean.test.y)


def test_training_and_validation_carry_the_noise():
    clean, noisy = _clean_and_noisy(label_noise=0.4)
    assert torch.equal(noisy.train.y_clean, clean.train.y)
    assert torch.equal(noisy.val.y_clean, clean.val.y)
    for split in (noisy.train, noisy.val):
        flipped = int(split.flipped.sum())
        assert _within_binomial(flipped, len(split), 0.4)
    record = noisy.scenario_record
    assert record["splits"]["train"]["flip_rate"] == pytest.approx(
        float(noisy.train.flipped.float().mean())
    )


def _pool_flips(task):
    return set(task.scenario_record["flipped_pool_indices"])


def test_the_same_settings_flip_the_same_samples_whatever_the_run_seed():
    tasks = [_clean_and_noisy(seed=s, label_noise=0.3, noise_kind="pair")[1] for s in (0, 1, 5)]
    assert _pool_flips(tasks[0]) == _pool_flips(tasks[1]) == _pool_flips(tasks[2])

    # The seed only moves samples between training and validation: same flipped inputs.
    def flipped_inputs(task):  # the raw pixels (integers 0..16) of the flipped samples
        mean, std = task.info["feature_mean_std"]
        rows = [(s.x[s.flipped] * std + mean).round() for s in (task.train, task.val)]
        return sorted(map(tuple, torch.cat(rows).tolist()))

    assert flipped_inputs(tasks[0]) == flipped_inputs(tasks[1]) == flipped_inputs(tasks[2])
    assert _pool_flips(_clean_and_noisy(noise_seed=1, label_noise=0.3)[1]) != _pool_flips(tasks[0])


def test_a_task_sent_to_a_worker_keeps_its_noisy_and_true_labels():
    _, noisy = _clean_and_noisy(label_noise=0.2)
    shipped = pickle.loads(pickle.dumps(noisy.without_test()))
    assert torch.equal(shipped.train.y, noisy.train.y)
    assert torch.equal(shipped.train.y_clean, noisy.train.y_clean)
    assert shipped.scenario == noisy.scenario and shipped.metric == noisy.metric


def test_the_python_api_composes_in_either_order_and_equals_the_config():
    base = get_task("digits")
    one = base.with_label_noise(0.3).with_imbalance(10)
    two = base.with_imbalance(10).with_label_noise(0.3)
    config = build_config("quick", ["data.label_noise=0.3", "data.imbalance=10"])
    three = task_for("digits", config)
    for other in (two, three):
        assert torch.equal(one.train.y, other.train.y)
        assert torch.equal(one.val.x, other.val.x)
    assert one.metric == "balanced_error"
    assert base.with_imbalance(10).with_metric("error").metric == "error"


def test_bad_scenarios_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        Scenario(label_noise=1.0)
    with pytest.raises(ConfigError, match="symmetric, pair"):
        Scenario(noise_kind="asymmetric")
    with pytest.raises(ConfigError, match="did you mean 10"):
        Scenario(imbalance=0.1)
    with pytest.raises(DataError, match="classification"):
        get_task("diabetes").with_label_noise(0.2)
    bare = Task("made by hand", "classification", get_task("wine").train, get_task("wine").val,
                None, 3, (13,))  # fmt: skip
    with pytest.raises(DataError, match="from_tensors"):
        bare.with_label_noise(0.2)


def test_the_balanced_error_equals_a_hand_computation():
    # Classes 0 (4 samples, 1 wrong), 1 (2 samples, 2 wrong), 2 (1 sample, 0 wrong).
    x = torch.zeros(7, 1)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 0, 2, 0, 2, 2])
    hand = (1 / 4 + 2 / 2 + 0 / 1) / 3
    task = Task.from_tensors("hand", "classification", torch.cat([x] * 3), torch.cat([y] * 3),
                             x, y, standardise="none").with_metric("balanced_error")  # fmt: skip
    logits = torch.nn.functional.one_hot(predicted, 3).double() * 5

    class Fixed(torch.nn.Module):
        def forward(self, inputs):
            return logits[: inputs.shape[0]]

    test = task.test
    assert float(evaluate(Fixed(), test, task)) == pytest.approx(hand)
    assert float(evaluate_per_sample(Fixed(), test, task).mean()) == pytest.approx(hand)
    errors = class_errors(predicted, y, 3)
    assert errors["balanced_error"] == pytest.approx(hand)
    assert errors["error"] == pytest.approx(3 / 7)
    assert errors["per_class_error"] == pytest.approx([1 / 4, 1.0, 0.0])


def test_memorisation_counts_the_flipped_samples_predicted_with_their_noisy_label():
    n = 600
    x = torch.arange(n, dtype=torch.float64).reshape(-1, 1)  # each input names its sample
    y = torch.arange(n) % 4
    noisy = Task.from_tensors("indexed", "classification", x, y, x[:10], y[:10],
                              standardise="none", scenario=Scenario(label_noise=0.4))  # fmt: skip
    train = noisy.train

    class Predicts(torch.nn.Module):
        def __init__(self, labels):
            super().__init__()
            self.table = torch.zeros(n, dtype=torch.long)
            self.table[train.x.reshape(-1).long()] = labels

        def forward(self, inputs):
            return torch.nn.functional.one_hot(self.table[inputs.reshape(-1).long()], 4).double()

    assert memorisation(Predicts(train.y), noisy)["memorised"] == 1.0
    found = memorisation(Predicts(train.y_clean), noisy)
    assert found["memorised"] == 0.0 and found["recovered"] == 1.0
    assert 0 < found["flipped"] == int(train.flipped.sum()) < len(train)


def test_a_scenario_is_recorded_in_the_run_directory_and_survives_resume(tmp_path):
    import json

    from evomal.search import resume, search

    overrides = ["data.label_noise=0.3", "data.imbalance=5", "gp.population_size=4",
                 "gp.generations=3", "local_search.steps=2", "fitness.steps=20",
                 "filters.rejection_steps=50", "meta_test.steps=40", "selection.k=1"]  # fmt: skip
    config = build_config(None, overrides)
    task = task_for("wine", config)
    full = search(task, "linear", config, out=tmp_path / "full", spec={"task": "wine"})
    search(task, "linear", config, out=tmp_path / "part", spec={"task": "wine"},
           max_generations=1)  # fmt: skip
    resumed = resume(tmp_path / "part")  # the task is rebuilt from run.json and config.json
    assert resumed.best.to_dict() == full.best.to_dict()
    assert resumed.selection[0]["val_metric"] == full.selection[0]["val_metric"]
    saved = json.loads((tmp_path / "part" / "scenario.json").read_text())
    assert saved["flipped_pool_indices"] == task.scenario_record["flipped_pool_indices"]
    run = json.loads((tmp_path / "part" / "run.json").read_text())
    assert run["task"]["metric"] == "balanced_error"
    assert (
        run["task"]["scenario"]["splits"]["train"]["class_counts"]
        == (task.scenario_record["splits"]["train"]["class_counts"])
    )
    assert "flipped" not in run["task"]["scenario"]["splits"]["train"]  # the lists stay out


def test_a_task_built_in_python_puts_its_scenario_in_the_config(tmp_path):
    import json

    from evomal.search import search

    task = get_task("wine").with_label_noise(0.25, "pair", seed=3)
    config = build_config(None, ["gp.population_size=4", "gp.generations=1", "fitness.steps=10",
                                 "local_search.steps=1", "selection.k=0"])  # fmt: skip
    search(task, "linear", config, out=tmp_path / "run")
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert (data["label_noise"], data["noise_kind"], data["noise_seed"]) == (0.25, "pair", 3)
    with pytest.raises(ConfigError, match="not the one task"):
        search(task, "linear", build_config(None, ["data.label_noise=0.1"]))
