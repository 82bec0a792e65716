"""An output whose encoder starts a new closed GOP (an IDR frame) at given timestamps, so that each
delivery chunk decodes on its own; and the frame-and-keyframe listing of a coded video."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import av
import numpy as np

from ..config import EncodeOptions
from .base import Frame, StreamFacts
from .decode import AvSource
from .encode import AvSink, OutputSpec, video_frame


class KeyframeSink(AvSink):
    """:class:`AvSink` that forces a keyframe on every frame whose pts is in ``keyframes``.

    libx264/libx265 make a forced keyframe an IDR (``forced-idr``); other encoders honour the
    frame's picture type as they can."""

    def __init__(self, dst, plan: OutputSpec, options: EncodeOptions, keyframes: Iterable[int] = (), **kwargs):
        self.keyframes = frozenset(int(k) for k in keyframes)
        given = dict(options.codec_options)
        if options.codec in ("libx264", "libx265") and "forced-idr" not in given:
            options = dataclasses.replace(options, codec_options=(*options.codec_options, ("forced-idr", "1")))
        super().__init__(dst, plan, options, **kwargs)

    def write(self, planes: list[np.ndarray], pts: int | None) -> None:
        frame = video_frame(planes, pts, self.plan.layout, self.plan.time_base)
        frame.color_range = self.plan.color.range
        frame.colorspace = self.plan.color.matrix
        frame.color_primaries = self.plan.color.primaries
        frame.color_trc = self.plan.color.transfer
        if pts is not None and pts in self.keyframes:
            frame.pict_type = av.video.frame.PictureType.I
        self._mux(self.stream.encode(frame))
        self.frames_written += 1


def keyframe_pts(path: str) -> list[int]:
    """The pts of the video packets flagged as keyframes, in presentation order (demux only)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [p.pts for p in container.demux(stream) if p.size and p.is_keyframe and p.pts is not None]
    return sorted(found)


def stream_facts(path: str) -> StreamFacts:
    """What the video stream of ``path`` is (size, pixel format, time base, rate, frame count)."""
    with AvSource(path) as src:
        return src.facts


def luma_frames(path: str) -> Iterator[tuple[np.ndarray, int | None]]:
    """Each frame's Y plane ((h, w) uint8 or uint16, a copy) and pts, in presentation order."""
    with AvSource(path) as src:
        for item in src.items():
            if isinstance(item, Frame):
                yield np.array(item.planes[0]), item.pts


def video_bytes(path: str) -> int:
    """Bytes of the video stream's packets alone (what the picture costs, without audio or container)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(p.size for p in container.demux(stream) if p.size)
