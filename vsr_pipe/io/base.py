"""What the pipeline sees of input and output: the Source and Sink protocols, the typed items a
source yields, and the facts about its video stream. Plain data and protocols; no PyAV here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol, Union, runtime_checkable

import numpy as np

from .layout import FrameLayout
from .tags import RescaleTag


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags, as FFmpeg's enum values (so they round-trip exactly)."""

    primaries: int
    transfer: int
    matrix: int
    range: int  # 1 limited (MPEG), 2 full (JPEG), 0 unknown


@dataclass(frozen=True)
class StreamFacts:
    """What a source knows about its video stream once the first frame is decoded.

    ``layout`` is the working layout frames come out in (the decoded format, or the closest one the
    processor takes); ``frame_count`` is 0 when the container does not say.
    """

    name: str
    layout: FrameLayout
    color: ColorInfo
    time_base: Fraction
    rate: Fraction | None
    frame_count: int
    rotation: int = 0
    rescale_tag: RescaleTag | None = None  # present when the input is a learned downscale

    @property
    def pts_step(self) -> int:
        """One frame's duration in time-base units: the pts given to a frame that has none."""
        if self.rate and self.time_base:
            return max(1, int(round(1 / (self.rate * self.time_base))))
        return 1


@dataclass(frozen=True)
class Frame:
    """A decoded frame: (h, w) uint8/uint16 planes in the source's working layout, read-only views
    valid until the next item is taken."""

    planes: tuple[np.ndarray, ...]
    pts: int | None


@dataclass(frozen=True)
class Packet:
    """A packet of another stream (audio, subtitles) for stream copy; opaque to the pipeline."""

    payload: object


@dataclass(frozen=True)
class End:
    """The last item: the input ended (or gave up), with how many damaged packets were skipped."""

    bad_packets: int = 0


SourceItem = Union[Frame, Packet, End]


@runtime_checkable
class Source(Protocol):
    """An opened input. ``facts`` is known on opening; ``items()`` yields frames and packets in
    demux order and ends with one :class:`End`. Use as a context manager.

    ``metadata`` holds the container's tags and ``stream_tags`` the video stream's own (language,
    title, ...), both to carry to the output; ``preview()`` is the first frame as ``items()`` will
    yield it.
    """

    facts: StreamFacts
    metadata: dict
    stream_tags: tuple[tuple[str, str], ...]

    def items(self) -> Iterator[SourceItem]: ...

    def preview(self) -> Frame: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """An output being written. Leaving the ``with`` block normally finishes it (flush, close, move
    into place); leaving it with an exception aborts it (no partial file is left)."""

    frames_written: int

    def write(self, planes: list[np.ndarray], pts: int | None) -> None: ...

    def copy(self, packet: Packet) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Sink: ...

    def __exit__(self, exc_type, exc, tb) -> None: ...
