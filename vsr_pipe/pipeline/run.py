"""Running a plan: decoder -> processor -> encoder, three threads joined by bounded rings.

The decoder fills preallocated input chunks from the Source and blocks when none is free; the
processor turns each into an output chunk through the stages; the caller's thread takes the output
chunks (and the packets demuxed alongside them) to the Sink. A stop request (Ctrl-C, SIGTERM) ends
decoding; the frames already decoded are finished and the output is finalised.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..config import PipelineOptions
from ..io.base import End, Frame, Packet, Source
from ..io.encode import AvSink, OutputSpec, check_output_path, output_format, resolve_codec
from ..io.live import open_source
from ..io.tags import TAG, without_tag
from ..weights.store import manifest, shipped_sha
from .deadline import LatencyHistogram, Pacer, PathChooser
from .plan import IRN_WEIGHTS, RunPlan, make_plan
from .ring import Chunk, ChunkRing, allocate_chunk
from .stages import ChunkStages, build_stages

_END = object()


@dataclass(frozen=True)
class Progress:
    frames: int
    total: int  # 0 when unknown
    elapsed_s: float
    latency_ms: float | None = None  # live: the median added latency so far
    fallback_frames: int = 0  # live: frames that took a cheaper path than the model
    dropped: int = 0
    output_size: tuple[int, int] | None = None  # (width, height) of the frames written


@dataclass(frozen=True)
class RunSummary:
    """What a finished (or interrupted) run did."""

    frames: int
    seconds: float
    fps: float
    model: str
    engine: str
    input: str
    output: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    pix_fmt: str
    bad_packets: int
    interrupted: bool
    corrupt_frames: int = 0  # decoded with errors the decoder concealed (damaged data, no packet refused)
    notes: tuple[str, ...] = ()  # what was assumed (e.g. the factor of an untagged irn restore)
    latency_ms: dict | None = None  # live: added latency per frame, arrival to output (p50/p95/p99/max)
    paths: dict | None = None  # live: frames per processing path (the model, then its fallbacks)
    dropped: int = 0  # live with drop: frames dropped for want of room
    reconnects: int = 0  # network input: outages survived
    lost: str | None = None  # network input: why it was given up, if it was
    weight_stalls: int = 0  # weight swaps that waited for their weights to arrive (streamed packages)
    weight_wait_s: float = 0.0  # how long those waits took together


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
        self.chooser = PathChooser(stages.path_names, budget) if plan.live and len(stages.paths) > 1 else None
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
        """0 (the model) unless a live chunk would miss its deadline that way."""
        if self.chooser is None or not chunk.count:
            return 0
        downstream = self._encode_cost_s * (self._queued_frames + chunk.count)
        return self.chooser.choose(time.monotonic(), chunk.arrivals[0], chunk.count, downstream)


@dataclass
class OpenedRun:
    """A source opened and planned, its stages built: ready to stream."""

    source: Source
    plan: RunPlan
    run: StreamRun
    engine: str

    def close(self) -> None:
        self.source.close()


def open_run(src, options: PipelineOptions, stop: threading.Event | None = None, for_encode=None) -> OpenedRun:
    """Open ``src`` (a path, "-", a URL, or an already opened :class:`Source`), plan ``options``
    over it, build the stages. ``for_encode`` (EncodeOptions): plan for that encoder's pixel
    formats; None keeps the decoded format."""
    source = src if isinstance(src, Source) else open_source(src, options.source, low_delay=options.live is not None)
    try:
        facts = source.facts
        out_format = output_format(for_encode, facts.layout) if for_encode else facts.layout
        plan = make_plan(options, facts, out_format, shipped_sha(IRN_WEIGHTS)[:12], frozenset(manifest()))
        stages, engine = build_stages(plan, calibration=source.preview().planes[0])
    except BaseException:
        source.close()
        raise
    return OpenedRun(source, plan, StreamRun(source, plan, stages, stop), engine)


def run_to_file(
    src,
    dst,
    options: PipelineOptions,
    on_progress: Callable[[Progress], None] | None = None,
    metadata: dict | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Rescale ``src`` into ``dst``; see :func:`vsr_pipe.upscale`. Setting ``stop`` ends the run
    early with a finalised output holding the frames done so far."""
    check_output_path(dst, None if isinstance(src, Source) else src)
    live = options.live is not None
    codec = resolve_codec(options.encode.codec)
    enc = dataclasses.replace(options.encode, codec=codec, low_latency=options.encode.low_latency or live)
    opened = open_run(src, options, stop, for_encode=enc)
    source, plan, run = opened.source, opened.plan, opened.run
    facts = source.facts
    tags = {k: v for k, v in without_tag(source.metadata).items() if k.lower() != "encoder"}
    if plan.output_tag is not None:  # this output is a learned downscale: say so, for its inverse
        tags[TAG] = plan.output_tag.format()
    tags.update(metadata or {})
    tags.update(dict(enc.metadata))
    spec = OutputSpec(plan.dst, facts.time_base, facts.rate, facts.color, facts.rotation, source.stream_tags)
    frames = 0
    with source, AvSink(dst, spec, enc, copy_from=source, metadata=tags) as sink:
        started = time.perf_counter()  # the streaming part: opening and planning are set-up
        for chunk in run.chunks():
            began = time.perf_counter()
            planes = chunk.views()
            for k in range(chunk.count):
                sink.write([p[k] for p in planes], chunk.pts[k])
                run.delivered(chunk, k)
            for packet in chunk.packets:
                sink.copy(packet)
            run.encoded(time.perf_counter() - began, chunk.count)
            frames += chunk.count
            run.done(chunk)
            if on_progress:
                on_progress(_progress(run, frames, facts.frame_count, time.perf_counter() - started))
    return _summary(opened, str(dst), frames, time.perf_counter() - started)


