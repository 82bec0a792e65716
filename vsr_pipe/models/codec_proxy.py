"""A differentiable stand-in for a video codec's intra coding, to train the rescaler against.

The LR a user keeps is coded (H.264 at CRF 18-23, say) before anyone restores it; a rescaler trained
only on lossless LR hides detail in exactly the small high-frequency coefficients a codec discards.
This stand-in does what an intra coder does to a Y plane, in the idea behind IRN's compression variant
and VCISR: 8x8 block DCT, a frequency-weighted uniform quantiser (JPEG's luma table, scaled), and the
inverse DCT. Rounding passes its gradient straight through, so the rescaler learns which coefficients
survive. ``strength`` scales the table (1 is JPEG quality 50); :data:`CRF_STRENGTH` maps x264 CRFs to
the strength whose PSNR on an LR plane matches libx264's (``bench/codec_proxy.py`` measures it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK = 8
# JPEG Annex K luma quantisation table, in 8-bit code units.
JPEG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
# Strength whose Y-PSNR on bicubic x2 LR planes of Set5 matches libx264 intra at that CRF (medium preset).
CRF_STRENGTH = {18: 0.065, 23: 0.131}


def dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """Orthonormal DCT-II matrix: coefficients = D @ block @ D.T."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def _round_straight_through(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def code_intra(y: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) Y in [0, 1] -> the same after block-DCT quantisation at ``strength`` (a float, or
    one per sample as an (N,) tensor). Any size: edges are padded by replication and cropped after."""
    n, c, h, w = y.shape
    ph, pw = -h % BLOCK, -w % BLOCK
    x = F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
    hh, ww = x.shape[-2:]
    blocks = x.reshape(n, c, hh // BLOCK, BLOCK, ww // BLOCK, BLOCK).transpose(3, 4)  # (..., 8, 8)
    d = dct_matrix().to(y)
    coeffs = d @ (blocks * 255 - 128) @ d.T
    step = torch.tensor(JPEG_LUMA, dtype=y.dtype, device=y.device)
    s = torch.as_tensor(strength, dtype=y.dtype, device=y.device).reshape(-1, 1, 1, 1, 1, 1)
    step = (step * s).clamp_min(1e-3)
    coded = _round_straight_through(coeffs / step) * step
    out = (d.T @ coded @ d + 128) / 255
    out = out.transpose(3, 4).reshape(n, c, hh, ww)[..., :h, :w]
    return out
