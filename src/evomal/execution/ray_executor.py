"""Ray: candidates on many cores, GPUs and machines (``--executor ray``).

Install with ``pip install "evomal[ray]"``. ``start`` connects to a running
cluster (``address="auto"``, as after ``ray start --head`` or under SLURM) or
starts a local one, puts the run's context spec into the object store once,
and creates one actor per worker slot (one GPU each when the device is
CUDA). Each actor builds its evaluation context from the shared object once,
so the dataset travels to each node once, not with every candidate.

Fault tolerance: actors restart when their process dies
(``max_restarts``), and a call that was running on a dead actor is retried
on the restarted one (``max_task_retries``). Stage functions are pure
functions of the context and the job, so a retried candidate gives exactly
the result it would have given the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evomal.errors import ConfigError
from evomal.execution.base import StageFn
from evomal.execution.context import ContextSpec, EvaluationContext

MAX_RESTARTS = 4
MAX_TASK_RETRIES = 4


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            'the ray executor needs Ray: pip install "evomal[ray]" (or use --executor process)'
        ) from None
    return ray


class _Worker:
    """A Ray actor holding one evaluation context."""

    def __init__(self, spec: ContextSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.context = EvaluationContext(spec)

    def run(self, fn: StageFn, job: Any) -> Any:
        return fn(self.context, job)

    def pid(self) -> int:
        import os

        return os.getpid()


class RayExecutor:
    """Runs jobs on Ray actors, retrying those whose worker died."""

    def __init__(
        self, address: str | None = None, workers: int = 0, cpus_per_worker: int = 1
    ) -> None:
        self.address = address
        self.requested = workers
        self.cpus_per_worker = cpus_per_worker
        self.actors: list[Any] = []
        self._spec_ref: Any = None
        self._started_ray = False

    def start(self, spec: ContextSpec) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        cuda = spec.config.execution.device.startswith("cuda")
        resources = ray.cluster_resources()
        slots = (
            int(resources.get("GPU", 0))
            if cuda
            else int(resources.get("CPU", 1)) // self.cpus_per_worker
        )
        n = self.requested or max(1, slots)
        # One copy in the object store, shared by every actor; kept referenced so that
        # restarted actors can rebuild their context from it.
        self._spec_ref = spec_ref = ray.put(spec)
        actor = ray.remote(
            num_cpus=self.cpus_per_worker, num_gpus=1 if cuda else 0,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
        )(_Worker)  # fmt: skip
        self.actors = [actor.remote(spec_ref, self.cpus_per_worker) for _ in range(n)]

    @property
    def workers(self) -> int:
        return max(1, len(self.actors))

    def map(self, fn: StageFn, jobs: Sequence[Any]) -> list[Any]:
        if not self.actors:
            raise RuntimeError("executor not started: call start(spec) first")
        _import_ray()
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        return list(pool.map(lambda a, job: a.run.remote(fn, job), list(jobs)))

    def worker_pids(self) -> list[int]:
        """Process ids of the actors (for monitoring and fault-injection tests)."""
        ray = _import_ray()
        return list(ray.get([a.pid.remote() for a in self.actors]))

    def close(self) -> None:
        ray = _import_ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._spec_ref = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
