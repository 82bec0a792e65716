"""Run an upscaler tile by tile, for frames too large to fit in memory at once.

Each tile is cut with a halo of input pixels on every inner side; only the tile's own region of the
output is kept. For a fully convolutional model whose receptive radius is at most the halo, the
stitched result equals the untiled one (the image's outer border is padded the same either way).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, halo: int, scale: int
) -> torch.Tensor:
    """Apply ``fn`` (N, C, h, w) -> (N, C, h*scale, w*scale) on ``tile``-sized pieces of ``x``."""
    n, c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - halo, 0), max(left - halo, 0)
            b0, r0 = min(bottom + halo, h), min(right + halo, w)
            piece = fn(x[:, :, t0:b0, l0:r0])
            if out is None:
                out = piece.new_empty((n, piece.shape[1], h * scale, w * scale))
            dy, dx = (top - t0) * scale, (left - l0) * scale
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = piece[
                :, :, dy : dy + (bottom - top) * scale, dx : dx + (right - left) * scale
            ]
    return out
