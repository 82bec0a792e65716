"""Time ranges of one video, for split runs: where it can be cut, a Source over one range, and the
join of the encoded parts into one file without re-encoding.

A *clean cut* is a keyframe the demuxer flags (``packet.is_keyframe``) such that every video packet
before it in decode order shows an earlier frame and every packet from it on a later or equal one:
decoding from that packet alone yields exactly the frames with pts >= its pts. Part ``k`` holds the
frames with pts in ``[cut_k, cut_k+1)``; the parts share the source's time base.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import NotAVideo, OutputError, UnsupportedInput
from .base import End, Frame, SourceItem
from .decode import AvSource, SourceSpec, frame_planes

PART_SUFFIX = ".nut"  # NUT keeps any time base exactly, so part timestamps survive the round trip


@dataclass(frozen=True)
class Cut:
    """A clean cut: the keyframe's pts and dts (source time base) and how many frames come before."""

    pts: int
    dts: int | None
    frames_before: int


@dataclass(frozen=True)
class KeyframeIndex:
    """Where a video can be cut: ``cuts`` in order (the start of the file is not one), and its frame
    count as packets (0 frames: the index could not be read)."""

    time_base: Fraction
    frames: int
    cuts: tuple[Cut, ...]

    def choose(self, parts: int) -> tuple[Cut, ...]:
        """At most ``parts - 1`` cuts that split the frames most evenly."""
        if parts <= 1 or not self.cuts:
            return ()
        chosen: list[Cut] = []
        for k in range(1, parts):
            target = k * self.frames / parts
            best = min(self.cuts, key=lambda c: abs(c.frames_before - target))
            if best not in chosen and (not chosen or best.frames_before > chosen[-1].frames_before):
                chosen.append(best)
        return tuple(chosen)


def index_keyframes(spec: SourceSpec) -> KeyframeIndex:
    """Demux (no decoding) the video stream of ``spec`` and list its clean cuts."""
    with AvSource(spec) as probe:
        container, stream = probe.container, probe.stream
        try:
            container.seek(0, stream=stream, backward=True)  # opening decoded the first frame: rewind
        except av.error.FFmpegError as e:
            raise UnsupportedInput(
                f"{probe.name} cannot be split in time: it cannot be read again from the start ({e})"
            ) from None
        packets: list[tuple[int | None, int | None, bool]] = []
        try:
            for packet in container.demux(stream):
                if packet.size:
                    packets.append((packet.pts, packet.dts, bool(packet.is_keyframe)))
        except av.error.FFmpegError:
            pass  # a damaged tail: cut only in the part read
        time_base = stream.time_base
    if any(p[0] is None for p in packets):
        return KeyframeIndex(time_base, len(packets), ())  # no timestamps to cut by
    later_min = [0] * len(packets)
    low = None
    for i in range(len(packets) - 1, -1, -1):
        low = packets[i][0] if low is None else min(low, packets[i][0])
        later_min[i] = low
    cuts, high = [], None
    for i, (pts, dts, key) in enumerate(packets):
        if key and i and high < pts <= later_min[i]:
            cuts.append(Cut(pts, dts, i))
        high = pts if high is None else max(high, pts)
    return KeyframeIndex(time_base, len(packets), tuple(cuts))


