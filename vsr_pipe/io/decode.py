"""Reading video with PyAV: open and check the input, then demux and decode it as planes.

Video frames come out as numpy planes in a :class:`FrameLayout`; the packets of every other stream
(audio, subtitles) come out untouched, in demux order, for stream copy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np

from ..errors import InputNotFound, NotAVideo, UnsupportedInput
from .layout import FrameLayout

Source = Union[str, os.PathLike, BinaryIO]

MAX_INPUT_SIDE = 16384

# Formats processed as they are; anything else is converted once, on decode, to the closest of these.
NATIVE_FORMATS = {
    "yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p", "gray",
    "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le", "gray10le",
}  # fmt: skip


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags, as FFmpeg's enum values (so they round-trip exactly)."""

    primaries: int
    transfer: int
    matrix: int
    range: int  # 1 limited (MPEG), 2 full (JPEG), 0 unknown


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder knows about the input's video stream before the first frame."""

    width: int
    height: int
    codec: str
    pix_fmt: str
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int  # 0 when the container does not say
    duration_s: float | None
    rotation: int


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


class VideoSource:
    """An opened input: ``with VideoSource(path) as src: for item in src.items(): ...``.

    Raises the typed errors of :mod:`vsr_pipe.errors` for a missing file, something that is not
    media, or media with no video stream.
    """

    def __init__(self, source: Source):
        self.name = "standard input" if source == "-" else str(source)
        if source == "-":
            source = sys.stdin.buffer
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise InputNotFound(f"input not found: {path}")
            if path.is_dir():
                raise NotAVideo(f"input is a folder, not a video: {path}")
        try:
            self.container = av.open(source, mode="r")
        except av.error.FFmpegError as e:
            raise NotAVideo(f"{self.name} is not a video FFmpeg can read ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise NotAVideo(f"{self.name} has no video stream")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if ctx is None or ctx.codec is None:
            self.container.close()
            raise UnsupportedInput(f"{self.name}: its video codec cannot be decoded by this FFmpeg build")
        self.stream.thread_type = "AUTO"
        if ctx.width <= 0 or ctx.height <= 0 or max(ctx.width, ctx.height) > MAX_INPUT_SIDE:
            self.container.close()
            raise UnsupportedInput(
                f"{self.name}: frame size {ctx.width}x{ctx.height} is out of range: 1 to {MAX_INPUT_SIDE} per side"
            )
        self.bad_packets = 0
        self.copied_streams = [s for s in self.container.streams if s.type in ("audio", "subtitle")]

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    @property
    def info(self) -> VideoInfo:
        s, ctx = self.stream, self.stream.codec_context
        duration = None
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif self.container.duration:
            duration = self.container.duration / 1e6
        rate = s.average_rate or s.guessed_rate
        frames = s.frames or (int(round(duration * rate)) if duration and rate else 0)
        return VideoInfo(
            width=ctx.width,
            height=ctx.height,
            codec=ctx.name,
            pix_fmt=ctx.pix_fmt or "",
            time_base=s.time_base,
            average_rate=rate,
            frame_count=frames,
            duration_s=duration,
            rotation=0,
        )

    def items(self) -> Iterator[tuple[str, object]]:
        """Yield ("frame", av.VideoFrame) and ("packet", av.Packet) in demux order.

        Packets that fail to decode are counted in ``bad_packets`` and skipped; a truncated file
        ends the iteration after the last good frame.
        """
        streams = [self.stream, *self.copied_streams]
        demuxer = self.container.demux(streams)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                break
            except av.error.FFmpegError:
                self.bad_packets += 1  # the demuxer gave up: the rest of the file is unreadable
                break
            if packet.stream is not self.stream:
                if packet.dts is not None:
                    yield "packet", packet
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.bad_packets += 1
                continue
            for frame in frames:
                yield "frame", frame


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


def color_info(frame: av.VideoFrame, fallback: av.video.codeccontext.VideoCodecContext) -> ColorInfo:
    """Colour tags of the first frame, falling back to the stream's."""
    return ColorInfo(
        primaries=int(frame.color_primaries or fallback.color_primaries or 2),
        transfer=int(frame.color_trc or fallback.color_trc or 2),
        matrix=int(frame.colorspace or fallback.colorspace or 2),
        range=int(frame.color_range or fallback.color_range or 0),
    )
