"""A fixed pool of preallocated chunk slots: memory stays bounded whatever the video's length.

A producer ``acquire``s a free slot (blocking while all are in use, which is the back-pressure that
stops the decoder running ahead of the model), fills it, and hands it on; the consumer ``release``s
it when done.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from ..io.layout import FrameLayout


@dataclass
class Chunk:
    """Up to ``capacity`` frames as planes: ``planes[i]`` is (capacity, h_i, w_i) uint8 or uint16.

    ``count`` frames are valid; ``pts[k]`` is frame k's timestamp; ``packets`` are the audio and
    subtitle packets demuxed alongside these frames, to be muxed after them.
    """

    planes: list[np.ndarray]
    count: int = 0
    pts: list[int | None] = field(default_factory=list)
    packets: list = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return self.planes[0].shape[0]

    def reset(self) -> None:
        self.count = 0
        self.pts = []
        self.packets = []

    def views(self) -> list[np.ndarray]:
        """The valid frames of each plane, (count, h, w)."""
        return [p[: self.count] for p in self.planes]


def allocate_chunk(layout: FrameLayout, frames: int) -> Chunk:
    dtype = np.uint8 if layout.bytes_per_sample == 1 else np.uint16
    planes = [np.zeros((frames, *layout.plane_size(i)), dtype=dtype) for i in range(layout.plane_count)]
    return Chunk(planes)


class ChunkRing:
    """``slots`` chunks for one layout, handed out and returned."""

    def __init__(self, layout: FrameLayout, frames_per_chunk: int, slots: int):
        self._free: queue.Queue[Chunk] = queue.Queue()
        for _ in range(slots):
            self._free.put(allocate_chunk(layout, frames_per_chunk))
        self.slots = slots
        self.bytes = slots * sum(p.nbytes for p in allocate_chunk(layout, frames_per_chunk).planes)

    def acquire(self, stop: threading.Event) -> Chunk | None:
        """A free, reset chunk; None if ``stop`` is set while waiting."""
        while not stop.is_set():
            try:
                chunk = self._free.get(timeout=0.1)
            except queue.Empty:
                continue
            chunk.reset()
            return chunk
        return None

    def release(self, chunk: Chunk) -> None:
        self._free.put(chunk)
