"""Tasks on local worker processes."""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

from .base import CountTally, Outcome, Tally, TaskResources, attempt


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
