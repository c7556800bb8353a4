"""Configuration: presets, overrides, validation, round-trips."""

import pytest

from evomal.runs.config import (
    SearchConfig,
    build_config,
    from_dict,
    parse_overrides,
    preset_names,
    to_dict,
)


def test_presets_load_and_paper_matches_the_paper():
    assert {"quick", "paper"} <= set(preset_names())
    paper = build_config("paper")
    assert (paper.gp.population_size, paper.gp.generations) == (25, 50)
    assert (paper.gp.init_min_height, paper.gp.init_max_height) == (2, 4)
    assert (paper.gp.tournament_size, paper.gp.crossover_prob, paper.gp.mutation_prob) == (
        4,
        0.7,
        0.25,
    )
    assert (paper.gp.elitism, paper.gp.max_height, paper.gp.n_elites) == (0.05, 10, 1)
    assert (paper.local_search.steps, paper.local_search.base_steps) == (250, 1)
    assert (paper.local_search.meta_lr, paper.local_search.phi_init_std) == (1e-3, 1e-3)
    assert paper.fitness.steps == 500
    assert (paper.filters.rejection_samples, paper.filters.rejection_threshold) == (100, 0.6)


def test_overrides_are_typed():
    config = build_config(
        "quick",
        [
            "gp.population_size=10",
            "gp.generations=5",
            "local_search.steps=50",
            "filters.rejection=false",
            "training.milestones=[100, 200]",
            "local_search.base_lr=0.5",
        ],
    )
    assert config.gp.population_size == 10 and config.gp.generations == 5
    assert config.local_search.steps == 50 and config.filters.rejection is False
    assert config.training.milestones == (100, 200)
    assert config.local_search.base_lr == 0.5


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
    config = build_config("paper", ["gp.functions=[add, mul, log]"])
    assert config.gp.functions == ("add", "mul", "log")
    assert from_dict(SearchConfig, to_dict(config)) == config


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x", "d=true"]) == {"a": {"b": 1, "c": "x"}, "d": True}


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("fast")
