"""The threads of a run: decoder -> processor -> the caller, joined by bounded rings.

The decoder fills preallocated input chunks from the Source and blocks when none is free; the
processor turns each into an output chunk through the stages; the caller's thread (the driver,
``run.py``, and nothing else) takes the output chunks and the packets demuxed alongside them. A
stop request (Ctrl-C, SIGTERM) ends decoding; the frames already decoded are finished.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ..io.base import End, Frame, Packet, Source
from .chunk_stages import ChunkStages
from .deadline import LatencyHistogram, Pacer, PathChooser
from .plan import RunPlan
from .ring import Chunk, ChunkRing, allocate_chunk

_END = object()


class StreamRun:
    """The threads of one run over an opened source. ``chunks()`` yields processed chunks in order;
    give each back with :meth:`done` once written, after calling :meth:`delivered` per frame."""

    def __init__(self, source: Source, plan: RunPlan, stages: ChunkStages, stop: threading.Event | None = None):
        self.source, self.plan, self.stages = source, plan, stages
        self.stop = stop or threading.Event()  # graceful: finish the frames already decoded
        self.abort = threading.Event()  # everything down now (an error, or the consumer left)
        self.failure: BaseException | None = None
        self.stopped_early = False
        self.bad_packets = 0
        self.dropped = 0  # frames dropped for want of room (live, with drop)
        self.latency = LatencyHistogram()
        self.path_frames = dict.fromkeys(stages.path_names, 0)
        budget = plan.live.max_latency_ms / 1000 if plan.live else 0.0
        rate = source.facts.rate
        interval = float(1 / rate) if rate else 0.0  # a live input's frames come at its frame rate
        self.chooser = PathChooser(stages.path_names, budget, interval) if plan.live and len(stages.paths) > 1 else None
        self._encode_cost_s = 0.0  # per frame, as the consumer reports it
        self._queued_frames = 0  # processed but not yet written
        if plan.live is not None:
            self._warm_up()

    def _warm_up(self) -> None:
        """Run every path once before the first frame is due, so a live run does not start late
        (first calls build kernels and caches), and the path chooser starts from measured costs."""
        frames = self.plan.chunk_frames
        chunk, out = allocate_chunk(self.plan.src, frames), allocate_chunk(self.plan.dst, frames)
        chunk.count = frames
        for path in range(len(self.stages.paths)):
            for attempt in range(2):
                started = time.perf_counter()
                self.stages.process(chunk, out, path)
                if attempt and self.chooser is not None:
                    self.chooser.cost_s[path] = (time.perf_counter() - started) / frames
        for engine in self.stages.engines:  # a recurrent model forgets the blank warm-up frames
            if hasattr(engine, "reset"):
                engine.reset()

    def chunks(self) -> Iterator[Chunk]:
        plan = self.plan
        pinned = self.stages.device.type == "cuda"  # page-locked slots: uploads/downloads by DMA
        in_ring = ChunkRing(plan.src, plan.chunk_frames, plan.ring_slots, pinned)
        self.out_ring = ChunkRing(plan.dst, plan.chunk_frames, plan.ring_slots, pinned)
        to_process: queue.Queue = queue.Queue()
        to_encode: queue.Queue = queue.Queue()
        workers = [
            threading.Thread(target=self._guard, args=(self._decode, in_ring, to_process), name="vsr-decode"),
            threading.Thread(
                target=self._guard, args=(self._process, in_ring, to_process, to_encode), name="vsr-process"
            ),
        ]
        for t in workers:
            t.daemon = True
            t.start()
        try:
            while True:
                try:
                    item = to_encode.get(timeout=0.1)
                except queue.Empty:
                    if self.failure is not None:
                        break
                    continue
                if item is _END:
                    self.stopped_early = self.stop.is_set()
                    break
                yield item
        finally:
            self.abort.set()  # no-op after a clean end; unblocks the workers otherwise
            self.stop.set()
            for t in workers:
                t.join(timeout=30)
        if self.failure is not None:
            raise self.failure

    def delivered(self, chunk: Chunk, frame: int) -> None:
        """Frame ``frame`` of ``chunk`` has left (encoded and muxed, or handed to the caller)."""
        self.latency.add(time.monotonic() - chunk.arrivals[frame])

    def encoded(self, seconds: float, frames: int) -> None:
        """The consumer spent ``seconds`` on ``frames`` frames: what the deadline must leave it."""
        if frames:
            per_frame = seconds / frames
            self._encode_cost_s += 0.3 * (per_frame - self._encode_cost_s)
            self._queued_frames = max(0, self._queued_frames - frames)

    def done(self, chunk: Chunk) -> None:
        self.out_ring.release(chunk)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:  # handed to the consumer's thread, which re-raises it
            self.failure = e
            self.abort.set()

    def _decode(self, ring: ChunkRing, out: queue.Queue) -> None:
        try:
            self._decode_chunks(ring, out)
        finally:
            out.put(_END)  # always, so the stages after this one can finish

    def _decode_chunks(self, ring: ChunkRing, out: queue.Queue) -> None:
        chunk: Chunk | None = None
        index = 0  # of the next chunk
        pending: list = []  # packets demuxed while no chunk was open
        last_pts, step = None, self.source.facts.pts_step
        pacer = Pacer(self.source.facts.time_base) if self.plan.realtime else None
        drop = self.plan.live is not None and self.plan.live.drop
        for item in self.source.items():
            if isinstance(item, Packet):
                (chunk.packets if chunk is not None else pending).append(item)
                continue
            if isinstance(item, End):
                self.bad_packets = item.bad_packets
                break
            if self.stop.is_set() or self.abort.is_set():
                break
            assert isinstance(item, Frame)
            pts = item.pts if item.pts is not None else (None if last_pts is None else last_pts + step)
            last_pts = pts
            arrival = time.monotonic()
            if pacer is not None:  # a file standing in for a camera: each frame when it is due
                arrival = pacer.due(pts, arrival)
                if self.stop.wait(max(0.0, arrival - time.monotonic())):
                    break
            weights = self.stages.weights_for(chunk.index if chunk is not None else index, pts)
            if chunk is not None and weights != chunk.weights:  # one model call never spans a weights swap
                out.put(chunk)
                chunk = None
            if chunk is None:
                chunk = ring.try_acquire() if drop else ring.acquire(self.abort)
                if chunk is None:
                    if self.abort.is_set():
                        return
                    self.dropped += 1  # no room: the stated choice is to drop, and count
                    continue
                chunk.index, index = index, index + 1
                chunk.weights = self.stages.weights_for(chunk.index, pts)
                chunk.packets.extend(pending)
                pending.clear()
            for dst, src in zip(chunk.planes, item.planes):
                dst[chunk.count] = src
            chunk.pts.append(pts)
            chunk.arrivals.append(arrival)
            chunk.count += 1
            if chunk.count == chunk.capacity:
                out.put(chunk)
                chunk = None
        if chunk is None and pending:
            chunk = ring.acquire(self.abort)
            if chunk is None:
                return
            chunk.index = index
            chunk.packets.extend(pending)
        if chunk is not None and (chunk.count or chunk.packets):
            out.put(chunk)

    def _process(self, in_ring: ChunkRing, inbox: queue.Queue, outbox: queue.Queue) -> None:
        while not self.abort.is_set():
            try:
                chunk = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if chunk is _END:
                outbox.put(_END)
                return
            if self.stop.is_set():  # stopping: the chunk in the engine was the last one; queued ones are dropped
                in_ring.release(chunk)
                continue
            path = self._choose_path(chunk)
            # Weights still on their way are waited for: these frames are never made with others.
            if path == 0 and not self.stages.await_weights(chunk.weights, self._halted):
                in_ring.release(chunk)
                continue
            result = self.out_ring.acquire(self.abort)
            if result is None:
                return
            started = time.perf_counter()
            self.stages.process(chunk, result, path)
            if self.chooser is not None and chunk.count:
                self.chooser.record(path, time.perf_counter() - started, chunk.count)
            self.path_frames[self.stages.path_names[path]] += chunk.count
            result.index, result.count, result.weights = chunk.index, chunk.count, chunk.weights
            result.pts, result.arrivals = list(chunk.pts), list(chunk.arrivals)
            result.packets = list(chunk.packets)
            in_ring.release(chunk)
            self._queued_frames += result.count
            outbox.put(result)

    def _halted(self) -> bool:
        return self.abort.is_set() or self.stop.is_set()

    def _choose_path(self, chunk: Chunk) -> int:
        """0 (the model) unless a live chunk would grow the queue past a frame or miss its deadline."""
        if self.chooser is None or not chunk.count:
            return 0
        downstream = self._encode_cost_s * (self._queued_frames + chunk.count)
        return self.chooser.choose(time.monotonic(), chunk.arrivals[0], chunk.count, downstream)
