"""Invertible rescaling blocks in the line of IRN (Xiao et al., ECCV 2020; ``papers.md`` §2).

A Haar split turns (N, C, H, W) into (N, 4C, H/2, W/2) (low band = the 2x2 mean, as IRN divides by
4); affine-coupling blocks then mix the low-frequency part (the LR image) with the high-frequency
part (the latent z). ``downscale`` and ``upscale`` are separate methods, so each direction traces to
its own graph; nothing is stored on ``self`` during a call.

This module holds the integer-factor invertible core (x2 per Haar level). The arbitrary-scale
rescaler that the delivery path needs builds on it.
"""

from __future__ import annotations

import torch
from torch import nn


class HaarSplit(nn.Module):
    """Invertible 2x2 Haar transform; the low band is the 2x2 mean (IRN's /4 convention)."""

    def __init__(self, channels: int):
        super().__init__()
        base = torch.tensor(
            [[[1, 1], [1, 1]], [[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]], dtype=torch.float32
        )
        self.channels = channels
        self.register_buffer("weight", base.repeat(channels, 1, 1).unsqueeze(1) / 4.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 4C, H/2, W/2), ordered [all low bands | the three high bands per channel]."""
        n, c, h, w = x.shape
        y = nn.functional.conv2d(x, self.weight, stride=2, groups=c)  # (N, 4C, ...), per channel LL,HL,LH,HH
        y = y.view(n, c, 4, h // 2, w // 2).transpose(1, 2).reshape(n, 4 * c, h // 2, w // 2)
        return y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = y.shape
        c = c4 // 4
        y = y.view(n, 4, c, h, w).transpose(1, 2).reshape(n, c4, h, w)
        # The filters are orthogonal with norm 1 after x4 / 4: the inverse is the transpose times 4.
        return nn.functional.conv_transpose2d(y, self.weight * 4.0, stride=2, groups=c)


class DenseSubnet(nn.Module):
    """IRN's dense block, slimmed: ``convs`` 3x3 convs with growth ``growth``, LeakyReLU 0.2, last conv
    zero-initialised so that every coupling starts as the identity."""

    def __init__(self, c_in: int, c_out: int, growth: int = 16, convs: int = 3, cond: int = 0):
        super().__init__()
        # Conditioning maps (scale and sub-pixel phase) enter the first conv only: cheap, and the
        # dense concatenation carries what it made of them to every later layer.
        self.cond_channels = cond
        self.first = nn.Conv2d(c_in + cond, growth, 3, padding=1)
        self.layers = nn.ModuleList(nn.Conv2d(c_in + i * growth, growth, 3, padding=1) for i in range(1, convs - 1))
        self.last = nn.Conv2d(c_in + (convs - 1) * growth, c_out, 3, padding=1)
        for layer in (self.first, *self.layers):
            nn.init.xavier_normal_(layer.weight, gain=0.1)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        # A model may read only the leading channels of the maps (older weights know fewer).
        if cond is not None:
            cond = cond[:, : self.cond_channels].expand(x.shape[0], -1, -1, -1)
        first_in = x if cond is None else torch.cat([x, cond], 1)
        feats = [x, nn.functional.leaky_relu(self.first(first_in), 0.2)]
        for layer in self.layers:
            feats.append(nn.functional.leaky_relu(layer(torch.cat(feats, 1)), 0.2))
        return self.last(torch.cat(feats, 1))


class CouplingBlock(nn.Module):
    """y1 = x1 + F(x2);  y2 = x2 * exp(s) + G(y1),  s = clamp * (2 sigmoid(H(y1)) - 1).  Exactly invertible."""

    def __init__(self, channels: int, split: int, growth: int = 16, convs: int = 3, clamp: float = 1.0, cond: int = 0):
        super().__init__()
        self.split, self.clamp = split, clamp
        rest = channels - split
        self.f = DenseSubnet(rest, split, growth, convs, cond)
        self.g = DenseSubnet(split, rest, growth, convs, cond)
        self.h = DenseSubnet(split, rest, growth, convs, cond)

    def _scale(self, y1: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.clamp * (torch.sigmoid(self.h(y1, cond)) * 2 - 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        y1 = x1 + self.f(x2, cond)
        y2 = x2 * torch.exp(self._scale(y1, cond)) + self.g(y1, cond)
        return torch.cat([y1, y2], 1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        y1, y2 = y[:, : self.split], y[:, self.split :]
        x2 = (y2 - self.g(y1, cond)) * torch.exp(-self._scale(y1, cond))
        x1 = y1 - self.f(x2, cond)
        return torch.cat([x1, x2], 1)


class InvertibleRescaler(nn.Module):
    """Haar + coupling blocks per x2 level: ``downscale`` gives (LR, z), ``upscale`` inverts.

    Args:
        levels: number of x2 levels (1 for x2, 2 for x4).
        blocks: coupling blocks per level.
        channels: image channels (3 for RGB).
    Input (N, C, H, W) float in [0, 1] with H and W divisible by 2**levels.
    """

    def __init__(self, levels: int = 1, blocks: int = 4, channels: int = 3, growth: int = 16, convs: int = 3):
        super().__init__()
        self.levels, self.channels = levels, channels
        stages = []
        c = channels
        for _ in range(levels):
            stages.append(HaarSplit(c))
            c *= 4
            stages.extend(CouplingBlock(c, channels, growth, convs) for _ in range(blocks))
        self.stages = nn.ModuleList(stages)

    @property
    def scale(self) -> int:
        return 2**self.levels

    def downscale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """HR (N, C, H, W) -> (LR (N, C, H/s, W/s), z (N, C*(s*s-1), H/s, W/s)); LR unquantised."""
        for stage in self.stages:
            x = stage(x)
        return x[:, : self.channels], x[:, self.channels :]

    def upscale(self, lr: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """LR (and z; drawn from N(0, 1) when None) -> HR."""
        if z is None:
            n, _, h, w = lr.shape
            z = torch.randn(n, self.channels * (self.scale**2 - 1), h, w, device=lr.device, dtype=lr.dtype)
        y = torch.cat([lr, z], 1)
        for stage in reversed(self.stages):
            y = stage.inverse(y)
        return y
