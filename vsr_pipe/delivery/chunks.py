"""Chunks by content: scene cuts first, then changes of difficulty inside a scene, then a maximum
length, then a cap on the count.

Everything here is pure (frame scores and timestamps in, spans out), so it is tested without video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THUMB = 16  # scene scores compare 16×16-pixel block means: robust to noise and small motion


@dataclass(frozen=True)
class ChunkSpan:
    """Frames ``first`` to ``last`` (indices in presentation order, inclusive) and their pts."""

    index: int
    first: int
    last: int
    first_pts: int
    last_pts: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class ChunkRules:
    """``cut``: a frame starts a new scene when its score is at least ``cut`` codes (mean absolute
    change of block means, 8-bit scale) and ``ratio`` times the median score; inside a scene, a
    frame also starts a chunk where the frames' difficulty (:func:`difficulty`) over the
    ``min_frames`` after it differs from the ``min_frames`` before it by ``jump_db`` or more (0:
    never); ``min_frames`` and ``max_frames`` bound a chunk; ``cap`` (0: none) bounds the count."""

    cut: float = 12.0
    ratio: float = 3.0
    jump_db: float = 3.0
    min_frames: int = 8
    max_frames: int = 150
    cap: int = 0


def thumbnail(y: np.ndarray) -> np.ndarray:
    """(h, w) plane -> block means (h // 16, w // 16) on the 8-bit scale, float32."""
    scale = 255.0 / 1023.0 if y.dtype == np.uint16 else 1.0
    h, w = (y.shape[0] // THUMB) * THUMB, (y.shape[1] // THUMB) * THUMB
    if h == 0 or w == 0:
        return np.array([[float(y.mean()) * scale]], np.float32)
    blocks = y[:h, :w].reshape(h // THUMB, THUMB, w // THUMB, THUMB).astype(np.float32)
    return blocks.mean(axis=(1, 3)) * scale


def difficulty(y: np.ndarray, factor: int) -> float:
    """How hard the frame is to restore from a 1/``factor`` LR, in dB (lower: harder): the PSNR of
    the plane against its own ``factor``×``factor`` block means held over each block. It measures
    the detail a downscale removes, the part a restorer must put back (STDO's patch difficulty,
    averaged over the frame); it costs a reshape, so the whole master is scored before any LR exists."""
    peak = 1023.0 if y.dtype == np.uint16 else 255.0
    h, w = (y.shape[0] // factor) * factor, (y.shape[1] // factor) * factor
    if h == 0 or w == 0:
        return float("inf")
    blocks = y[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor)
    mse = float(((blocks - blocks.mean(axis=(1, 3), keepdims=True)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(peak**2 / mse))


def scene_scores(thumbs: list[np.ndarray]) -> list[float]:
    """Per frame, the mean absolute change of its thumbnail from the previous frame's (0 for the first)."""
    return [0.0] + [float(np.abs(b - a).mean()) for a, b in zip(thumbs, thumbs[1:])]


def split_chunks(
    pts: list[int], scores: list[float], rules: ChunkRules = ChunkRules(), difficulties: list[float] | None = None
) -> list[ChunkSpan]:
    """Chunks over frames with timestamps ``pts``, scene scores ``scores`` and, when given, the
    frames' :func:`difficulty` in dB (all the same length)."""
    n = len(pts)
    if n == 0:
        return []
    median = float(np.median(scores[1:])) if n > 1 else 0.0
    starts = [0]
    for i in range(1, n):
        if scores[i] >= rules.cut and scores[i] >= rules.ratio * median and i - starts[-1] >= rules.min_frames:
            starts.append(i)
    if len(starts) > 1 and n - starts[-1] < rules.min_frames:
        starts.pop()  # a scene shorter than min_frames at the end joins the one before
    if difficulties is not None and rules.jump_db > 0:
        starts = _difficulty_starts(starts, n, difficulties, rules)
    bounds = _split_long(starts, n, rules.max_frames)
    if rules.cap:
        bounds = _merge_weakest(bounds, scores, rules.cap)
    ends = bounds[1:] + [n]
    return [ChunkSpan(k, a, b - 1, pts[a], pts[b - 1]) for k, (a, b) in enumerate(zip(bounds, ends))]


def _difficulty_starts(starts: list[int], n: int, difficulties: list[float], rules: ChunkRules) -> list[int]:
    """``starts`` plus, inside each scene, the frames where the mean difficulty of the next
    ``min_frames`` frames differs most from that of the previous ``min_frames`` (a local maximum of
    at least ``jump_db``): one set of weights then serves content of one difficulty."""
    w = max(1, rules.min_frames)
    d = np.nan_to_num(np.asarray(difficulties, np.float64), posinf=100.0)
    sums = np.concatenate([[0.0], np.cumsum(d)])
    jump = np.zeros(n)
    for i in range(w, n - w + 1):
        jump[i] = abs((sums[i + w] - sums[i]) - (sums[i] - sums[i - w])) / w
    out = []
    for a, b in zip(starts, starts[1:] + [n]):
        out.append(a)
        for i in range(a + w, b - w + 1):
            if jump[i] >= rules.jump_db and jump[i] == jump[max(a + w, i - w) : i + w + 1].max() and i - out[-1] >= w:
                out.append(i)
    return out


def _split_long(starts: list[int], n: int, max_frames: int) -> list[int]:
    """Starts with every chunk longer than ``max_frames`` cut into equal parts."""
    out: list[int] = []
    for a, b in zip(starts, starts[1:] + [n]):
        parts = -(-(b - a) // max(1, max_frames))
        out.extend(a + (b - a) * k // parts for k in range(parts))
    return out


def _merge_weakest(starts: list[int], scores: list[float], cap: int) -> list[int]:
    """Drop the boundaries with the lowest scene scores until at most ``cap`` chunks remain."""
    starts = list(starts)
    while len(starts) > max(1, cap):
        weakest = min(range(1, len(starts)), key=lambda k: (scores[starts[k]], k))
        del starts[weakest]
    return starts
