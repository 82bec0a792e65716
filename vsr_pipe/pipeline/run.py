"""The streaming pipeline: decoder -> processor -> encoder, three threads joined by bounded rings.

The decoder fills preallocated input chunks and blocks when none is free; the processor turns each
into an output chunk; the encoder (the calling thread) writes frames and stream-copies the packets
that were demuxed alongside them. A stop request (Ctrl-C, SIGTERM) ends decoding; the frames already
decoded are finished and the output is finalised.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av

from ..config import IRN_MAX_UP, MAX_OUTPUT_SIDE, PipelineOptions, Scale, output_size
from ..errors import InvalidOption, NotAVideo
from ..io.decode import VideoSource, color_info, frame_planes, layout_for, working_format
from ..io.encode import StreamPlan, VideoSink, pick_pix_fmt, write_planes
from ..io.layout import FrameLayout
from ..io.tags import TAG, RescaleTag, find_tag, without_tag
from ..weights.store import shipped_sha
from .build import build_rescaler
from .process import ProcessPlan
from .ring import Chunk, ChunkRing

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


class Pipeline:
    """One run over one input. ``start`` opens and plans; ``chunks`` yields processed chunks."""

    def __init__(
        self,
        src,
        options: PipelineOptions,
        out_pix_fmt: Callable[[str], str] | None = None,
        stop: threading.Event | None = None,
    ):
        self.options = options
        self.source = VideoSource(src)
        self.stop = stop or threading.Event()  # graceful: finish the frames already decoded
        self.abort = threading.Event()  # everything down now (an error, or the consumer left)
        self.failure: BaseException | None = None
        self.stopped_early = False
        try:
            self._first = self._peek_first_frame()
            self._plan(out_pix_fmt)
        except BaseException:
            self.source.close()
            raise

    def _peek_first_frame(self):
        self._items = self.source.items()
        self._early_packets = []
        for kind, item in self._items:
            if kind == "frame":
                return item
            self._early_packets.append(item)
        raise NotAVideo(f"{self.source.name}: no video frame could be decoded")

    def _plan(self, out_pix_fmt) -> None:
        first = self._first
        ctx = self.source.stream.codec_context
        self.color = color_info(first, ctx)
        work_fmt = working_format(first.format.name)
        self.src_layout = layout_for(work_fmt, first.width, first.height, self.color.range == 2)
        dst_fmt = out_pix_fmt(work_fmt) if out_pix_fmt else work_fmt
        probe = layout_for(dst_fmt, 64, 64, False)
        align_x, align_y = 1 << probe.chroma_shift_x, 1 << probe.chroma_shift_y
        o = self.options
        self.notes: list[str] = []
        tag = find_tag(self.source.container.metadata)
        model = o.model if o.model != "auto" else ("irn" if tag else "espcn")
        if o.size is not None:
            w, h = o.size
            if w % align_x or h % align_y:
                raise InvalidOption(
                    f"size {w}x{h} does not fit pixel format {dst_fmt}: use multiples of {align_x}x{align_y}"
                )
        elif o.scale is not None:
            w, h = output_size(first.width, first.height, o.scale, align_x, align_y)
        elif model == "irn" and tag is not None:
            w, h = output_size(tag.hr[0], tag.hr[1], Scale(1, 1), align_x, align_y)
        else:
            w, h = output_size(first.width, first.height, Scale(2, 2), align_x, align_y)
        if max(w, h) > MAX_OUTPUT_SIDE:
            raise InvalidOption(f"output {w}x{h} is too large: at most {MAX_OUTPUT_SIDE} pixels per side")
        self.scale = Scale(w / first.width, h / first.height)
        self.rescale_tag = None
        if model == "irn":
            w, h = self._plan_irn(tag, w, h, align_x, align_y)
        self.dst_layout = layout_for(dst_fmt, w, h, self.src_layout.full_range)
        plan = ProcessPlan(self.src_layout, self.dst_layout)
        self.rescaler, self.model_chain, self.engine_name = build_rescaler(o, plan, model)
        self.model_name = model
        self.rotation = int(first.rotation or 0)

    def _plan_irn(self, tag: RescaleTag | None, w: int, h: int, align_x: int, align_y: int) -> tuple[int, int]:
        """Check the factor irn can take; note what was assumed; say what the output's tag will be."""
        src_w, src_h = self.src_layout.width, self.src_layout.height
        if w <= src_w and h <= src_h:  # the learned downscale
            # Rounding to the pixel format's alignment must not push the factor past 4.
            while src_w / w > IRN_MAX_UP + 1e-9:
                w += align_x
            while src_h / h > IRN_MAX_UP + 1e-9:
                h += align_y
            self.rescale_tag = RescaleTag("irn_y", shipped_sha("irn_y")[:12], (src_w, src_h), (w, h))
            return w, h
        if w < src_w or h < src_h:
            raise InvalidOption(f"irn goes {src_w}x{src_h} -> {w}x{h}: both sides must shrink, or both grow")
        if max(w / src_w, h / src_h) > IRN_MAX_UP + 1e-9:
            raise InvalidOption(f"irn restores by at most {IRN_MAX_UP:g}x per side, not {w}x{h} from {src_w}x{src_h}")
        factor = f"{w / src_w:.4g}x{h / src_h:.4g}"
        if tag is None:
            self.notes.append(
                f"{self.source.name} has no rescaling tag: assuming an irn downscale by {factor} "
                f"(restoring {src_w}x{src_h} -> {w}x{h})"
            )
        elif tag.lr != (src_w, src_h) or tag.hr != (w, h):
            self.notes.append(
                f"the rescaling tag says {tag.hr[0]}x{tag.hr[1]} -> {tag.lr[0]}x{tag.lr[1]}; "
                f"restoring {src_w}x{src_h} -> {w}x{h} as asked (factor {factor})"
            )
        elif tag.weights and tag.weights != shipped_sha("irn_y")[:12]:
            self.notes.append(
                f"{self.source.name} was made with other irn weights ({tag.weights}); restoring with the shipped ones"
            )
        return w, h

    @property
    def stream_plan(self) -> StreamPlan:
        s = self.source.stream
        tags = tuple((k, v) for k, v in s.metadata.items() if k.lower() not in ("encoder", "duration", "vendor_id"))
        return StreamPlan(
            self.dst_layout, s.time_base, s.average_rate or s.guessed_rate, self.color, self.rotation, tags
        )

    def chunks(self) -> Iterator[Chunk]:
        """Yield processed output chunks in order; release each with :meth:`done` after use."""
        o = self.options
        pinned = self.rescaler.device.type == "cuda"  # page-locked slots: uploads/downloads by DMA
        in_ring = ChunkRing(self.src_layout, o.chunk_frames, o.ring_slots, pinned)
        self.out_ring = ChunkRing(self.dst_layout, o.chunk_frames, o.ring_slots, pinned)
        to_process: queue.Queue = queue.Queue()
        to_encode: queue.Queue = queue.Queue()
        workers = [
            threading.Thread(
                target=self._guard, args=(self._decode, in_ring, to_process), name="vsr-decode", daemon=True
            ),
            threading.Thread(
                target=self._guard,
                args=(self._process, in_ring, to_process, to_encode),
                name="vsr-process",
                daemon=True,
            ),
        ]
        for t in workers:
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
            self.source.close()
        if self.failure is not None:
            raise self.failure

    def done(self, chunk: Chunk) -> None:
        self.out_ring.release(chunk)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:  # handed to the encoder thread, which re-raises it
            self.failure = e
            self.abort.set()

    def _decode(self, ring: ChunkRing, out: queue.Queue) -> None:
        try:
            self._decode_chunks(ring, out)
        finally:
            out.put(_END)  # always, so the stages after this one can finish

    def _decode_chunks(self, ring: ChunkRing, out: queue.Queue) -> None:
        layout = self.src_layout
        chunk = ring.acquire(self.abort)
        if chunk is None:
            return
        chunk.packets.extend(self._early_packets)
        last_pts, step = None, _pts_step(self.source.stream)

        def frames():
            yield "frame", self._first
            yield from self._items

        for kind, item in frames():
            if kind == "packet":
                chunk.packets.append(item)
                continue
            if self.stop.is_set():
                break
            frame = item
            if frame.format.name != layout.pix_fmt or frame.width != layout.width or frame.height != layout.height:
                frame = frame.reformat(width=layout.width, height=layout.height, format=layout.pix_fmt)
            k = chunk.count
            for dst, src in zip(chunk.planes, frame_planes(frame, layout)):
                dst[k] = src
            pts = item.pts if item.pts is not None else (None if last_pts is None else last_pts + step)
            last_pts = pts
            chunk.pts.append(pts)
            chunk.count += 1
            if chunk.count == chunk.capacity:
                out.put(chunk)
                chunk = ring.acquire(self.abort)
                if chunk is None:
                    return
        if chunk.count or chunk.packets:
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
            result = self.out_ring.acquire(self.abort)
            if result is None:
                return
            if chunk.count:
                self.rescaler(chunk.views(), result.planes)
            result.count, result.pts, result.packets = chunk.count, list(chunk.pts), list(chunk.packets)
            in_ring.release(chunk)
            outbox.put(result)


