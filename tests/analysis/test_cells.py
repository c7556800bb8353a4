"""The analyses' one grid runner: every (loss, setting, seed) cell once, resumable."""

from hypothesis import given, settings
from hypothesis import strategies as st

from evomal.analysis.cells import LossSpec, run_grid


def _grid(tmp_path, losses, keys, seeds, calls, built):
    specs = [LossSpec(name, "task") for name in losses]

    def task_for_seed(seed):
        built.append(seed)
        return f"task-{seed}"

    def cell(spec, task, value, seed):
        calls.append((spec.label, value, seed))
        return {"value": f"{spec.label}/{value}/{task}/{seed}"}

    return run_grid(tmp_path, specs, [(f"k{v}", v) for v in keys], seeds, task_for_seed, cell)


@settings(max_examples=25, deadline=None)
@given(
    losses=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    keys=st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True),
    seeds=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
)
def test_each_cell_runs_once_and_a_rerun_reads_every_cell_back(tmp_path_factory, losses, keys,
                                                               seeds):  # fmt: skip
    root = tmp_path_factory.mktemp("grid")
    calls, built = [], []
    grid = _grid(root, losses, keys, seeds, calls, built)
    assert sorted(calls) == sorted((a, k, s) for a in losses for k in keys for s in seeds)
    assert built == seeds  # each seed's task is built once, whatever the number of losses
    for label in losses:
        for key in keys:
            # oracle: in seed order, each record is what the cell function returns for it
            values = [record["value"] for record in grid[(label, f"k{key}")]]
            assert values == [f"{label}/{key}/task-{seed}/{seed}" for seed in seeds]
    again_calls: list = []
    again = _grid(root, losses, keys, seeds, again_calls, [])
    assert again_calls == []
    assert again == grid
