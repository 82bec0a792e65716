"""Running a plan: the one driver of every run, a prepared run (its Source, its plan, its stages)
streamed into a Sink.

Every caller goes through here: ``run_to_file`` (the public API's upscale and rescale, batch, split,
a delivery package's LR, restore) and ``iter_planes`` (the public API's frames). Only this module
takes chunks from the run's threads (``threads.py``) and gives them back, telling the run when each
frame left and what the Sink's work cost, which a live run's deadlines are set by. A stop request
(Ctrl-C, SIGTERM) ends decoding; the frames already decoded are finished and the output finalised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np

from ..config import PipelineOptions
from ..io.base import Packet, Sink, Source
from ..io.encode import AvSink, OutputSpec, check_output_path, output_format, resolve_codec
from ..io.live import open_source
from ..io.tags import TAG, without_tag
from ..weights.shipped import manifest, shipped_sha
from .chunk_stages import ChunkStages
from .host_stages import host_stages
from .plan import IRN_WEIGHTS, RunPlan, make_plan
from .threads import StreamRun


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


@dataclass
class OpenedRun:
    """A source opened and planned, its stages built: ready to :func:`drive`."""

    source: Source
    plan: RunPlan
    run: StreamRun
    engine: str

    def close(self) -> None:
        self.source.close()


def prepare(src, options: PipelineOptions, stop: threading.Event | None = None, for_encode=None) -> OpenedRun:
    """Open ``src`` (a path, "-", a URL, or an opened :class:`Source`), plan ``options`` over it and
    build the stages; no thread starts. ``for_encode`` (EncodeOptions): plan for that encoder's
    pixel formats. Hand the result to :func:`drive` (benchmarks may time its stages alone)."""
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


def build_stages(plan: RunPlan, calibration: np.ndarray | None = None) -> tuple[ChunkStages, str]:
    """The stages of ``plan`` and the engine's name: built without torch where they can be
    (``host_stages.py``), else around torch modules (``stages.py``)."""
    built = host_stages(plan)
    if built is None:
        from .stages import build_stages as torch_stages  # torch: about a second to import

        built = torch_stages(plan, calibration)
    return built


def drive(
    opened: OpenedRun,
    sink: Sink,
    output: str = "",
    on_progress: Callable[[Progress], None] | None = None,
) -> RunSummary:
    """Stream ``opened`` into ``sink``: each frame written with its pts, the packets demuxed beside
    them copied; ``on_progress`` after each chunk. The caller opens and closes the source and the
    sink; ``output`` names the sink in the summary."""
    frames, started = 0, time.perf_counter()  # the streaming part: opening and planning are set-up

    def chunk_done(count: int) -> None:
        nonlocal frames
        frames += count
        if on_progress:
            on_progress(_progress(opened.run, frames, opened.source.facts.frame_count, time.perf_counter() - started))

    with contextlib.closing(_frames(opened.run, sink.copy, chunk_done)) as frames_out:
        for planes, pts in frames_out:
            sink.write(planes, pts)
    return _summary(opened, output, frames, time.perf_counter() - started)


def _frames(
    run: StreamRun, on_packet: Callable[[Packet], None], on_chunk: Callable[[int], None]
) -> Iterator[tuple[list[np.ndarray], int | None]]:
    """Each processed frame as ((H, W) planes, pts), views valid until the next is taken; the time
    the taker spends between frames is the Sink's, which the run is told of per chunk."""
    for chunk in run.chunks():
        began = time.perf_counter()
        planes = chunk.views()
        for k in range(chunk.count):
            yield [p[k] for p in planes], chunk.pts[k]
            run.delivered(chunk, k)
        for packet in chunk.packets:
            on_packet(packet)
        run.encoded(time.perf_counter() - began, chunk.count)
        run.done(chunk)
        on_chunk(chunk.count)


def run_to_file(
    src,
    dst,
    options: PipelineOptions,
    on_progress: Callable[[Progress], None] | None = None,
    metadata: dict | None = None,
    stop: threading.Event | None = None,
    keyframes: Collection[int] = (),
) -> RunSummary:
    """Rescale ``src`` into ``dst``; see :func:`vsr_pipe.upscale`. Setting ``stop`` ends the run
    early with a finalised output holding the frames done so far. ``keyframes``: pts of frames
    that must start a closed GOP (a delivery LR's chunk starts)."""
    check_output_path(dst, None if isinstance(src, Source) else src, options.encode.overwrite)
    live = options.live is not None
    codec = resolve_codec(options.encode.codec)
    enc = dataclasses.replace(options.encode, codec=codec, low_latency=options.encode.low_latency or live)
    opened = prepare(src, options, stop, for_encode=enc)
    source, plan = opened.source, opened.plan
    facts = source.facts
    tags = {k: v for k, v in without_tag(source.metadata).items() if k.lower() != "encoder"}
    if plan.output_tag is not None:  # this output is a learned downscale: say so, for its inverse
        tags[TAG] = plan.output_tag.format()
    tags.update(metadata or {})
    tags.update(dict(enc.metadata))
    spec = OutputSpec(plan.dst, facts.time_base, facts.rate, facts.color, facts.rotation, source.stream_tags)
    key = frozenset(keyframes)
    with source, AvSink(dst, spec, enc, copy_from=source, metadata=tags, keyframes=key) as sink:
        return drive(opened, sink, str(dst), on_progress)


def iter_planes(src, options: PipelineOptions) -> Iterator[tuple[list, int | None, OpenedRun]]:
    """Yield each rescaled frame as ((H, W) planes, pts, the opened run); the planes are views that
    stay valid until the next frame is taken. Packets (audio, subtitles) are left out."""
    opened = prepare(src, options)
    with opened.source:
        for planes, pts in _frames(opened.run, lambda packet: None, lambda count: None):
            yield planes, pts, opened


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
    # fps counts the frames' time, not a wait at the end for data that never came.
    busy = max(1e-9, seconds - getattr(source, "idle_tail_s", 0.0))
    return RunSummary(
        frames=frames,
        seconds=seconds,
        fps=frames / busy if frames else 0.0,
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
        notes=plan.notes + _input_notes(source, run) + _concealment_notes(source) + _ended_notes(source),
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


def _ended_notes(source) -> tuple[str, ...]:
    ended = getattr(source, "ended", None)
    return (ended,) if isinstance(ended, str) else ()


def _concealment_notes(source) -> tuple[str, ...]:
    """A note when the decoder hid damage: the run succeeds, but those frames show it."""
    corrupt = getattr(source, "corrupt_frames", 0)
    were = "frame was" if corrupt == 1 else "frames were"
    return (f"{corrupt} {were} decoded with errors (concealed by the decoder)",) if corrupt else ()
