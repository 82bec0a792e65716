"""What a coded video holds, read cheaply: its keyframes' pts, its facts, its Y planes, the bytes of
its video stream. (Forcing keyframes where chunks start is ``AvSink(..., keyframes=...)``.)"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from .base import Frame, StreamFacts
from .decode import AvSource


def _demux(path) -> av.container.InputContainer:
    """``path`` opened for demuxing. An MPEG-TS file (an HLS segment) is opened as one: FFmpeg's
    format probe needs more than a short segment's few packets, and fails with "End of file"."""
    return av.open(str(path), format="mpegts" if str(path).lower().endswith(".ts") else None)


def keyframe_pts(path: str) -> list[int]:
    """The pts of the video packets flagged as keyframes, in presentation order (demux only)."""
    with _demux(path) as container:
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
    with _demux(path) as container:
        stream = container.streams.video[0]
        return sum(p.size for p in container.demux(stream) if p.size)


def video_packet_sizes(path: str) -> list[tuple[int, int]]:
    """(pts, bytes) of each video packet, in stream order: what each stretch of the picture costs."""
    with _demux(path) as container:
        stream = container.streams.video[0]
        return [(int(p.pts), p.size) for p in container.demux(stream) if p.size and p.pts is not None]


def first_keyframe(path: str) -> tuple[str, bytes, bytes] | None:
    """(codec name, extradata, bytes) of the video stream's first keyframe packet, as muxed (Annex B
    in MPEG-TS; MP4 and Matroska keep the parameter sets in the extradata), or None when it has none."""
    with _demux(path) as container:
        stream = container.streams.video[0]
        for p in container.demux(stream):
            if p.size and p.is_keyframe:
                return stream.codec_context.name, bytes(stream.codec_context.extradata or b""), bytes(p)
    return None
