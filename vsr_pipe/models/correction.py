"""A small residual CNN that corrects a frozen generic restorer: the per-chunk part of a delivery.

``Corrected(base, CorrectionNet(r))`` computes ``y = base(x)`` and adds a correction that the
network predicts at the LR resolution in sub-pixel form: it sees the LR and ``y`` folded into r×r
phases (pixel unshuffle), and its r² output channels are unfolded (pixel shuffle) and added to ``y``.
Working at LR resolution costs r² times less than a CNN on the output. The last layer starts at
zero, so an untrained correction leaves the base model's output exactly as it was.

Only the correction is trained per chunk (the base stays the generic model the client already has),
so only its weights travel with the video.
"""

from __future__ import annotations

import torch
from torch import nn


class CorrectionNet(nn.Module):
    """Residual CNN on (LR, unshuffled base output) -> sub-pixel correction.

    Args:
        scale: integer factor r between the base model's input and output.
        features: channels of the hidden layers.
        blocks: residual blocks (two 3×3 convs and a ReLU each) between the head and the tail.

    ``forward(x, y)``: x (N, 1, h, w) and y (N, 1, r·h, r·w), float in [0, 1]; returns the
    correction (N, 1, r·h, r·w).
    """

    def __init__(self, scale: int, features: int = 32, blocks: int = 4):
        super().__init__()
        if scale < 1 or features < 1 or blocks < 0:
            raise ValueError(f"correction scale {scale}, features {features}, blocks {blocks}: need >= 1, >= 1, >= 0")
        self.scale, self.features, self.blocks = int(scale), int(features), int(blocks)
        phases = self.scale * self.scale
        self.unshuffle = nn.PixelUnshuffle(self.scale)
        self.shuffle = nn.PixelShuffle(self.scale)
        self.head = nn.Conv2d(1 + phases, features, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(features, features, 3, padding=1), nn.ReLU(), nn.Conv2d(features, features, 3, padding=1)
            )
            for _ in range(self.blocks)
        )
        self.tail = nn.Conv2d(features, phases, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        feat = torch.relu(self.head(torch.cat([x, self.unshuffle(y)], 1)))
        for block in self.body:
            feat = feat + block(feat)
        return self.shuffle(self.tail(feat))

    @property
    def receptive_radius(self) -> int:
        """LR pixels needed on each side of a pixel (head, two per block, tail)."""
        return 2 + 2 * self.blocks


class Corrected(nn.Module):
    """``base`` (LR (N, 1, h, w) -> HR (N, 1, r·h, r·w)) plus a :class:`CorrectionNet`."""

    def __init__(self, base: nn.Module, correction: CorrectionNet):
        super().__init__()
        self.base, self.correction = base, correction
        self.example_shape = getattr(base, "example_shape", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.correction(x, y)

    @property
    def receptive_radius(self) -> int:
        return getattr(self.base, "receptive_radius", 8) + self.correction.receptive_radius