def _progress(run: StreamRun, frames: int, total: int, elapsed: float) -> Progress:
    size = (run.plan.dst.width, run.plan.dst.height)
    if run.plan.live is None:
        return Progress(frames, total, elapsed, output_size=size)
    fallback = sum(n for name, n in run.path_frames.items() if name != run.stages.path_names[0])
    return Progress(frames, total, elapsed, run.latency.percentile(50), fallback, run.dropped, size)


def _summary(opened: OpenedRun, output: str, frames: int, seconds: float) -> RunSummary:
    source, plan, run = opened.source, opened.plan, opened.run
    lost = getattr(source, "lost", None)
    live = plan.live is not None
    return RunSummary(
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        model=f"{plan.model} ({plan.chain})",
        engine=opened.engine,
        input=source.facts.name,
        output=output,
        input_size=(plan.src.width, plan.src.height),
        output_size=(plan.dst.width, plan.dst.height),
        pix_fmt=plan.dst.pix_fmt,
        bad_packets=run.bad_packets,
        interrupted=run.stopped_early,
        corrupt_frames=getattr(source, "corrupt_frames", 0),
        notes=plan.notes + _input_notes(source, run) + _concealment_notes(source),
        latency_ms=run.latency.summary() if live or plan.realtime else None,
        paths=dict(run.path_frames) if live else None,
        dropped=run.dropped,
        reconnects=getattr(source, "reconnects", 0),
        lost=lost,
        weight_stalls=run.stages.stalls,
        weight_wait_s=round(run.stages.stall_seconds, 3),
    )


def _input_notes(source, run: StreamRun) -> tuple[str, ...]:
    """A note when a file held clearly less than the duration its header declares (a cut download)."""
    facts, span = source.facts, getattr(source, "pts_span", None)
    if run.stopped_early or not span or not facts.rate or not facts.frame_count or not facts.time_base:
        return ()
    # The frame count is the declared duration times a rate that may be off: a tenth and 0.1 s of slack.
    declared, found = facts.frame_count / float(facts.rate), float((span[1] - span[0]) * facts.time_base)
    if found >= 0.9 * declared - 0.1:
        return ()
    return (f"the input ends early: {found:.2f} s of its declared {declared:.2f} s were found",)


def _concealment_notes(source) -> tuple[str, ...]:
    """A note when the decoder hid damage: the run succeeds, but those frames show it."""
    corrupt = getattr(source, "corrupt_frames", 0)
    were = "frame was" if corrupt == 1 else "frames were"
    return (f"{corrupt} {were} decoded with errors (concealed by the decoder)",) if corrupt else ()


def iter_planes(src, options: PipelineOptions) -> Iterator[tuple[list, int | None, OpenedRun]]:
    """Yield each rescaled frame as ((H, W) planes, pts, the opened run); the planes are views that
    stay valid until the next frame is taken."""
    opened = open_run(src, options)
    with opened.source:
        for chunk in opened.run.chunks():
            planes = chunk.views()
            for k in range(chunk.count):
                opened.run.delivered(chunk, k)
                yield [p[k] for p in planes], chunk.pts[k], opened
            opened.run.done(chunk)
