"""Per-frame quality of a video against a reference: Y-PSNR and Y-SSIM, frame by frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOption
from ..io.decode import VideoSource, frame_planes, layout_for, working_format
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
    with VideoSource(path) as src:
        for kind, frame in src.items():
            if kind != "frame":
                continue
            fmt = working_format(frame.format.name)
            if fmt != frame.format.name:
                frame = frame.reformat(format=fmt)
            layout = layout_for(fmt, frame.width, frame.height, False)
            y = frame_planes(frame, layout)[0].astype(np.float64)
            yield y * (255.0 / layout.unit)


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