class SegmentSource:
    """The frames of ``spec`` with pts in ``[start.pts, end_pts)``, with their original pts, as a
    :class:`~vsr_pipe.io.base.Source`; no other streams (the join copies those once).

    ``start`` None: from the first frame; ``end_pts`` None: to the end. ``frames`` is the range's
    frame count for progress (0: unknown); ``options`` and ``format`` are FFmpeg's, for opening it.
    Seeks to the keyframe, never decodes before it.
    """

    copied_streams: list = []
    first_pts: int | None = None  # the pts of the first frame yielded, once it is

    def __init__(
        self,
        spec: SourceSpec,
        start: Cut | None,
        end_pts: int | None,
        frames: int = 0,
        options: tuple[tuple[str, str], ...] = (),
        format: str | None = None,
    ):
        self._base = AvSource(spec, options, format)
        self.start, self.end_pts = start, end_pts
        self.facts = dataclasses.replace(self._base.facts, frame_count=frames or self._base.facts.frame_count)
        self.name = self._base.name
        self._bad = 0

    @property
    def metadata(self) -> dict:
        return self._base.metadata

    @property
    def stream_tags(self) -> tuple[tuple[str, str], ...]:
        return self._base.stream_tags

    def chapters(self) -> list:
        return []

    def preview(self) -> Frame:
        return self._base.preview()

    def close(self) -> None:
        self._base.close()

    def __enter__(self) -> SegmentSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def items(self) -> Iterator[SourceItem]:
        frames = self._from_start() if self.start is None else self._from_cut(self.start)
        bad = 0
        for frame in frames:
            if isinstance(frame, End):
                bad = frame.bad_packets
                break
            if frame.pts is not None and self.start is not None and frame.pts < self.start.pts:
                continue  # not in a clean cut's range; kept out for exactness
            if self.end_pts is not None and frame.pts is not None and frame.pts >= self.end_pts:
                break
            if self.first_pts is None:
                self.first_pts = frame.pts
            yield frame
        yield End(bad + self._bad)

    def _from_start(self) -> Iterator[Frame | End]:
        for item in self._base.items():
            if isinstance(item, (Frame, End)):
                yield item

    def _from_cut(self, cut: Cut) -> Iterator[Frame | End]:
        packets = self._packets_from(cut, cut.dts if cut.dts is not None else cut.pts)
        if packets is None:
            packets = self._packets_from(cut, None)  # the seek landed past it: read from the start
        if packets is None:
            raise NotAVideo(f"{self.name}: keyframe at pts {cut.pts} not found again (is the file changing?)")
        for packet in packets:
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self._bad += 1
                continue
            for frame in decoded:
                yield self._as_frame(frame)
        yield End(0)

    def _packets_from(self, cut: Cut, target: int | None):
        """The video packets from the cut's keyframe on, or None when the seek went past it."""
        container, stream = self._base.container, self._base.stream
        container.seek(target if target is not None else 0, stream=stream, backward=True)
        demuxer = container.demux(stream)
        for packet in demuxer:
            if packet.is_keyframe and packet.pts == cut.pts:
                return _chain(packet, demuxer)
            if packet.pts is not None and packet.pts >= cut.pts:
                return None  # a clean cut has only earlier frames before it: this is past it
        return None

    def _as_frame(self, frame: av.VideoFrame) -> Frame:
        layout = self.facts.layout
        if frame.format.name != layout.pix_fmt or frame.width != layout.width or frame.height != layout.height:
            frame = frame.reformat(width=layout.width, height=layout.height, format=layout.pix_fmt)
        return Frame(tuple(frame_planes(frame, layout)), frame.pts)


def _chain(first, rest):
    yield first
    try:
        yield from rest
    except av.error.FFmpegError:
        return  # a damaged tail ends the range, as it ends a whole-file run


def join_parts(
    parts: list[str | os.PathLike],
    starts: list[int],
    source: SourceSpec,
    dst: str | os.PathLike,
    container_format: str | None = None,
    timelines: list[tuple[Fraction, list[int]]] | None = None,
) -> int:
    """Join encoded parts (in time order, each starting with a keyframe) into ``dst`` without
    re-encoding: the video packets keep their pts, decode timestamps are rebuilt across the seams,
    and the audio and subtitle packets of ``source`` are copied once. ``starts`` are the pts of each
    part's first frame in the source's time base (a part muxer may have shifted them to keep its
    dts non-negative). ``timelines``: each part's :func:`part_timeline`, where the workers read them
    already (else the parts are read twice here). Tags come from the first part. Written to a
    temporary file beside ``dst`` and renamed when complete. Returns the frame count."""
    target = Path(dst)
    temp = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    with AvSource(source) as probe:
        facts = probe.facts  # what a whole-file run tags its video stream with
    timelines = timelines or [part_timeline(p) for p in parts]
    delay, orders, shifts = _timelines(timelines, starts, facts.time_base)
    opened = [av.open(str(p)) for p in parts]
    try:
        with av.open(str(source)) as src:
            _check_parts_match(opened)
            template = opened[0].streams.video[0]
            try:
                out = av.open(str(temp), "w", format=container_format)
            except (av.error.FFmpegError, ValueError, OSError) as e:
                raise OutputError(f"cannot create {dst}: {e}") from None
            try:
                frames = _mux_all(out, template, facts, opened, src, delay, orders, shifts)
                out.close()
            except BaseException:
                out.close()
                temp.unlink(missing_ok=True)
                raise
    finally:
        for c in opened:
            c.close()
    os.replace(temp, target)
    return frames


