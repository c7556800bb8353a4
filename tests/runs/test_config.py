"""Configuration: presets, overrides, validation, round-trips."""

import pytest

from evomal.config import (
    SearchConfig,
    SGDConfig,
    build_config,
    from_dict,
    parse_overrides,
    preset_names,
    to_dict,
)


def test_reference_mnist_matches_the_authors_config():
    """shared/paper/reference-configs.md, MNIST row and the shared settings."""
    ref = build_config("reference_mnist")
    assert (ref.gp.population_size, ref.gp.generations) == (25, 50)
    assert (ref.gp.init_min_height, ref.gp.init_max_height) == (2, 4)
    assert (ref.gp.tournament_size, ref.gp.crossover_prob, ref.gp.mutation_prob) == (4, 0.7, 0.25)
    assert (ref.gp.elitism, ref.gp.max_height) == (0.05, 10)
    assert (ref.local_search.steps, ref.local_search.base_steps) == (250, 1)
    assert ref.local_search.meta_lr == 1e-3 and ref.local_search.unroll_optimizer
    assert (ref.fitness.steps, ref.fitness.batch_size) == (500, 128)
    assert ref.fitness.optimizer == SGDConfig(lr=0.01, momentum=0.0)
    assert (ref.filters.rejection_samples, ref.filters.rejection_steps) == (100, 100)
    assert ref.filters.rejection_lr == 0.01 and ref.filters.rejection_threshold < 1e-3
    assert ref.meta_test.steps == 10_000
    assert ref.meta_test.optimizer == SGDConfig(lr=0.01, momentum=0.0)
    assert ref.model_options == {"pad_to_32": False, "init": "xavier"}


