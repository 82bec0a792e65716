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
from ..io.decode import AvSource
from ..io.encode import AvSink, OutputSpec, check_output_path, output_format, resolve_codec
from ..io.tags import TAG, without_tag
from ..weights.store import shipped_sha
from .plan import IRN_WEIGHTS, RunPlan, make_plan
from .ring import Chunk, ChunkRing
from .stages import ChunkStages, build_stages

_END = object()


@dataclass(frozen=True)
class Progress:
    frames: int
    total: int  # 0 when unknown
    elapsed_s: float


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
    notes: tuple[str, ...] = ()  # what was assumed (e.g. the factor of an untagged irn restore)


class StreamRun:
    """The threads of one run over an opened source. ``chunks()`` yields processed chunks in order;
    give each back with :meth:`done` once written."""

    def __init__(self, source: Source, plan: RunPlan, stages: ChunkStages, stop: threading.Event | None = None):
        self.source, self.plan, self.stages = source, plan, stages
        self.stop = stop or threading.Event()  # graceful: finish the frames already decoded
        self.abort = threading.Event()  # everything down now (an error, or the consumer left)
        self.failure: BaseException | None = None
        self.stopped_early = False
        self.bad_packets = 0

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
        chunk = self._new_chunk(ring, 0)
        last_pts, step = None, self.source.facts.pts_step
        for item in self.source.items():
            if chunk is None:
                return
            if isinstance(item, Packet):
                chunk.packets.append(item)
                continue
            if isinstance(item, End):
                self.bad_packets = item.bad_packets
                break
            if self.stop.is_set():
                break
            assert isinstance(item, Frame)
            pts = item.pts if item.pts is not None else (None if last_pts is None else last_pts + step)
            last_pts = pts
            weights = self.stages.weights_for(chunk.index, pts)
            if chunk.count and weights != chunk.weights:  # one model call never spans a weights swap
                out.put(chunk)
                chunk = self._new_chunk(ring, chunk.index + 1)
                if chunk is None:
                    return
            if not chunk.count:
                chunk.weights = self.stages.weights_for(chunk.index, pts)
            for dst, src in zip(chunk.planes, item.planes):
                dst[chunk.count] = src
            chunk.pts.append(pts)
            chunk.count += 1
            if chunk.count == chunk.capacity:
                out.put(chunk)
                chunk = self._new_chunk(ring, chunk.index + 1)
        if chunk is not None and (chunk.count or chunk.packets):
            out.put(chunk)

    def _new_chunk(self, ring: ChunkRing, index: int) -> Chunk | None:
        chunk = ring.acquire(self.abort)
        if chunk is not None:
            chunk.index = index
        return chunk

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
            result = self.out_ring.acquire(self.abort)
            if result is None:
                return
            self.stages.process(chunk, result)
            result.index, result.count, result.weights = chunk.index, chunk.count, chunk.weights
            result.pts, result.packets = list(chunk.pts), list(chunk.packets)
            in_ring.release(chunk)
            outbox.put(result)


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
    source = src if isinstance(src, Source) else AvSource(src)
    try:
        facts = source.facts
        out_format = output_format(for_encode, facts.layout) if for_encode else facts.layout
        plan = make_plan(options, facts, out_format, shipped_sha(IRN_WEIGHTS)[:12])
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
    enc = dataclasses.replace(options.encode, codec=resolve_codec(options.encode.codec))
    opened = open_run(src, options, stop, for_encode=enc)
    source, plan, run = opened.source, opened.plan, opened.run
    facts = source.facts
    tags = {k: v for k, v in without_tag(source.metadata).items() if k.lower() != "encoder"}
    if plan.output_tag is not None:  # this output is a learned downscale: say so, for its inverse
        tags[TAG] = plan.output_tag.format()
    tags.update(metadata or {})
    tags.update(dict(enc.metadata))
    spec = OutputSpec(plan.dst, facts.time_base, facts.rate, facts.color, facts.rotation, source.stream_tags)
    started = time.perf_counter()
    frames = 0
    with source, AvSink(dst, spec, enc, copy_from=source, metadata=tags) as sink:
        for chunk in run.chunks():
            planes = chunk.views()
            for k in range(chunk.count):
                sink.write([p[k] for p in planes], chunk.pts[k])
            for packet in chunk.packets:
                sink.copy(packet)
            frames += chunk.count
            run.done(chunk)
            if on_progress:
                on_progress(Progress(frames, facts.frame_count, time.perf_counter() - started))
    seconds = time.perf_counter() - started
    return RunSummary(
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        model=f"{plan.model} ({plan.chain})",
        engine=opened.engine,
        input=facts.name,
        output=str(dst),
        input_size=(plan.src.width, plan.src.height),
        output_size=(plan.dst.width, plan.dst.height),
        pix_fmt=plan.dst.pix_fmt,
        bad_packets=run.bad_packets,
        interrupted=run.stopped_early,
        notes=plan.notes + _input_notes(source, run),
    )


def _input_notes(source, run: StreamRun) -> tuple[str, ...]:
    """A note when a file held clearly less than the duration its header declares (a cut download)."""
    facts, span = source.facts, getattr(source, "pts_span", None)
    if run.stopped_early or not span or not facts.rate or not facts.frame_count or not facts.time_base:
        return ()
    frame_s = 1 / float(facts.rate)
    declared, found = facts.frame_count * frame_s, float((span[1] - span[0]) * facts.time_base) + frame_s
    if found >= 0.95 * declared - frame_s:
        return ()
    return (f"the input ends early: {found:.2f} s of its declared {declared:.2f} s were found",)


def iter_planes(src, options: PipelineOptions) -> Iterator[tuple[list, int | None, OpenedRun]]:
    """Yield each rescaled frame as ((H, W) planes, pts, the opened run); the planes are views that
    stay valid until the next frame is taken."""
    opened = open_run(src, options)
    with opened.source:
        for chunk in opened.run.chunks():
            planes = chunk.views()
            for k in range(chunk.count):
                yield [p[k] for p in planes], chunk.pts[k], opened
            opened.run.done(chunk)
