"""Where tasks run: this process, local worker processes, or Ray.

One call, ``runner.map(fn, tasks, resources, stop)``, maps a pure, picklable function over picklable
tasks and yields an :class:`Outcome` per task as each finishes; once ``stop`` is set no task starts,
and those running finish. ``fn`` must be importable by module path on
every worker (a module-level function of an installed package). A task that raises fails alone,
with its one-line message; on Ray a task whose worker process dies is run again (Ray's
``max_retries``), and only when the retries are spent does it fail.

Nothing here knows about video: batch files, split parts and delivery's per-chunk fine-tunes all go
through the same ``map``.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import EngineUnavailable, VsrPipeError


@dataclass(frozen=True)
class TaskResources:
    """What each task asks of a worker: Ray schedules on it; local runs size threads by it."""

    num_cpus: float = 1
    num_gpus: float = 0
    max_retries: int = 3  # runs after a worker process died (Ray); errors the task raises are never retried


@dataclass(frozen=True)
class Outcome:
    """One task's end: ``value`` (what ``fn`` returned) or ``error``, a one-line message."""

    index: int
    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class Tally(Protocol):
    """Live counts from the tasks, summed where the driver is: a task calls ``add(key, done)`` with
    its own count so far (a retry simply counts again from 0); the driver reads ``total()``.
    Picklable, so it travels inside a task."""

    def add(self, key: str, done: int) -> None: ...

    def total(self) -> int: ...


class Runner(Protocol):
    workers: int  # tasks at once (0: as many as the cluster fits)

    def tally(self) -> Tally: ...

    def map(
        self,
        fn: Callable,
        tasks: Sequence,
        resources: TaskResources = TaskResources(),
        stop: threading.Event | None = None,
    ) -> Iterator[Outcome]: ...


def attempt(fn: Callable, task: Any) -> tuple[Any, str | None, float, str]:
    """Run ``fn(task)`` where the worker is: (value, error line or None, seconds, worker host:pid).
    Errors are caught here so that they fail the task once, not retried and not a traceback."""
    started = time.perf_counter()
    where = f"{socket.gethostname()}:{os.getpid()}"
    try:
        return fn(task), None, time.perf_counter() - started, where
    except VsrPipeError as e:
        return None, str(e), time.perf_counter() - started, where
    except Exception as e:  # noqa: BLE001 (one bad task must not end the others)
        return None, f"{type(e).__name__}: {e}", time.perf_counter() - started, where


class InProcessRunner:
    """Tasks one after another in this process: what runs without ``--ray`` and ``--workers 1``."""

    workers = 1

    def tally(self) -> Tally:
        return CountTally({})

    def map(
        self,
        fn: Callable,
        tasks: Sequence,
        resources: TaskResources = TaskResources(),
        stop: threading.Event | None = None,
    ) -> Iterator[Outcome]:
        for i, task in enumerate(tasks):
            if stop is not None and stop.is_set():
                return
            value, error, seconds, where = attempt(fn, task)
            yield Outcome(i, value, error, seconds, where)


class ProcessRunner:
    """Tasks on ``workers`` local processes (spawned: no threads or GPU state inherited). A worker
    that dies fails the tasks it held; there is no retry here (Ray does that)."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._manager = None

    def tally(self) -> Tally:
        """Counts in a manager process the workers reach by proxy."""
        if self._manager is None:
            self._manager = multiprocessing.get_context("spawn").Manager()
        return CountTally(self._manager.dict())

    def map(
        self,
        fn: Callable,
        tasks: Sequence,
        resources: TaskResources = TaskResources(),
        stop: threading.Event | None = None,
    ) -> Iterator[Outcome]:
        context = multiprocessing.get_context("spawn")
        pool = futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_ignore_interrupts)
        try:
            pending = {pool.submit(attempt, fn, task): i for i, task in enumerate(tasks)}
            for done in futures.as_completed(pending):
                if stop is not None and stop.is_set():
                    for waiting in pending:
                        waiting.cancel()  # only those not started yet
                i = pending[done]
                if done.cancelled():
                    continue
                try:
                    value, error, seconds, where = done.result()
                except futures.process.BrokenProcessPool:
                    yield Outcome(i, error="a worker process died (local runs do not retry; Ray does)")
                    continue
                yield Outcome(i, value, error, seconds, where)
        except BaseException:  # the caller left (an error, a second Ctrl-C): the workers go now
            workers = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            raise
        pool.shutdown(wait=True)


def _ignore_interrupts() -> None:
    """Local workers leave Ctrl-C to the driver, which stops handing out tasks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        limit = self.workers or _slots(ray, resources)  # no more in flight than can run: a stop then drops none
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


class CountTally:
    """A tally in a mapping: a dict here, a manager's dict proxy for local processes, or the state of
    the Ray actor behind :class:`ActorTally`."""

    def __init__(self, counts):
        self.counts = counts

    def add(self, key: str, done: int) -> None:
        self.counts[key] = done

    def total(self) -> int:
        return sum(self.counts.values())


class ActorTally:
    """The handle of a Ray actor holding a :class:`CountTally`."""

    def __init__(self, actor):
        self.actor = actor

    def add(self, key: str, done: int) -> None:
        self.actor.add.remote(key, done)  # fire and forget: the task never waits on the driver

    def total(self) -> int:
        import ray

        return ray.get(self.actor.total.remote())


def _slots(ray, resources: TaskResources) -> int:
    """How many such tasks the cluster can run at once now."""
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


def make_runner(ray: str | None = None, workers: int | None = None, runtime_env: dict | None = None) -> Runner:
    """``ray`` None: local (this process for one worker, else ``workers`` processes); else Ray at
    that address ("auto" or HOST:PORT)."""
    if ray:
        return RayRunner(ray, workers or 0, runtime_env)
    if not workers or workers <= 1:
        return InProcessRunner()
    return ProcessRunner(workers)
