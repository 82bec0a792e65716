"""Tasks as Ray tasks on a cluster; on Ray a task whose worker process dies is run again (Ray's
``max_retries``), and only when the retries are spent does it fail. Ray is imported when used."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ..errors import EngineUnavailable
from .base import CountTally, Outcome, Tally, TaskResources, attempt


class RayRunner:
    """Tasks as Ray tasks on a cluster: ``address`` "auto" joins the cluster this machine belongs to
    (``ray start`` ran here, or RAY_ADDRESS is set) or else starts a local one; any other value is a
    cluster address (``HOST:6379``, ``ray://HOST:10001``). An already initialised Ray is used as it
    is. ``workers`` > 0 caps the tasks in flight; 0 lets Ray run as many as the resources fit.
    ``runtime_env`` is Ray's (e.g. ``{"pip": ["vsr-pipe[ray]"]}`` to install the package on the
    workers)."""

    def __init__(self, address: str = "auto", workers: int = 0, runtime_env: dict | None = None):
        self.address, self.workers, self.runtime_env = address, max(0, workers), runtime_env

    def connect(self):
        ray = _import_ray()
        if ray.is_initialized():
            return ray
        kw: dict = {"runtime_env": self.runtime_env} if self.runtime_env else {}
        # Ray's driver log lines (its token notice, "Started a local Ray instance") are not ours to print.
        kw |= {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if self.address == "auto":
            try:
                ray.init(address="auto", **kw)
            except ConnectionError:
                ray.init(num_cpus=self.workers or None, **kw)
        else:
            ray.init(address=self.address, **kw)
        return ray

    def tally(self) -> Tally:
        """Counts held by a Ray actor (no CPU asked); tasks call it without waiting."""
        ray = self.connect()
        return ActorTally(ray.remote(num_cpus=0)(CountTally).remote({}))

    def map(
        self,
        fn: Callable,
        tasks: Sequence,
        resources: TaskResources = TaskResources(),
        stop: threading.Event | None = None,
    ) -> Iterator[Outcome]:
        ray = self.connect()
        remote = ray.remote(attempt).options(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_retries=resources.max_retries
        )
        fn_ref = ray.put(fn)  # once in the object store, not once per task
        limit = self.workers or cluster_slots(ray, resources)  # no more in flight than can run: a stop then drops none
        queue = list(enumerate(tasks))
        in_flight: dict = {}
        started: dict = {}
        try:
            while in_flight or (queue and not (stop is not None and stop.is_set())):
                while queue and len(in_flight) < limit and not (stop is not None and stop.is_set()):
                    i, task = queue.pop(0)
                    ref = remote.remote(fn_ref, task)
                    in_flight[ref], started[ref] = i, time.perf_counter()
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                ref = ready[0]
                i = in_flight.pop(ref)
                seconds = time.perf_counter() - started.pop(ref)
                try:
                    value, error, seconds, where = ray.get(ref)
                except ray.exceptions.RayError as e:
                    yield Outcome(i, error=_ray_failure(e, resources), seconds=seconds)
                    continue
                yield Outcome(i, value, error, seconds, where)
        finally:
            for ref in in_flight:  # left early (a stop, an error): nothing keeps running for nobody
                ray.cancel(ref, force=True)


class ActorTally:
    """The handle of a Ray actor holding a :class:`CountTally`."""

    def __init__(self, actor):
        self.actor = actor

    def add(self, key: str, done: int) -> None:
        self.actor.add.remote(key, done)  # fire and forget: the task never waits on the driver

    def total(self) -> int:
        import ray

        return ray.get(self.actor.total.remote())


def cluster_slots(ray, resources: TaskResources) -> int:
    """How many tasks asking ``resources`` the cluster of ``ray`` (a connected Ray module,
    :meth:`RayRunner.connect`) can run at once now."""
    total = ray.cluster_resources()
    slots = total.get("CPU", 1) / resources.num_cpus if resources.num_cpus else float("inf")
    if resources.num_gpus:
        slots = min(slots, total.get("GPU", 0) / resources.num_gpus)
    return max(1, int(slots)) if slots != float("inf") else 1 << 20


def _ray_failure(error: Exception, resources: TaskResources) -> str:
    ray = _import_ray()
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"its worker process died {resources.max_retries + 1} time(s) (retries spent)"
    if isinstance(error, ray.exceptions.NodeDiedError):
        return "its node left the cluster (retries spent)"
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineUnavailable("--ray needs Ray: pip install 'vsr-pipe[ray]'") from None
    return ray
