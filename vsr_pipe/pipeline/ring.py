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

    ``index`` counts chunks from 0 in stream order; ``count`` frames are valid; ``pts[k]`` is frame
    k's timestamp; ``weights`` is the weights schedule entry the model runs this chunk with (-1: its
    own); ``packets`` are the audio and subtitle packets demuxed alongside these frames, to be
    muxed after them.
    """

    planes: list[np.ndarray]
    index: int = 0
    count: int = 0
    pts: list[int | None] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # when each frame arrived (time.monotonic)
    weights: int = -1
    packets: list = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return self.planes[0].shape[0]

    def reset(self) -> None:
        self.index = 0
        self.count = 0
        self.pts = []
        self.arrivals = []
        self.weights = -1
        self.packets = []

    def views(self) -> list[np.ndarray]:
        """The valid frames of each plane, (count, h, w)."""
        return [p[: self.count] for p in self.planes]


def allocate_chunk(layout: FrameLayout, frames: int, pinned: bool = False) -> Chunk:
    """Zeroed planes; ``pinned`` puts them in page-locked memory (a CUDA pipeline's host side), so
    uploads and downloads are DMA transfers that need no staging copy."""
    if not pinned:
        dtype = np.uint8 if layout.bytes_per_sample == 1 else np.uint16
        return Chunk([np.zeros((frames, *layout.plane_size(i)), dtype=dtype) for i in range(layout.plane_count)])
    import torch  # only a CUDA pipeline pins; the plain ring stays numpy-only

    # torch's uint16 lacks pinning on some builds: int16 holds the same bits, numpy views them as uint16.
    dtype = torch.uint8 if layout.bytes_per_sample == 1 else torch.int16
    planes = []
    for i in range(layout.plane_count):
        plane = torch.zeros((frames, *layout.plane_size(i)), dtype=dtype, pin_memory=True).numpy()
        planes.append(plane if dtype == torch.uint8 else plane.view(np.uint16))
    return Chunk(planes)


def chunk_bytes(layout: FrameLayout, frames: int) -> int:
    return frames * layout.bytes_per_sample * sum(h * w for h, w in map(layout.plane_size, range(layout.plane_count)))


class ChunkRing:
    """``slots`` chunks for one layout, handed out and returned."""

    def __init__(self, layout: FrameLayout, frames_per_chunk: int, slots: int, pinned: bool = False):
        self._free: queue.Queue[Chunk] = queue.Queue()
        for _ in range(slots):
            self._free.put(allocate_chunk(layout, frames_per_chunk, pinned))
        self.slots = slots
        self.pinned = pinned
        self.bytes = slots * chunk_bytes(layout, frames_per_chunk)

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

    def try_acquire(self) -> Chunk | None:
        """A free, reset chunk, or None at once when every slot is in use."""
        try:
            chunk = self._free.get_nowait()
        except queue.Empty:
            return None
        chunk.reset()
        return chunk

    def release(self, chunk: Chunk) -> None:
        self._free.put(chunk)
