"""Per-frame quality of a video against a reference: Y-PSNR and Y-SSIM, frame by frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOption
from ..io.base import Frame
from ..io.decode import AvSource
from .metrics import psnr, ssim


@dataclass(frozen=True)
class FrameScores:
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]

    @property
    def mean_psnr(self) -> float:
        finite = [p for p in self.psnr if np.isfinite(p)]
        return float(np.mean(finite)) if finite else float("inf")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim)) if self.ssim else float("nan")


def _luma_frames(path: str):
    """Each frame's Y on the 8-bit scale (10-bit codes / 4), as float64."""
    with AvSource(path) as src:
        bits = src.facts.layout.bits
        for item in src.items():
            if isinstance(item, Frame):
                yield item.planes[0].astype(np.float64) / (1 << (bits - 8))


def compare_videos(reference: str, test: str, with_ssim: bool = True, border: int = 0) -> FrameScores:
    """Y-PSNR (peak 255, 8-bit scale) and SSIM per frame; frames are paired in decode order."""
    psnrs, ssims = [], []
    for i, (a, b) in enumerate(zip(_luma_frames(reference), _luma_frames(test))):
        if a.shape != b.shape:
            raise InvalidOption(f"frame {i}: sizes differ ({a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]})")
        if border:
            a, b = a[border:-border, border:-border], b[border:-border, border:-border]
        psnrs.append(psnr(a, b))
        if with_ssim:
            ssims.append(ssim(a, b))
    return FrameScores(tuple(psnrs), tuple(ssims))
