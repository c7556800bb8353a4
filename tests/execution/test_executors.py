"""Executors: process pool and Ray give the serial result; a Ray worker that dies is retried."""

import contextlib
import functools
import os
import sys

import numpy as np
import pytest

from evomal.config import build_config
from evomal.execution.base import SerialExecutor, map_batched
from evomal.execution.process import ProcessExecutor
from evomal.search import search
from evomal.tasks import Task

TINY = [
    "gp.population_size=6",
    "gp.generations=2",
    "local_search.steps=3",
    "fitness.steps=30",
    "filters.rejection_steps=100",
    "training.lr=0.1",
    "training.batch_size=32",
    "execution.batch_candidates=1",
    "meta_test.steps=200",
    "selection.k=2",
]


@contextlib.contextmanager
def torch_threads(n):
    """Run the serial reference with the workers' thread count, so that both sides use the
    same kernels and reduction order on any machine (then results agree exactly)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _task():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 4))).argmax(1)
    return Task.from_tensors("toy", "classification", x, y, x[:60], y[:60])


def _same_result(a, b):
    assert a.best.expression == b.best.expression
    assert a.best_fitness == b.best_fitness
    np.testing.assert_allclose(a.best.phi.numpy(), b.best.phi.numpy(), atol=1e-5)
    assert [h.verdicts for h in a.history] == [h.verdicts for h in b.history]
    assert a.task_loss == b.task_loss
    assert [f["val_metric"] for f in a.selection] == [f["val_metric"] for f in b.selection]


def test_process_pool_gives_the_serial_result():
    config = build_config(None, TINY)
    with torch_threads(max(1, (os.cpu_count() or 1) // 2)):  # as each of the 2 workers
        serial = search(_task(), "linear", config)
    executor = ProcessExecutor(2)
    try:
        pooled = search(_task(), "linear", config, executor=executor)
    finally:
        executor.close()
    _same_result(serial, pooled)


class _AlwaysBroken:
    """A pool whose workers die on every job, as when the main module is not guarded."""

    def map(self, *args, **kwargs):
        from concurrent.futures.process import BrokenProcessPool

        raise BrokenProcessPool("a worker died")

    def shutdown(self, *args, **kwargs):
        pass


def test_process_pool_that_breaks_twice_says_why(monkeypatch):
    executor = ProcessExecutor(2)
    opened = []

    def fake_open():
        opened.append(True)
        executor._pool = _AlwaysBroken()

    monkeypatch.setattr(executor, "_open", fake_open)
    executor._pool = _AlwaysBroken()
    with pytest.raises(RuntimeError, match="__main__") as caught:
        executor.map(lambda context, job: job, [1, 2])
    assert "--executor serial" in str(caught.value)
    assert opened == [True]  # rebuilt once, then gave up with the reason


class _Echo:
    workers = 3

    def map(self, fn, jobs):
        return [fn(None, job) for job in jobs]


def test_map_batched_keeps_order_and_workers_busy():
    calls = []

    def single(_, job):
        return job * 10

    def batched(_, jobs):
        calls.append(len(jobs))
        return [j * 10 for j in jobs]

    assert map_batched(_Echo(), single, batched, list(range(7)), 8) == [j * 10 for j in range(7)]
    assert calls == [3, 3, 1]  # chunks no larger than needed to feed 3 workers
    calls.clear()

    class _One(_Echo):
        workers = 1

    assert map_batched(_One(), single, batched, list(range(5)), 2) == [0, 10, 20, 30, 40]
    assert calls == [2, 2, 1]
    assert SerialExecutor().workers == 1


def _die_once(marker, fn, ctx, job):
    """Kill this worker process the first time any job arrives (fault injection)."""
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        os._exit(1)
    return fn(ctx, job)


class _DyingExecutor:
    """Wraps an executor so that one worker process dies in the middle of a candidate."""

    def __init__(self, inner, marker):
        self.inner, self.marker = inner, marker

    def start(self, spec):
        self.inner.start(spec)

    @property
    def workers(self):
        return self.inner.workers

    def map(self, fn, jobs):
        return self.inner.map(functools.partial(_die_once, self.marker, fn), jobs)

    def close(self):
        self.inner.close()


def test_ray_worker_death_is_retried_and_the_result_is_unchanged(tmp_path):
    ray = pytest.importorskip("ray")
    from evomal.execution.ray_executor import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = build_config(None, TINY)
        with torch_threads(1):  # Ray actors run with one thread (OMP_NUM_THREADS=1)
            serial = search(_task(), "linear", config)
        marker = str(tmp_path / "killed")
        ray_executor = RayExecutor(workers=2)
        result = search(_task(), "linear", config, executor=_DyingExecutor(ray_executor, marker))
        assert os.path.exists(marker)  # a worker really died mid-candidate
        killed_pid = int((tmp_path / "killed").read_text())
        _same_result(serial, result)
        assert killed_pid not in ray_executor.worker_pids()  # the dead actor was restarted
        ray_executor.close()
    finally:
        ray.shutdown()


_ORPHAN_SCRIPT = """
import sys, time
import numpy as np
from evomal.config import build_config
from evomal.execution.context import ContextSpec
from evomal.execution.process import ProcessExecutor
from evomal.tasks import Task
from evomal.tasks.models.source import resolve_model

def pid(context, job):
    import os
    time.sleep(0.2)  # so that each worker takes a job
    return os.getpid()

if __name__ == "__main__":
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ rng.normal(size=(3, 2))).argmax(1)
    task = Task.from_tensors("toy", "classification", x, y, x[:10], y[:10])
    executor = ProcessExecutor(2)
    executor.start(ContextSpec((task,), resolve_model("linear"), build_config(None)))
    print(" ".join(str(p) for p in sorted(set(executor.map(pid, list(range(8)))))), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_workers_exit_when_the_search_process_is_killed(tmp_path):
    """A search killed outright (SIGKILL: no cleanup runs) must not leave its workers behind:
    before the fix they lived on as orphans, each holding a copy of torch and the task."""
    import signal
    import subprocess
    import time

    script = tmp_path / "start_pool.py"
    script.write_text(_ORPHAN_SCRIPT)
    main = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert main.stdout is not None
        workers = [int(p) for p in main.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.monotonic() + 60  # a liveness bound, far above the 1 s check
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "workers outlived the killed search process"


def test_a_batch_that_raises_is_computed_one_by_one():
    from evomal.execution.base import batched_or_one_by_one

    def broken() -> list[int]:
        raise RuntimeError("one member broke the batch")

    assert batched_or_one_by_one(lambda: [10, 20], lambda job: -job, [1, 2]) == [10, 20]
    assert batched_or_one_by_one(broken, lambda job: -job, [1, 2]) == [-1, -2]
