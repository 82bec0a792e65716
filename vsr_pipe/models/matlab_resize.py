"""MATLAB-compatible ``imresize`` with the bicubic kernel (antialiased when shrinking).

The field's benchmarks make LR images with MATLAB's ``imresize(HR, 1/s, 'bicubic')``; any other
resizer moves PSNR by 0.5 to 9 dB (``papers.md`` §1), so training and evaluation both use this one.
Works on float64 numpy arrays of shape (H, W) or (H, W, C); values are not clipped or rounded.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5, as MATLAB uses."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (out_len, P) and weights (out_len, P) of the input samples behind each output."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # Mirror out-of-range taps back into the image, as MATLAB's symmetric padding does.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0, axis=0)
    return indices[:, keep], weights[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    indices, weights = _contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img, axis, 0)
    gathered = moved[indices]  # (out_len, P, ...)
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * w).sum(axis=1), 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale, 'bicubic')``.

    Args:
        img: (H, W) or (H, W, C) array; converted to float64.
        scale: factor applied to both sides (0.5 halves), or None when ``size`` is given.
        size: (out_h, out_w); when both are given, ``size`` wins and the per-axis factors follow.
    Returns:
        float64 array of the new size, unclipped.
    """
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape[:2]
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        scale_h = scale_w = float(scale)
    else:
        scale_h, scale_w = size[0] / h, size[1] / w
    # MATLAB resizes the dimension with the smaller factor first.
    order = (0, 1) if scale_h <= scale_w else (1, 0)
    out = img
    for axis in order:
        out = _resize_axis(out, axis, size[axis], scale_h if axis == 0 else scale_w)
    return out


def imresize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """(out_len, in_len) float64 matrix of MATLAB's bicubic resize along one axis.

    Resizing is separable and linear, so ``Mh @ img @ Mw.T`` equals ``imresize(img, size=...)`` on a
    plane (before any rounding); training uses it to make guide LRs for whole batches at once.
    """
    indices, weights = _contributions(in_len, out_len, out_len / in_len)
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), indices.shape[1]), indices.ravel()), weights.ravel())
    return matrix