def part_timeline(path: str | os.PathLike) -> tuple[Fraction, list[int]]:
    """An encoded part's video time base and its packets' pts in decode order (demux only)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return Fraction(stream.time_base), [p.pts for p in c.demux(stream) if p.size]


def _timelines(timelines, starts: list[int], time_base: Fraction) -> tuple[int, list[list[int]], list[int]]:
    """From the parts' timelines: the largest reorder delay in frames
    (decode index minus presentation rank), each part's pts in presentation order, and how far each
    part's muxer shifted its timestamps. ``starts`` are in ``time_base``, the source's; a part's
    muxer may refine it (NUT: to 1/48000 or finer) but only by a whole factor, so nothing rounds."""
    delay, orders, shifts = 0, [], []
    for n, ((part_base, pts), start) in enumerate(zip(timelines, starts)):
        if not pts:
            raise OutputError(f"part {n + 1} holds no frames: cannot join")
        shift = min(pts) - int(start * time_base / part_base)
        order = sorted(p - shift for p in pts)
        ranks = {p: r for r, p in enumerate(order)}
        delay = max([delay] + [i - ranks[p - shift] for i, p in enumerate(pts)])
        orders.append(order)
        shifts.append(shift)
    return delay, orders, shifts


def _check_parts_match(opened) -> None:
    first = opened[0].streams.video[0]
    for c in opened[1:]:
        s = c.streams.video[0]
        same = (s.codec_context.name, s.time_base, s.codec_context.extradata, s.width, s.height) == (
            first.codec_context.name, first.time_base, first.codec_context.extradata, first.width, first.height)  # fmt: skip
        if not same:
            raise OutputError("the parts were encoded differently (codec, size, time base or headers): cannot join")


def _mux_all(out, template, facts, opened, src, delay: int, orders: list[list[int]], shifts: list[int]) -> int:
    video = out.add_stream_from_template(template)
    ctx = video.codec_context  # the part container may not hold colour tags or rotation: from the source
    ctx.color_range, ctx.colorspace = facts.color.range, facts.color.matrix
    ctx.color_primaries, ctx.color_trc = facts.color.primaries, facts.color.transfer
    if facts.rotation:
        video.set_display_rotation(facts.rotation)
    video.time_base = template.time_base
    video.metadata.update(dict(template.metadata))
    out.metadata.update({k: v for k, v in opened[0].metadata.items() if k.lower() != "encoder"})
    copied = {}
    for s in src.streams:
        if s.type in ("audio", "subtitle"):
            try:
                copied[s.index] = out.add_stream_from_template(s)
            except (av.error.FFmpegError, ValueError):
                pass  # a stream the output cannot hold; the whole-file run warns about it too
    chapters = src.chapters()
    if chapters:
        out.set_chapters(chapters)
    videos = _video_packets(opened, video, delay, orders, shifts)
    others = _copied_packets(src, copied)
    frames = 0
    for _, _, packet in heapq.merge(videos, others, key=lambda t: (t[0], t[1])):
        if packet.stream is video:
            frames += 1
        out.mux(packet)
    return frames


def _video_packets(opened, stream, delay: int, orders: list[list[int]], shifts: list[int]):
    """Video packets of all parts in order, with dts rebuilt: the i-th packet decodes at the pts of
    the (i - delay)-th frame in presentation order, so dts rise strictly and never pass pts; the
    first ``delay`` ones step back from the first pts by the first frame interval, as x264 does."""
    recent: list[int] = []  # the tail of the presentation order of the parts done so far
    first = orders[0]
    step = first[min(delay, len(first) - 1)] - first[0]
    lead = [first[0] - step + (first[i] - first[0]) for i in range(min(delay, len(first)))]
    for c, order, shift in zip(opened, orders, shifts):
        s = c.streams.video[0]
        timeline = recent + order
        j = 0
        for packet in c.demux(s):
            if not packet.size:
                continue
            k = len(recent) + j - delay
            dts = timeline[k] if k >= 0 else lead[j]
            packet.pts -= shift
            packet.dts = dts
            packet.stream = stream
            packet.time_base = s.time_base
            j += 1
            yield (dts * s.time_base, 0, packet)
        recent = timeline[-delay:] if delay else []


def _copied_packets(src, copied: dict):
    streams = [s for s in src.streams if s.index in copied]
    if not streams:
        return
    try:
        for packet in src.demux(streams):
            if packet.dts is None:
                continue
            tb = packet.time_base
            packet.stream = copied[packet.stream.index]
            yield (packet.dts * tb, 1, packet)
    except av.error.FFmpegError:
        return


__all__ = ["Cut", "KeyframeIndex", "SegmentSource", "index_keyframes", "join_parts", "part_timeline", "PART_SUFFIX"]
