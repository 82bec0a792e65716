"""Live scheduling, pure: which processing path a chunk takes so its frames meet their deadline,
and the added latency of every frame, kept in constant memory however long the run."""

from __future__ import annotations

import numpy as np

# A path's cost estimate, per frame, follows its recent calls; a path not taken drifts down a little
# each chunk, so it is tried again once the overload is over ("switching back when there is headroom").
EWMA_WEIGHT = 0.3
UNUSED_DECAY = 0.98
# The queue the controller keeps: the oldest waiting frame at most this many frame intervals old
# when the next chunk starts. One frame: latency near one frame's cost, not near the deadline.
TARGET_BACKLOG_FRAMES = 1.0


class PathChooser:
    """Chooses among processing paths ordered best (and dearest) first, e.g. the model, a light
    model, then bicubic, so that the queue stays short.

    ``choose`` predicts, for each path from the best down, how long the next chunk's oldest frame
    will have waited once this chunk is done: it waited ``now - oldest_arrival`` already, this chunk
    adds its cost, and the frames keep arriving one per ``interval_s``. Among the paths that meet
    the deadline (``budget_s``, the hard ceiling) and are not the last resort (the cheapest, i.e.
    bicubic) it takes the first that leaves that wait at most ``TARGET_BACKLOG_FRAMES`` intervals;
    failing that, the first that still drains the queue (a light model drains it more slowly than
    bicubic, but is a learned model); failing that, the cheapest. A path dearer than the frame
    interval is therefore taken while the queue is short and given up while it drains, so the mix of
    paths follows the rates the CPU actually gives. Costs are learnt from ``record``.
    """

    def __init__(self, names: tuple[str, ...], budget_s: float, interval_s: float = 0.0):
        self.names = names
        self.budget_s = budget_s
        self.interval_s = interval_s  # between frames; 0: unknown (a file not paced), the deadline alone
        self.cost_s: list[float | None] = [None] * len(names)  # seconds per frame
        self.counts = dict.fromkeys(names, 0)  # chunks per path

    def choose(self, now: float, oldest_arrival: float, frames: int, downstream_s: float = 0.0) -> int:
        """Path index for a chunk of ``frames`` whose oldest frame arrived at ``oldest_arrival``
        (``now``'s clock); ``downstream_s``: what encoding it and the chunks ahead of it will take."""
        waited = max(0.0, now - oldest_arrival)
        slack = self.budget_s - waited - downstream_s
        costs = [0.0 if cost is None else cost for cost in self.cost_s]  # unmeasured: try it, to measure it
        fits = [i for i, cost in enumerate(costs) if cost * frames <= slack]  # the hard ceiling
        if self.interval_s <= 0:
            return fits[0] if fits else len(self.names) - 1
        last = len(self.names) - 1  # the cheapest (bicubic): the last resort, not a way to a shorter queue
        for index in fits[: fits.index(last)] if last in fits else fits:
            if waited + frames * (costs[index] - self.interval_s) <= TARGET_BACKLOG_FRAMES * self.interval_s:
                return index  # the best path that leaves at most the target queue behind it
        for index in fits:
            if index != last and costs[index] < self.interval_s:
                return index  # past the target: the best path that still drains the queue, if slowly
        return last

    def record(self, index: int, seconds: float, frames: int) -> None:
        """A chunk of ``frames`` took ``seconds`` on path ``index``."""
        per_frame = seconds / max(frames, 1)
        old = self.cost_s[index]
        self.cost_s[index] = per_frame if old is None else old + EWMA_WEIGHT * (per_frame - old)
        for i, cost in enumerate(self.cost_s):
            if i != index and cost is not None:
                self.cost_s[i] = cost * UNUSED_DECAY
        self.counts[self.names[index]] += 1


class LatencyHistogram:
    """Added latency per frame in 1 ms bins up to a minute (beyond counts as a minute): percentiles
    without keeping every value, so memory stays flat over hours."""

    BINS = 60_000

    def __init__(self) -> None:
        self._bins = np.zeros(self.BINS + 1, dtype=np.int64)
        self.count = 0
        self.max_ms = 0.0
        self.last_ms = 0.0

    def add(self, seconds: float) -> None:
        ms = max(seconds * 1000.0, 0.0)
        self._bins[min(int(ms), self.BINS)] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)
        self.last_ms = ms

    def percentile(self, q: float) -> float:
        """The q-th percentile in ms (upper edge of its bin); 0 when empty."""
        if not self.count:
            return 0.0
        rank = int(np.ceil(q / 100 * self.count))
        return float(np.searchsorted(np.cumsum(self._bins), max(rank, 1)) + 1)

    def summary(self) -> dict[str, float]:
        return {
            "frames": self.count,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "max_ms": round(self.max_ms, 1),
        }


class Pacer:
    """When each frame of a file is due if it came from a camera: the first one now, the others at
    their timestamps' distance from it."""

    def __init__(self, time_base) -> None:
        self.time_base = float(time_base)
        self._start: tuple[float, int] | None = None

    def due(self, pts: int | None, now: float) -> float:
        if pts is None:
            return now
        if self._start is None:
            self._start = (now, pts)
        t0, pts0 = self._start
        return t0 + (pts - pts0) * self.time_base
