"""A local process pool: one worker per GPU, or per group of CPU cores.

Each worker receives the run's context spec once (as the pool's initializer
argument), builds its evaluation context, and then runs stage functions on
the jobs it is given. With CUDA, worker i sees only GPU i
(``CUDA_VISIBLE_DEVICES``); on CPUs, the cores are split between the workers
(``torch.set_num_threads``). If a worker process dies, the pool is rebuilt
once and the unfinished jobs run again: stage functions are pure, so the
results are the same. If the search process itself dies (a crash, a kill,
the end of a session), its workers notice within a second and exit, rather
than living on as orphans that hold their memory (each a full copy of the
task and torch); the run is then resumed from its run directory.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from evomal.execution.base import StageFn
from evomal.execution.context import ContextSpec, EvaluationContext

_CONTEXT: EvaluationContext | None = None

_BROKEN_TWICE = (
    "the process executor's workers died twice in a row, so the search stopped. "
    "Usual causes: (1) evomal was called from a script without an "
    "`if __name__ == \"__main__\":` guard; workers are started with 'spawn', which "
    "re-imports the main module, so put the call under that guard; (2) the workers ran "
    "out of memory: use fewer workers (execution.workers) or --executor serial. "
    "The worker's own error, if any, is printed above."
)


#: How often (seconds) a worker checks that the search process that started it is alive.
PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    """Worker thread: end this worker once the process that started it is gone.

    An orphaned process is re-parented (to init or a subreaper), so its parent
    id changes; ``os._exit`` then ends it at once, without waiting for a job
    in progress (whose result nobody can receive any more).
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _initialise(spec: ContextSpec, threads: int, devices: Any, parent: int) -> None:
    """Runs once in every worker process, before any job."""
    global _CONTEXT
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())
    import torch

    torch.set_num_threads(max(1, threads))
    _CONTEXT = EvaluationContext(spec)


def _run(fn: StageFn, job: Any) -> Any:
    assert _CONTEXT is not None, "worker context was not initialised"
    return fn(_CONTEXT, job)


def cpu_worker_threads(workers: int) -> int:
    """Torch threads per CPU worker: the cores split between ``workers`` (0: one per core).

    The meta-test (:func:`evomal.methods.meta_test.meta_test`) trains with the
    same count when the run uses this executor, so that it repeats the final
    selection's training runs exactly: float reductions, and so a long
    training run's result, depend on the thread count.
    """
    cores = os.cpu_count() or 1
    return max(1, cores // (workers or cores))


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - no CUDA runtime
        return 0


class ProcessExecutor:
    """Runs jobs on a pool of worker processes (``--executor process``)."""

    def __init__(self, workers: int = 0) -> None:
        self.requested = workers
        self._pool: ProcessPoolExecutor | None = None
        self._spec: ContextSpec | None = None
        self._workers = 1

    def start(self, spec: ContextSpec) -> None:
        self._spec = spec
        self._open()

    def _open(self) -> None:
        assert self._spec is not None
        method = multiprocessing.get_context("spawn")
        cuda = self._spec.config.execution.device.startswith("cuda")
        gpus = _gpu_count() if cuda else 0
        cores = os.cpu_count() or 1
        n = self.requested or (gpus if gpus else cores)
        devices = None
        if gpus:
            devices = method.Manager().Queue()
            for i in range(n):
                devices.put(i % gpus)
        threads = 1 if gpus else cpu_worker_threads(n)
        self._workers = n
        self._pool = ProcessPoolExecutor(
            max_workers=n, mp_context=method, initializer=_initialise,
            initargs=(self._spec, threads, devices, os.getpid()),
        )  # fmt: skip

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: StageFn, jobs: Sequence[Any]) -> list[Any]:
        if self._pool is None:
            raise RuntimeError("executor not started: call start(spec) first")
        try:
            return list(self._pool.map(_run, [fn] * len(jobs), jobs))
        except BrokenProcessPool:
            # A worker died (killed, out of memory): rebuild the pool and run the jobs again.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._open()
            try:
                return list(self._pool.map(_run, [fn] * len(jobs), jobs))
            except BrokenProcessPool as error:
                raise RuntimeError(_BROKEN_TWICE) from error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
