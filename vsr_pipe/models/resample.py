"""Separable resampling of planes by dense weight matrices: any factor, any kernel, chroma siting.

``resize_planes`` maps (N, C, h, w) to (N, C, H, W) as ``Wy @ x @ Wx^T``. Shrinking stretches the
kernel by the factor (antialiasing, as MATLAB's ``imresize`` does); edges replicate. For subsampled
chroma, ``in_sub``/``out_sub`` and ``left_sited`` place the samples where MPEG-2/H.264 put them, so that
chroma does not drift against luma when the frame is rescaled.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from .resample_weights import KERNELS, resize_weights  # noqa: F401 (KERNELS: the names callers know)


@lru_cache(maxsize=64)
def resize_matrix(*args) -> torch.Tensor:
    """:func:`resize_weights` (same arguments) as a float64 tensor."""
    return torch.tensor(resize_weights(*args))


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