@pytest.mark.parametrize("name", ["reference_cifar", "reference_svhn"])
def test_reference_cifar_and_svhn_match_the_authors_config(name):
    ref = build_config(name)
    sgd = SGDConfig(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert ref.fitness.optimizer == sgd
    assert ref.filters.rejection_steps == 1000
    assert ref.meta_test.steps == 150_000
    assert ref.meta_test.optimizer == SGDConfig(
        lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, milestones=(100_000, 135_000)
    )
    assert ref.data.augmentation == ("svhn_flip" if name == "reference_svhn" else None)


def test_reference_regression_matches_the_authors_config():
    ref = build_config("reference_regression")
    sgd = SGDConfig(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert ref.fitness.optimizer == sgd and ref.meta_test.optimizer == sgd
    assert (ref.filters.rejection_steps, ref.meta_test.steps) == (1000, 10_000)
    assert ref.data.val_fraction == 0.25  # 60 / 20 / 20 of the whole set


def test_tuned_presets_keep_their_names_and_settings():
    assert build_config("mnist_lenet5").meta_test.optimizer.momentum == 0.9
    assert build_config("cifar").meta_test.optimizer.lr == 0.1
    assert "paper" not in preset_names()
    with pytest.raises(ValueError, match="reference_mnist"):
        build_config("paper")


def test_every_preset_builds():
    for name in preset_names():
        config = build_config(name)
        assert from_dict(SearchConfig, to_dict(config)) == config


def test_training_is_a_shorthand_for_both_optimisers():
    config = build_config(
        None, ["training.lr=0.05", "training.momentum=0.8", "training.batch_size=32"]
    )
    for section in (config.fitness, config.meta_test):
        assert section.optimizer.lr == 0.05 and section.optimizer.momentum == 0.8
        assert section.batch_size == 32
    assert "training" not in to_dict(config)


def test_explicit_optimiser_keys_win_within_a_layer_and_later_layers_win():
    config = build_config(None, ["training.lr=0.05", "meta_test.optimizer.lr=0.2"])
    assert config.fitness.optimizer.lr == 0.05 and config.meta_test.optimizer.lr == 0.2
    # The preset sets meta_test.optimizer.momentum = 0 explicitly; a later --set
    # training.momentum overrides it, because later layers win.
    later = build_config("reference_mnist", ["training.momentum=0.9"])
    assert later.fitness.optimizer.momentum == 0.9 and later.meta_test.optimizer.momentum == 0.9
    kept = build_config("reference_mnist", ["training.batch_size=64"])
    assert kept.meta_test.optimizer.momentum == 0.0 and kept.fitness.batch_size == 64


def test_old_run_configs_with_a_training_section_still_load():
    data = to_dict(build_config("quick"))
    del data["fitness"]["optimizer"], data["meta_test"]["optimizer"]
    data["training"] = {"lr": 0.3, "momentum": 0.5, "batch_size": 16}
    config = from_dict(SearchConfig, data)
    assert config.fitness.optimizer.lr == 0.3 and config.meta_test.optimizer.momentum == 0.5
    # A batch size the stored sections already held wins over the old shorthand.
    assert config.fitness.batch_size == data["fitness"]["batch_size"]


def test_bad_training_keys_and_optimiser_values_name_the_key():
    with pytest.raises(ValueError, match=r"training\.lrate"):
        build_config(None, ["training.lrate=0.1"])
    with pytest.raises(ValueError, match=r"fitness\.optimizer: .*momentum"):
        build_config(None, ["fitness.optimizer.momentum=1.5"])
    with pytest.raises(ValueError, match=r"selection\.k must be >= 0"):
        build_config(None, ["selection.k=-1"])
    with pytest.raises(ValueError, match=r"data\.val_fraction"):
        build_config(None, ["data.val_fraction=1.5"])


def test_overrides_are_typed():
    config = build_config(
        "quick",
        [
            "gp.population_size=10",
            "gp.generations=5",
            "local_search.steps=50",
            "filters.rejection=false",
            "meta_test.optimizer.milestones=[100, 200]",
            "local_search.base_lr=0.5",
            "selection.steps=77",
        ],
    )
    assert config.gp.population_size == 10 and config.gp.generations == 5
    assert config.local_search.steps == 50 and config.filters.rejection is False
    assert config.meta_test.optimizer.milestones == (100, 200)
    assert config.local_search.base_lr == 0.5
    assert config.selection_steps == 77
    assert build_config("quick").selection_steps == build_config("quick").meta_test.steps


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("gp.populaton_size=10", "unknown config key"),
        ("gpp.generations=3", "unknown config key"),
        ("gp.population_size=ten", "expects an integer"),
        ("gp.population_size=2.5", "expects an integer"),
        ("gp.crossover_prob=1.5", "must be in [0, 1]"),
        ("filters.screening=sometimes", "screening"),
        ("execution.executor=mpi", "executor"),
        ("gp.population_size", "KEY=VALUE"),
        ("gp.generations=0", "must be positive"),
    ],
)
def test_bad_overrides_are_errors(override, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        build_config("quick", [override])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"gp\.population_size"):
        build_config("quick", ["gp.population=3"])


def test_dict_round_trip():
    config = build_config("reference_mnist", ["gp.functions=[add, mul, log]"])
    assert config.gp.functions == ("add", "mul", "log")
    assert from_dict(SearchConfig, to_dict(config)) == config


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x", "d=true"]) == {"a": {"b": 1, "c": "x"}, "d": True}


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("fast")


@pytest.mark.parametrize("prefix", ["training", "fitness.optimizer", "meta_test.optimizer"])
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", "0", "learning rate"),
        ("momentum", "1.5", "momentum"),
        ("momentum", "-0.1", "momentum"),
        ("weight_decay", "-1", "weight decay"),
        ("milestones", "[300, 100]", "milestones"),
        ("gamma", "0", "gamma"),
        ("gamma", "-0.5", "gamma"),
        ("milestones", "[0, 100]", "milestones"),
    ],
)
def test_every_optimiser_field_is_validated_when_the_config_is_built(prefix, field, value, message):
    """A bad optimiser value fails in build_config, not inside every fitness job (issue 11)."""
    with pytest.raises(ValueError, match=message):
        build_config("quick", [f"{prefix}.{field}={value}"])


def test_nesterov_without_momentum_is_refused_when_the_config_is_built():
    with pytest.raises(ValueError, match="Nesterov"):
        build_config(None, ["training.nesterov=true", "training.momentum=0"])
