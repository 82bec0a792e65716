"""ESPCN: efficient sub-pixel CNN (Shi et al., CVPR 2016, arXiv 1609.05158).

conv 5x5 (64) -> tanh -> conv 3x3 (32) -> tanh -> conv 3x3 (r^2 * C) -> pixel shuffle. The last
layer is linear, as in the paper. One addition: the network predicts a residual over the
nearest-neighbour upscale of its input (as SRVGGNetCompact does), which costs one add per output
pixel and makes training converge faster; ``residual=False`` gives the paper's network exactly.
"""

from __future__ import annotations

import torch
from torch import nn


class ESPCN(nn.Module):
    """Sub-pixel CNN for one integer scale.

    Args:
        scale: integer upscale factor r (2, 3, 4, ...).
        num_ch: image channels in and out (1 for Y, 3 for RGB).
        num_feat: channels of the first and second layer (the paper's 64 and 32).
        residual: add the nearest-neighbour upscale of the input to the output.

    Input (N, C, H, W) float in [0, 1]; output (N, C, r*H, r*W), unclipped.
    """

    def __init__(self, scale: int, num_ch: int = 1, num_feat: tuple[int, int] = (64, 32), residual: bool = True):
        super().__init__()
        if scale < 1:
            raise ValueError(f"ESPCN scale must be a positive integer, got {scale}")
        self.scale = int(scale)
        self.num_ch = int(num_ch)
        self.residual = bool(residual)
        self.conv_first = nn.Conv2d(num_ch, num_feat[0], 5, padding=2)
        self.conv_body = nn.Conv2d(num_feat[0], num_feat[1], 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat[1], num_ch * scale * scale, 3, padding=1)
        self.upsample = nn.PixelShuffle(scale)
        nn.init.zeros_(self.conv_last.bias)
        if residual:
            # Start as the nearest-neighbour upscale: the residual branch begins near zero.
            nn.init.normal_(self.conv_last.weight, std=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = torch.tanh(self.conv_first(x))
        feat = torch.tanh(self.conv_body(feat))
        out = self.conv_last(feat)
        if self.residual:
            # Nearest-neighbour upscale in sub-pixel space: every one of the r^2 phases gets x.
            out = out + x.repeat_interleave(self.scale * self.scale, dim=1)
        return self.upsample(out)

    @property
    def receptive_radius(self) -> int:
        """Input pixels needed on each side of a pixel for an exact result (tiling halo)."""
        return 2 + 1 + 1
