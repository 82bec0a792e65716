"""A title's Y planes read a chunk at a time, never the whole title at once.

:func:`scan_master` reads the master once for the chunking and keeps per-frame scalars only (pts,
scene score, difficulty). :func:`chunk_planes` then decodes the LR and the master in step and
yields one chunk's planes at a time, so what is held is the chunk being built and those the caller
still holds, whatever the title's length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import VsrPipeError
from .chunks import ChunkSpan, difficulty, scene_scores, thumbnail

REPORT_EVERY = 2.0  # seconds between ``on_frames`` calls while a pass runs


@dataclass(frozen=True)
class MasterScan:
    """What the chunking needs of the master, per frame in presentation order: ``pts``, ``scores``
    (scene scores, 8-bit codes: :func:`~.chunks.scene_scores`) and ``difficulties`` (dB:
    :func:`~.chunks.difficulty`); and ``shape``, the Y plane's (height, width)."""

    pts: list
    scores: list[float]
    difficulties: list[float]
    shape: tuple[int, int]

    @property
    def frames(self) -> int:
        return len(self.pts)


@dataclass(frozen=True)
class ChunkPlanes:
    """One chunk's Y planes: ``lr`` (n, h, w) as the client decodes them and ``hr`` (n, r·h, r·w) of
    the master, uint8 (or uint16 10-bit codes), C-contiguous: what ``np.stack`` of the frames gives."""

    span: ChunkSpan
    lr: np.ndarray
    hr: np.ndarray


class PlanesChanged(VsrPipeError, RuntimeError):
    """A second decode of the LR or the master gave fewer frames than the first."""


def scan_master(path: str, factor: int, on_frames: Callable[[int], None] | None = None) -> MasterScan:
    """The master's per-frame scalars, read frame by frame (one thumbnail kept, for the next score).
    ``on_frames(done)`` is called every ``REPORT_EVERY`` seconds while it reads."""
    from ..io.keyframes import luma_frames

    pts, scores, difficulties = [], [], []
    shape: tuple[int, int] = (0, 0)
    previous = None
    every = ReportEvery(on_frames)
    for y, p in luma_frames(path):
        thumb = thumbnail(y)
        scores.append(0.0 if previous is None else scene_scores([previous, thumb])[1])
        difficulties.append(difficulty(y, factor))
        pts.append(p)
        shape, previous = y.shape, thumb
        every(len(pts))
    return MasterScan(pts, scores, difficulties, tuple(shape))


def frame_pts(path: str, on_frames: Callable[[int], None] | None = None) -> tuple[list, tuple[int, int]]:
    """The pts of every frame of ``path`` as decoded, and its Y plane's (height, width); no plane kept."""
    from ..io.keyframes import luma_frames

    pts: list = []
    shape: tuple[int, int] = (0, 0)
    every = ReportEvery(on_frames)
    for y, p in luma_frames(path):
        pts.append(p)
        shape = y.shape
        every(len(pts))
    return pts, tuple(shape)


def chunk_planes(lr_path: str, master_path: str, spans: Sequence[ChunkSpan]) -> Iterator[ChunkPlanes]:
    """Each span's planes, in the order of ``spans`` (ascending, not overlapping; frames between
    them are skipped), decoding the LR and the master in step. A chunk's arrays are made when its
    first frame is decoded and let go once yielded."""
    from ..io.keyframes import luma_frames

    lr_frames, hr_frames = luma_frames(lr_path), luma_frames(master_path)
    position = 0  # the index of the next frame either decoder gives
    try:
        for span in spans:
            lr = hr = None
            while position <= span.last:
                a, b = next(lr_frames, None), next(hr_frames, None)
                if a is None or b is None:
                    which = "LR" if a is None else "master"
                    raise PlanesChanged(f"the {which} ended at frame {position}, before chunk {span.index}'s last")
                if position >= span.first:
                    if lr is None:
                        lr = np.empty((span.frames, *a[0].shape), a[0].dtype)
                        hr = np.empty((span.frames, *b[0].shape), b[0].dtype)
                    lr[position - span.first], hr[position - span.first] = a[0], b[0]
                position += 1
            yield ChunkPlanes(span, lr, hr)
    finally:
        lr_frames.close()
        hr_frames.close()


class ReportEvery:
    """Calls ``report(done)`` at most every ``REPORT_EVERY`` seconds."""

    def __init__(self, report: Callable[[int], None] | None):
        self.report, self.next = report, time.monotonic() + REPORT_EVERY

    def __call__(self, done: int) -> None:
        if self.report is None:
            return
        now = time.monotonic()
        if now >= self.next:
            self.next = now + REPORT_EVERY
            self.report(done)
