"""The runner's contract and the runner of this process.

One call, ``runner.map(fn, tasks, resources, stop)``, maps a pure, picklable function over picklable
tasks and yields an :class:`Outcome` per task as each finishes; once ``stop`` is set no task starts,
and those running finish. ``fn`` must be importable by module path on every worker (a module-level
function of an installed package). A task that raises fails alone, with its one-line message.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import VsrPipeError


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


class CountTally:
    """A tally in a mapping: a dict here, a manager's dict proxy for local processes, or the state of
    the Ray actor behind ``ActorTally``."""

    def __init__(self, counts):
        self.counts = counts

    def add(self, key: str, done: int) -> None:
        self.counts[key] = done

    def total(self) -> int:
        return sum(self.counts.values())


class InProcessRunner:
    """Tasks one after another in this process: what runs without ``--ray`` and ``--workers 1``.
    ``tasks`` may be any iterable, drawn one task at a time as the last one ends."""

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
