"""Separable resampling of planes by dense weight matrices: any factor, any kernel, chroma siting.

``resize_planes`` maps (N, C, h, w) to (N, C, H, W) as ``Wy @ x @ Wx^T``. Shrinking stretches the
kernel by the factor (antialiasing, as MATLAB's ``imresize`` does); edges replicate. For subsampled
chroma, ``in_sub``/``out_sub`` and ``left_sited`` place the samples where MPEG-2/H.264 put them, so that
chroma does not drift against luma when the frame is rescaled.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

KERNELS = ("bicubic", "lanczos", "bilinear")


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    return torch.where(
        ax <= 1,
        1.5 * ax**3 - 2.5 * ax**2 + 1,
        torch.where(ax < 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, torch.zeros_like(ax)),
    )


def _lanczos3(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < 3, torch.sinc(x) * torch.sinc(x / 3), torch.zeros_like(x))


def _linear(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp(min=0)


_SUPPORT = {"bicubic": (_cubic, 2.0), "lanczos": (_lanczos3, 3.0), "bilinear": (_linear, 1.0)}


@lru_cache(maxsize=64)
def resize_matrix(
    in_len: int,
    out_len: int,
    scale: float,
    kernel: str = "bicubic",
    in_sub: int = 1,
    out_sub: int = 1,
    left_sited: bool = False,
) -> torch.Tensor:
    """(out_len, in_len) float64 weights; rows sum to 1.

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

    j = torch.arange(out_len, dtype=torch.float64)
    luma_pos = (out_sub * j + siting(out_sub) + 0.5) / scale - 0.5  # input luma index of output sample j
    centre = (luma_pos - siting(in_sub)) / in_sub  # in input-plane samples
    step = out_sub / (scale * in_sub)  # input-plane samples per output sample
    stretch = max(1.0, step)  # antialias: widen the kernel when shrinking
    radius = support * stretch
    taps = int(math.ceil(2 * radius)) + 2
    first = torch.floor(centre - radius).long() + 1
    idx = first[:, None] + torch.arange(taps)[None, :]
    w = fn((centre[:, None] - idx) / stretch)
    w = w / w.sum(dim=1, keepdim=True)
    idx = idx.clamp(0, in_len - 1)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, idx, w)
    return matrix


def resize_planes(
    x: torch.Tensor,
    out_h: int,
    out_w: int,
    scale_y: float,
    scale_x: float,
    kernel: str = "bicubic",
    in_sub: tuple[int, int] = (1, 1),
    out_sub: tuple[int, int] = (1, 1),
    left_sited: bool = False,
) -> torch.Tensor:
    """Resample (N, C, h, w) float planes to (N, C, out_h, out_w).

    ``scale_y``/``scale_x`` are the frame's luma factors; ``in_sub``/``out_sub`` are the
    (vertical, horizontal) subsampling of the input and output planes relative to luma;
    ``left_sited`` applies to the horizontal axis only (vertical 4:2:0 chroma is centred).
    """
    h, w = x.shape[-2:]
    if (h, w) == (out_h, out_w) and scale_x == 1 and scale_y == 1 and in_sub == out_sub:
        return x
    wy = resize_matrix(h, out_h, scale_y, kernel, in_sub[0], out_sub[0], False).to(x.device, x.dtype)
    wx = resize_matrix(w, out_w, scale_x, kernel, in_sub[1], out_sub[1], left_sited).to(x.device, x.dtype)
    return wy @ x @ wx.T
