"""One process per run directory: a second search/resume refuses; stale locks are taken over."""

import json
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import evomal
from evomal import get_task
from evomal.cli import app
from evomal.runs.lock import LOCK_NAME, RunDirectoryInUse, run_lock
from tests.toy import linear_classification

TINY = ["gp.population_size=4", "gp.generations=2", "local_search.steps=2", "fitness.steps=20",
        "selection.k=0"]  # fmt: skip


def _task():
    return linear_classification(seed=5, n=200, features=5, classes=3, n_test=40)


def _snapshot(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture
def held(tmp_path):
    """Another live process holding the lock of ``tmp_path / 'run'`` (after a stopped search)."""
    root = tmp_path / "run"
    config = evomal.build_config(None, TINY)
    evomal.search(get_task("wine"), "linear", config, out=root, max_generations=1)
    code = (
        "import sys, time; from pathlib import Path; from evomal.runs.lock import run_lock\n"
        f"with run_lock(Path({str(root)!r})):\n    print('held', flush=True); time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "held"
    yield root, owner
    owner.kill()
    owner.wait()


def test_a_second_resume_refuses_while_another_process_runs(held):
    root, owner = held
    before = _snapshot(root)
    with pytest.raises(RunDirectoryInUse, match=f"in use by process {owner.pid}"):
        evomal.resume(root)
    assert _snapshot(root) == before  # nothing was written
    result = CliRunner().invoke(app, ["resume", str(root)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "in use by process" in result.output


def test_a_lock_left_by_a_killed_process_is_stale_and_taken_over(held):
    root, owner = held
    owner.kill()  # SIGKILL: the lock file stays behind
    owner.wait()
    assert (root / LOCK_NAME).exists()
    result = evomal.resume(root)
    assert result.finished
    assert not (root / LOCK_NAME).exists()  # released at the end


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    lock = {"pid": 12345, "host": socket.gethostname() + "-elsewhere", "since": time.time()}
    (root / LOCK_NAME).write_text(json.dumps(lock))
    with pytest.raises(RunDirectoryInUse, match=r"on .*-elsewhere.*remove"), run_lock(root):
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    root = tmp_path / "run"

    def crash():
        with run_lock(root):
            assert json.loads((root / LOCK_NAME).read_text())["pid"] > 0
            raise RuntimeError("a crash inside the run")

    with pytest.raises(RuntimeError):
        crash()
    assert not (root / LOCK_NAME).exists()
    with run_lock(root):  # and can be taken again
        pass


def test_taking_the_lock_removes_temporary_files_a_killed_writer_left(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    orphan = root / ".checkpoint.json.abc123.tmp"
    orphan.write_text('{"half": ')
    kept = root / "checkpoint.json"
    kept.write_text("{}")
    with run_lock(root):
        assert not orphan.exists() and kept.read_text() == "{}"
