"""Run directories written before the method-state refactor still resume to the same result.

The fixtures in ``tests/fixtures/runs`` were written by the code of main at f5ef526 (see
``tests/fixtures/make_runs.py``): a GP run and a CMA-ES run stopped after their first
generations, and what each reaches uninterrupted. Resuming a copy must reach that result.
"""

import json
import shutil
from pathlib import Path

import pytest

from evomal.search import resume
from tests.fixtures.make_runs import METHODS, task

RUNS = Path(__file__).parent / "fixtures" / "runs"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_run_stopped_by_the_old_code_resumes_to_the_old_result(method, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUNS / f"{method}_stopped", run)
    expected = json.loads((RUNS / f"{method}_expected.json").read_text())
    result = resume(run, task=task())
    assert result.finished
    assert result.task_loss == expected["task_loss"]
    got = result.best.to_dict()
    want = expected["loss"]
    assert {k: v for k, v in got.items() if k not in ("phi", "params")} == {
        k: v for k, v in want.items() if k not in ("phi", "params")
    }
    for key in ("phi", "params"):
        if key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6)
    assert result.best_fitness == pytest.approx(expected["best_fitness"], abs=1e-6)
    assert [h.best_so_far for h in result.history] == pytest.approx(
        [h["best_so_far"] for h in expected["history"]], abs=1e-6
    )
