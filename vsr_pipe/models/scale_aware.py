"""A scale-aware sub-pixel head for ESPCN: one network for any factor, non-integer too.

The ESPCN body (conv 5x5 -> tanh -> conv 3x3 -> tanh) runs once at LR. Each output pixel maps to a
continuous LR position; the head takes ``num_basis`` feature maps (a 3x3 conv of the body's
features, i.e. a low-rank form of a 3x3 filter bank) at the nearest LR pixel and mixes them with
weights predicted, in the spirit of Meta-SR, by a small MLP from the pixel's sub-pixel offset and
the factor. The result is added to a bicubic upscale of the input.
Built to be measured against "next integer ESPCN + antialiased resample" at x1.5 and x2.5.
"""

from __future__ import annotations

import torch
from torch import nn

from .resample import resize_planes


class ScaleAwareESPCN(nn.Module):
    """Input (N, 1, h, w) float in [0, 1]; ``forward(x, out_h, out_w)`` -> (N, 1, out_h, out_w)."""

    def __init__(self, num_feat: tuple[int, int] = (64, 32), num_basis: int = 16, hidden: int = 64):
        super().__init__()
        self.conv_first = nn.Conv2d(1, num_feat[0], 5, padding=2)
        self.conv_body = nn.Conv2d(num_feat[0], num_feat[1], 3, padding=1)
        self.conv_head = nn.Conv2d(num_feat[1], num_basis, 3, padding=1)
        self.taps = num_basis
        self.filter_mlp = nn.Sequential(
            nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, self.taps + 1)
        )
        nn.init.zeros_(self.filter_mlp[-1].weight)
        nn.init.zeros_(self.filter_mlp[-1].bias)

    @staticmethod
    def _axis(in_len: int, out_len: int, device) -> tuple[torch.Tensor, torch.Tensor, float]:
        scale = out_len / in_len
        pos = (torch.arange(out_len, device=device, dtype=torch.float32) + 0.5) / scale - 0.5
        nearest = pos.round().clamp(0, in_len - 1)
        return nearest.long(), pos - nearest, 1.0 / scale

    def forward(self, x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        n, _, h, w = x.shape
        feat = torch.tanh(self.conv_body(torch.tanh(self.conv_first(x))))
        patches = self.conv_head(feat)
        iy, dy, sy = self._axis(h, out_h, x.device)
        ix, dx, sx = self._axis(w, out_w, x.device)
        gathered = patches[:, :, iy][:, :, :, ix]  # (N, taps, out_h, out_w)
        grid = torch.stack(torch.broadcast_tensors(dy[:, None], dx[None, :]), -1)  # (out_h, out_w, 2)
        cond = torch.cat([grid, grid.new_tensor([sy, sx]).expand(out_h, out_w, 2)], -1)
        filters = self.filter_mlp(cond)  # (out_h, out_w, taps + 1)
        weight = filters[..., :-1].permute(2, 0, 1)
        residual = (gathered * weight).sum(1, keepdim=True) + filters[..., -1]
        base = resize_planes(x, out_h, out_w, out_h / h, out_w / w, "bicubic")
        return base + residual
