"""The weight matrices of separable resampling, in numpy: any factor, any kernel, chroma siting.

Kept free of torch so that a CPU run can resample without importing it (``pipeline/host.py``);
``resample.py`` applies the same matrices with torch, on any device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

KERNELS = ("bicubic", "lanczos", "bilinear")


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1, np.where(ax < 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0))


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def _linear(x: np.ndarray) -> np.ndarray:
    return np.clip(1 - np.abs(x), 0, None)


_SUPPORT = {"bicubic": (_cubic, 2.0), "lanczos": (_lanczos3, 3.0), "bilinear": (_linear, 1.0)}


@lru_cache(maxsize=64)
def resize_weights(
    in_len: int,
    out_len: int,
    scale: float,
    kernel: str = "bicubic",
    in_sub: int = 1,
    out_sub: int = 1,
    left_sited: bool = False,
) -> np.ndarray:
    """(out_len, in_len) float64 weights, rows summing to 1; read-only (shared by the cache).

    Args:
        in_len, out_len: samples along the axis, in the input and output plane.
        scale: output / input size of the *luma* axis (all planes of a frame share it).
        in_sub, out_sub: subsampling of the input and output plane along this axis (1 luma, 2 chroma).
        left_sited: a subsampled sample j sits on luma sample ``sub * j`` (else centred between).
    """
    if kernel not in _SUPPORT:
        raise ValueError(f"unknown kernel '{kernel}': choose from {', '.join(KERNELS)}")
    fn, support = _SUPPORT[kernel]

    def siting(sub: int) -> float:
        return 0.0 if (left_sited or sub == 1) else (sub - 1) / 2

    j = np.arange(out_len, dtype=np.float64)
    luma_pos = (out_sub * j + siting(out_sub) + 0.5) / scale - 0.5  # input luma index of output sample j
    centre = (luma_pos - siting(in_sub)) / in_sub  # in input-plane samples
    step = out_sub / (scale * in_sub)  # input-plane samples per output sample
    stretch = max(1.0, step)  # antialias: widen the kernel when shrinking
    radius = support * stretch
    taps = int(math.ceil(2 * radius)) + 2
    first = np.floor(centre - radius).astype(np.int64) + 1
    idx = first[:, None] + np.arange(taps)[None, :]
    w = fn((centre[:, None] - idx) / stretch)
    w = w / w.sum(axis=1, keepdims=True)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), np.clip(idx, 0, in_len - 1).ravel()), w.ravel())
    matrix.flags.writeable = False
    return matrix
