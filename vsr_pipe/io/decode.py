"""Reading video with PyAV: open a file, a pipe or a URL, check it, then demux and decode it.

Video frames come out as numpy planes in the source's working :class:`FrameLayout`; the packets of
every other stream (audio, subtitles) come out untouched, in demux order, for stream copy.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np

from ..errors import InputNotFound, InvalidOption, NotAVideo, UnsupportedInput
from .base import ColorInfo, End, Frame, Packet, SourceItem, StreamFacts
from .layout import FrameLayout
from .protocols import protocol_support
from .tags import find_tag

SourceSpec = Union[str, os.PathLike, BinaryIO]

MAX_INPUT_SIDE = 16384
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

# Formats processed as they are; anything else is converted once, on decode, to the closest of these.
NATIVE_FORMATS = {
    "yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p", "gray",
    "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le", "gray10le",
}  # fmt: skip


def is_url(spec: object) -> bool:
    """True for anything FFmpeg opens by protocol (udp://, tcp://, http://, srt://, ...)."""
    return isinstance(spec, str) and bool(_URL.match(spec))


def layout_for(pix_fmt: str, width: int, height: int, full_range: bool) -> FrameLayout:
    """The :class:`FrameLayout` of a native pixel format."""
    fmt = av.VideoFormat(pix_fmt)
    bits = max(c.bits for c in fmt.components)
    gray = len(fmt.components) == 1
    probe = 64
    shift_x = 0 if gray else (probe // fmt.chroma_width(probe)).bit_length() - 1
    shift_y = 0 if gray else (probe // fmt.chroma_height(probe)).bit_length() - 1
    full = full_range or pix_fmt.startswith("yuvj")
    return FrameLayout(width, height, pix_fmt, bits, shift_x, shift_y, gray, full)


def working_format(pix_fmt: str) -> str:
    """The native format a decoded frame of ``pix_fmt`` is processed in."""
    if pix_fmt in NATIVE_FORMATS:
        return pix_fmt
    fmt = av.VideoFormat(pix_fmt)
    bits = max(c.bits for c in fmt.components)
    deep = "10le" if bits > 8 else ""
    if len(fmt.components) <= 2 and not fmt.is_rgb:  # grey, grey + alpha
        return "gray10le" if deep else "gray"
    if fmt.is_rgb or len(fmt.components) < 3:
        return f"yuv444p{deep}"
    probe = 64
    sub = (probe // fmt.chroma_width(probe), probe // fmt.chroma_height(probe))
    family = {(2, 2): "yuv420p", (2, 1): "yuv422p", (1, 1): "yuv444p"}.get(sub, "yuv444p")
    return family + deep


class AvSource:
    """An opened input (path, ``"-"`` for standard input, a binary file object, or a URL):
    ``with AvSource(path) as src: for item in src.items(): ...``.

    Opening decodes the first frame, so ``facts`` is complete. Raises the typed errors of
    :mod:`vsr_pipe.errors` for a missing file, something that is not media, media with no video
    stream, or a video this FFmpeg cannot decode.
    """

    def __init__(
        self,
        spec: SourceSpec,
        options: tuple[tuple[str, str], ...] = (),
        format: str | None = None,
        timeout: tuple[float, float] | None = None,
        layout: FrameLayout | None = None,
        low_delay: bool = False,
        trim: tuple[float, float | None] = (0.0, None),
    ):
        """``options``: FFmpeg format/protocol options; ``format``: the demuxer, for inputs that
        cannot be probed; ``timeout``: (open, read) seconds a network read may wait before the
        input counts as stalled; ``layout``: convert every frame to this layout (a reconnected
        stream keeps the first one's); ``low_delay``: decode for latency (no frame threads);
        ``trim``: (start, duration or None) in seconds after the video stream's start: only the
        frames and packets in that span come out, moved back by the start."""
        self.name = "standard input" if spec == "-" else str(spec)
        self.bad_packets = 0
        self.corrupt_frames = 0  # decoded with errors the decoder concealed (its packets were not refused)
        self.lost: str | None = None  # why the input ended early: no data within the read timeout
        # A network stream that went silent after its frames (a sender that stopped; UDP has no
        # end-of-stream) ended as live streams end: said in a note, not an error.
        self.ended: str | None = None
        self.idle_tail_s = 0.0  # seconds waited after the last frame for data that never came
        self._layout = layout
        self._read_timeout = timeout[1] if timeout else None
        target = self._target(spec)
        try:
            # Garbled tags (not UTF-8) in a damaged header must not stop the video from being read.
            self.container = av.open(
                target, mode="r", format=format, options=dict(options), timeout=timeout, metadata_errors="replace"
            )
        except av.error.ProtocolNotFoundError:
            raise UnsupportedInput(f"{self.name}: {protocol_support(spec)}") from None
        except (av.error.ExitError, av.error.TimeoutError):
            raise NotAVideo(f"{self.name}: no data within {timeout[0] if timeout else 0:g} s") from None
        except av.error.FFmpegError as e:
            raise NotAVideo(f"{self.name} is not a video FFmpeg can read ({_reason(e)})") from None
        except ValueError as e:  # an unknown format name
            raise InvalidOption(f"{self.name}: {e}") from None
        try:
            self._check_stream(low_delay)
            self._trim = trim
            self._seek_to_start()
            self._demuxed = self._demux()
            self._early = self._peek_first_frame()
            self.facts = self._facts(self._first)
        except BaseException:
            self.container.close()
            raise

    @staticmethod
    def _target(spec: SourceSpec):
        if spec == "-":
            return sys.stdin.buffer
        if is_url(spec):
            return spec
        if isinstance(spec, (str, os.PathLike)):
            path = Path(spec)
            if not path.exists():
                raise InputNotFound(f"input not found: {path}")
            if path.is_dir():
                raise NotAVideo(f"input is a folder, not a video: {path}")
            return str(path)
        return spec

    def _check_stream(self, low_delay: bool) -> None:
        if not self.container.streams.video:
            raise NotAVideo(f"{self.name} has no video stream")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if ctx is None or ctx.codec is None:
            raise UnsupportedInput(f"{self.name}: its video codec cannot be decoded by this FFmpeg build")
        # Frame threads hold back as many frames as there are threads; slices do not.
        self.stream.thread_type = "SLICE" if low_delay else "AUTO"
        if ctx.width <= 0 or ctx.height <= 0 or max(ctx.width, ctx.height) > MAX_INPUT_SIDE:
            raise UnsupportedInput(
                f"{self.name}: frame size {ctx.width}x{ctx.height} is out of range: 1 to {MAX_INPUT_SIDE} per side"
            )
        self.copied_streams = [s for s in self.container.streams if s.type in ("audio", "subtitle")]

    def _seek_to_start(self) -> None:
        """Seek to the keyframe before the trim's start; frames before it are decoded and dropped."""
        start, _ = self._trim
        if start <= 0 or self.stream.time_base is None:
            return
        target = (self.stream.start_time or 0) + int(start / self.stream.time_base)
        try:
            self.container.seek(target, stream=self.stream, backward=True)
        except (av.error.FFmpegError, OSError):  # a pipe cannot seek: read up to the start instead
            pass

    def _in_trim(self, ts: int | None, time_base, stream_start: int | None) -> int:
        """-1 before the trim's span, 0 inside (or untimed), 1 after it."""
        start, duration = self._trim
        if ts is None or time_base is None or (start <= 0 and duration is None):
            return 0
        t = float((ts - (stream_start or 0)) * time_base)
        if t < start - 1e-6:
            return -1
        return 1 if duration is not None and t >= start + duration - 1e-6 else 0

    def _shift(self, item) -> None:
        """Move a kept frame or packet back by the trim's start, in its own time base."""
        start = self._trim[0]
        tb = self.stream.time_base if isinstance(item, av.VideoFrame) else (item.time_base or item.stream.time_base)
        if start <= 0 or tb is None:
            return
        offset = int(round(start / tb))
        if item.pts is not None:
            item.pts -= offset
        if isinstance(item, av.Packet) and item.dts is not None:
            item.dts -= offset

    def _peek_first_frame(self) -> list[av.Packet]:
        """Decode up to the first frame; the packets demuxed before it are kept for the output."""
        early = []
        for item in self._demuxed:
            if isinstance(item, av.VideoFrame):
                self._first = item
                return early
            early.append(item)
        if self._trim[0] > 0:
            raise InvalidOption(f"start {self._trim[0]:g} s: {self.name} has no video frame from there on")
        raise NotAVideo(f"{self.name}: no video frame could be decoded")

    def _facts(self, first: av.VideoFrame) -> StreamFacts:
        s, ctx = self.stream, self.stream.codec_context
        color = ColorInfo(
            primaries=int(first.color_primaries or ctx.color_primaries or 2),
            transfer=int(first.color_trc or ctx.color_trc or 2),
            matrix=int(first.colorspace or ctx.colorspace or 2),
            range=int(first.color_range or ctx.color_range or 0),
        )
        layout = self._layout or layout_for(
            working_format(first.format.name), first.width, first.height, color.range == 2
        )
        rate = s.average_rate or s.guessed_rate
        duration = None
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif self.container.duration:
            duration = self.container.duration / 1e6
        frames = s.frames or (int(round(duration * rate)) if duration and rate else 0)
        start, length = self._trim
        if frames and rate and (start > 0 or length is not None):  # the count the trim leaves
            left = max(0, frames - int(round(start * rate)))
            frames = min(left, int(round(length * rate))) if length is not None else left
        return StreamFacts(
            name=self.name,
            layout=layout,
            color=color,
            time_base=s.time_base,
            rate=rate,
            frame_count=frames,
            rotation=int(first.rotation or 0),
            rescale_tag=find_tag(self.container.metadata),
        )

    def __enter__(self) -> AvSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    @property
    def metadata(self) -> dict:
        """The container's tags."""
        return dict(self.container.metadata)

    @property
    def stream_tags(self) -> tuple[tuple[str, str], ...]:
        """The video stream's own tags worth keeping (language, title, ...)."""
        skip = ("encoder", "duration", "vendor_id")
        return tuple((k, v) for k, v in self.stream.metadata.items() if k.lower() not in skip)

    def chapters(self) -> list:
        return self.container.chapters()

    def items(self) -> Iterator[SourceItem]:
        """Frames and packets in demux order (the first frame included), then one :class:`End`.

        Frames of another format or size than the first are converted to the working layout.
        Packets that fail to decode are counted and skipped; a truncated file ends after its last
        good frame.
        """
        for packet in self._early:
            yield Packet(packet)
        self._early = []
        for item in _chain_first(self._first, self._demuxed):
            if isinstance(item, av.Packet):
                yield Packet(item)
            else:
                yield self._as_frame(item)
        yield End(self.bad_packets)

    def preview(self) -> Frame:
        """The first frame, as :meth:`items` will yield it (for calibration or a thumbnail)."""
        return self._as_frame(self._first)

    def _as_frame(self, frame: av.VideoFrame) -> Frame:
        layout = self.facts.layout
        converted = frame
        if frame.format.name != layout.pix_fmt or frame.width != layout.width or frame.height != layout.height:
            converted = frame.reformat(width=layout.width, height=layout.height, format=layout.pix_fmt)
        if frame.pts is not None:  # first and last pts seen: how much of the declared duration was there
            first = getattr(self, "pts_span", None)
            self.pts_span = (first[0] if first else frame.pts, max(frame.pts, first[1] if first else frame.pts))
        return Frame(tuple(frame_planes(converted, layout)), frame.pts)

    def _demux(self) -> Iterator[av.VideoFrame | av.Packet]:
        streams = [self.stream, *self.copied_streams]
        demuxer = self.container.demux(streams)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                return
            except (av.error.ExitError, av.error.TimeoutError):
                wait = f" for {self._read_timeout:g} s" if self._read_timeout else ""
                if getattr(self, "pts_span", None) is not None:
                    self.ended = f"{self.name}: no data{wait} after its last frame; the stream ended there"
                    # The read timeout was waited for nothing: not the frames' time. (The demuxer's
                    # last packet can come out only then: MPEG-TS ends a PES at the next one.)
                    self.idle_tail_s = self._read_timeout or 0.0
                else:
                    self.lost = f"{self.name}: no data{wait}; the input stalled"
                return
            except av.error.FFmpegError:
                self.bad_packets += 1  # the demuxer gave up: the rest of the input is unreadable
                return
            if packet.stream is not self.stream:
                tb = packet.time_base or packet.stream.time_base
                if packet.dts is not None and self._in_trim(packet.pts, tb, packet.stream.start_time) == 0:
                    self._shift(packet)
                    yield packet
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.bad_packets += 1
                continue
            for frame in frames:
                where = self._in_trim(frame.pts, self.stream.time_base, self.stream.start_time)
                if where > 0:  # past the trim's end: the input ends here
                    return
                if where < 0:
                    continue
                self.corrupt_frames += frame.is_corrupt  # FFmpeg's decode_error_flags or corrupt flag
                self._shift(frame)
                yield frame


def _chain_first(first, rest):
    yield first
    yield from rest


def _reason(error: av.error.FFmpegError) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().rstrip(".").lower()


def frame_planes(frame: av.VideoFrame, layout: FrameLayout) -> list[np.ndarray]:
    """Views (no copy) of the frame's planes as (h, w) uint8/uint16 arrays, line padding dropped."""
    dtype = np.uint8 if layout.bytes_per_sample == 1 else np.uint16
    out = []
    for i in range(layout.plane_count):
        plane = frame.planes[i]
        h, w = layout.plane_size(i)
        buf = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // dtype().itemsize)
        out.append(buf[:h, :w])
    return out
