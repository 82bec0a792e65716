"""The stages of a run as the threads see them: the ways a chunk can go (the model, then cheaper
fallbacks), and the weights schedule applied between chunks through ``Engine.load_weights``.

Free of torch: ``stages.py`` builds them around torch modules, ``host_stages.py`` around numpy and
ONNX Runtime alone."""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from ..config import Weights
from .plan import RunPlan
from .ring import Chunk

# A plane rescaler (``process.py``'s, or ``host.py``'s): (n, h, w) input planes -> output planes, in place.
Rescaler = Callable[[list[np.ndarray], list[np.ndarray]], None]
SHIPPED = -1  # the schedule index of the stage's own (shipped) weights


class ChunkStages:
    """Turns input chunks into output chunks: Y through the engines, chroma resampled, and the
    weights each chunk asks for (``chunk.weights``) loaded before it runs.

    ``engines``: the model stages' engines (``engines/base.py``'s Engine, or a host engine);
    ``paths`` are the ways a chunk can go, best first: the plan's model, then its fallbacks (a live
    run sends a chunk that would miss its deadline down a cheaper one).
    """

    def __init__(
        self,
        plan: RunPlan,
        engines: list,
        rescaler: Rescaler,
        states: dict[int, Mapping],
        fallbacks: tuple[Rescaler, ...] = (),
        load_entry: Callable[[Weights], Mapping] | None = None,
    ):
        self.plan = plan
        self.engines = engines
        self.rescaler = rescaler
        self.paths = (rescaler, *fallbacks)
        self.path_names = (plan.chain, *(path_name(name) for name in plan.fallbacks))
        self._states = states  # schedule index -> state dict of the single model stage
        self._load_entry = load_entry  # a later entry's weights -> its checked state dict
        self._announced = SHIPPED  # the last entry the schedule's on_swap was told of
        self._current = SHIPPED
        self.swaps = 0
        self.swap_seconds = 0.0  # spent in load_weights, all swaps together
        self.stalls = 0  # swaps whose weights had not arrived when their first frame reached the model
        self.stall_seconds = 0.0  # spent waiting for them
        self._ready_lock = threading.Lock()
        self._passed = SHIPPED  # the last streamed entry the run has moved past
        for entry, swap in enumerate(plan.weights.swaps if plan.weights is not None else ()):
            if swap.pending:  # streamed: prepared by the thread that delivers it
                swap.weights.add_done_callback(functools.partial(self._prepare_arrived, entry))

    @property
    def device(self):
        """Where the chunks are processed: a ``torch.device``, or the host rescaler's CPU."""
        return self.rescaler.device

    def weights_for(self, chunk_index: int, pts: int | None) -> int:
        """The schedule index a frame of chunk ``chunk_index`` at ``pts`` runs with."""
        schedule = self.plan.weights
        return SHIPPED if schedule is None else schedule.entry_at(chunk_index, pts)

    def await_weights(self, entry: int, cancelled: Callable[[], bool]) -> bool:
        """Make schedule entry ``entry``'s weights ready to swap in, waiting for weights still on
        their way (a stall, counted) until they come or ``cancelled()``; False if cancelled. Raises
        what fetching or checking them raised."""
        schedule = self.plan.weights
        if schedule is None or entry == SHIPPED:
            return True
        if entry > self._announced:
            self._announced = entry
            if schedule.on_swap is not None:
                schedule.on_swap(entry)
        with self._ready_lock:
            if entry in self._states:
                return True
        pending = schedule.swaps[entry].weights
        if not pending.done():
            self.stalls += 1
            started = time.perf_counter()
            while not pending.done():
                if cancelled():
                    return False
                concurrent.futures.wait([pending], timeout=0.1)
            self.stall_seconds += time.perf_counter() - started
        state = self._load_entry(pending.result())
        with self._ready_lock:
            self._states.setdefault(entry, state)
        return True

    def _prepare_arrived(self, entry: int, arrived: concurrent.futures.Future) -> None:
        """Weights that came on their way: checked and prepared in the engine (ONNX Runtime builds
        their session, seconds for a large model) by the thread that delivered them, so that the
        swap at their first frame is a lookup. Any failure is left for ``await_weights`` to raise
        on the processing thread, where it ends the run properly."""
        try:
            if arrived.cancelled() or arrived.exception() is not None:
                return
            state = self._load_entry(arrived.result())
            prepare = getattr(self.engines[0], "prepare", None)
            if prepare is not None:
                prepare(state)
            with self._ready_lock:
                if entry > self._passed:  # the run may have gone past it already
                    self._states.setdefault(entry, state)
        except Exception:  # noqa: BLE001 - raised again, properly, where the entry is awaited
            return

    def process(self, chunk: Chunk, out: Chunk, path: int = 0) -> None:
        """Rescale ``chunk``'s frames into ``out``'s planes along ``path`` (0: the model)."""
        if not chunk.count:
            return
        if path == 0 and chunk.weights != self._current:
            self.await_weights(chunk.weights, lambda: False)
            started = time.perf_counter()
            self.engines[0].load_weights(self._states[chunk.weights])
            self.swap_seconds += time.perf_counter() - started
            with self._ready_lock:
                if self._is_pending(self._current):  # a streamed entry is not needed again: time moves on
                    self._states.pop(self._current, None)
                    self._passed = max(self._passed, self._current)
            self._current = chunk.weights
            self.swaps += 1
        self.paths[path](chunk.views(), out.planes)

    def _is_pending(self, entry: int) -> bool:
        schedule = self.plan.weights
        return schedule is not None and entry != SHIPPED and schedule.swaps[entry].pending


def path_name(fallback: str) -> str:
    """ "espcn_y_x2_f16x8" -> "espcn 16,8 x2"; "bicubic" stays."""
    if not fallback.startswith("espcn_y_x"):
        return fallback
    factor, _, width = fallback[len("espcn_y_x") :].partition("_f")
    return f"espcn {width.replace('x', ',')} x{factor}"
