"""Filter-normalised loss landscapes: the directions, the grid, and the command."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call
from typer.testing import CliRunner

from evomal import LearnedLoss
from evomal.analysis.cells import losses_to_compare
from evomal.analysis.landscape import filter_normalised_direction, landscapes, surface
from evomal.cli import app
from evomal.config import build_config
from evomal.runs.tasks import task_for
from tests.images import assert_real_image


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_each_filter_of_a_direction_has_the_norm_of_its_weight_filter(shape, seed):
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3
    params = {"w": weight, "bias": torch.randn(shape[0])}
    direction = filter_normalised_direction(params, torch.Generator().manual_seed(seed + 1))
    assert torch.equal(direction["bias"], torch.zeros(shape[0]))
    if weight.dim() == 1:
        assert torch.equal(direction["w"], torch.zeros_like(weight))
    else:
        dims = tuple(range(1, weight.dim()))
        norm = torch.linalg.vector_norm
        torch.testing.assert_close(norm(direction["w"], dim=dims), norm(weight, dim=dims))


def test_the_grid_is_the_loss_at_the_moved_weights():
    """Oracle: each grid value equals the loss of a model with those weights set directly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    d1, d2 = filter_normalised_direction(params, g), filter_normalised_direction(params, g)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    loss = torch.nn.functional.cross_entropy
    coords = [-0.5, 0.0, 0.5]
    grid = surface(model, loss, params, {}, (d1, d2), x, y, coords)
    for i, b in enumerate(coords):
        for j, a in enumerate(coords):
            moved = {k: params[k] + a * d1[k] + b * d2[k] for k in params}
            want = loss(functional_call(model, moved, (x,)), y)
            assert float(grid[i, j]) == pytest.approx(float(want), rel=1e-6)
    with torch.no_grad():
        direct = float(loss(model(x), y))
    assert float(grid[1, 1]) == pytest.approx(direct, rel=1e-6)


def test_landscapes_for_cross_entropy_and_a_learned_loss(tmp_path):
    config = build_config("quick", ["meta_test.steps=30", "training.batch_size=32"])
    task = task_for("wine", config, seed=0)
    path = tmp_path / "focal_like.json"
    LearnedLoss.from_string("mul(-1, mul(square(sub(1, fx)), mul(y, log(fx))))").save(path)
    found = landscapes(losses_to_compare([path], task.kind), task, "mlp", config, seed=0,
                       out=tmp_path, points=5, samples=64)  # fmt: skip
    assert [ls.label for ls in found] == ["cross-entropy", "focal_like"]
    for ls in found:
        assert len(ls.values) == 5 and all(len(row) == 5 for row in ls.values)
    saved = json.loads((tmp_path / "landscape.json").read_text())
    assert saved["points"] == 5 and len(saved["landscapes"]) == 2
    assert_real_image(tmp_path / "landscape.png")


def test_the_landscape_command(tmp_path):
    path = tmp_path / "ce.json"
    LearnedLoss.cross_entropy().save(path)
    args = ["landscape", "--loss", str(path), "--task", "wine", "--model", "linear",
            "--points", "3", "--samples", "32", "--out", str(tmp_path / "out"),
            "--set", "meta_test.steps=20"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "loss at the trained weights" in result.output
    bad = CliRunner().invoke(app, [*args, "--points", "2"])
    assert bad.exit_code == 2 and "at least 3" in bad.output