def _pts_step(stream) -> int:
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.time_base:
        return max(1, int(round(1 / (rate * stream.time_base))))
    return 1


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
    from ..io.encode import check_output_path, resolve_codec

    check_output_path(dst, src)
    enc = dataclasses.replace(options.encode, codec=resolve_codec(options.encode.codec))
    pipe = Pipeline(src, options, out_pix_fmt=lambda fmt: pick_pix_fmt(enc.codec, enc.pix_fmt, fmt), stop=stop)
    total = pipe.source.info.frame_count
    tags = {k: v for k, v in without_tag(pipe.source.container.metadata).items() if k.lower() not in ("encoder",)}
    if pipe.rescale_tag is not None:  # this output is a learned downscale: say so, for its inverse
        tags[TAG] = pipe.rescale_tag.format()
    tags.update(metadata or {})
    tags.update(dict(enc.metadata))
    try:
        sink = VideoSink(dst, pipe.stream_plan, enc, pipe.source.copied_streams, tags, pipe.source.container.chapters())
    except BaseException:
        pipe.source.close()
        raise
    started = time.perf_counter()
    frames = 0
    try:
        for chunk in pipe.chunks():
            planes = chunk.views()
            for k in range(chunk.count):
                sink.write([p[k] for p in planes], chunk.pts[k])
            for packet in chunk.packets:
                sink.copy_packet(packet)
            frames += chunk.count
            pipe.done(chunk)
            if on_progress:
                on_progress(Progress(frames, total, time.perf_counter() - started))
        sink.finish()
    except BaseException:
        sink.abort()  # an error, or a second Ctrl-C: no file rather than a broken one
        raise
    seconds = time.perf_counter() - started
    return RunSummary(
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        model=f"{pipe.model_name} ({pipe.model_chain})",
        engine=pipe.engine_name,
        input=pipe.source.name,
        output=str(dst),
        input_size=(pipe.src_layout.width, pipe.src_layout.height),
        output_size=(pipe.dst_layout.width, pipe.dst_layout.height),
        pix_fmt=pipe.dst_layout.pix_fmt,
        bad_packets=pipe.source.bad_packets,
        interrupted=pipe.stopped_early,
        notes=tuple(pipe.notes),
    )


def iter_frames(src, options: PipelineOptions) -> Iterator[av.VideoFrame]:
    """Yield rescaled frames as ``av.VideoFrame`` (planar YUV, pts and time_base set)."""
    pipe = Pipeline(src, options)
    layout: FrameLayout = pipe.dst_layout
    for chunk in pipe.chunks():
        planes = chunk.views()
        for k in range(chunk.count):
            frame = av.VideoFrame(layout.width, layout.height, layout.pix_fmt)
            write_planes(frame, [p[k] for p in planes])
            frame.pts, frame.time_base = chunk.pts[k], pipe.source.stream.time_base
            yield frame
        pipe.done(chunk)
