"""Rescaling quality on an image folder, as the invertible-rescaling papers measure it (``papers.md`` §2).

Per image: the HR's BT.601 studio Y (cropped to a multiple of the factor for integer factors, of 12
otherwise, as AIDN does); the model's LR, rounded to 8-bit codes as a stored video would be;
the restoration from that LR with z drawn from N(0, 1) (fixed seed; ``temperature`` 0: z = 0). Reported: restored Y-PSNR/SSIM
with ``ceil(factor)`` border pixels shaved, and the LR's Y-PSNR/SSIM against the MATLAB-bicubic LR
with no shave. ``cycles`` > 1 repeats down and up on the restored image (cycle idempotence).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.matlab_resize import imresize
from ..models.rescaler import ArbitraryRescaler, RescaleGeometry, quantise_8bit
from .imagefiles import list_images, load_rgb, modcrop
from .metrics import psnr, rgb_to_y, shave, ssim

# Optional transform of the 8-bit LR Y codes between down and up (e.g. an H.264 round trip).
LrChannel = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RescaleScore:
    name: str
    factor: tuple[float, float]  # (y, x)
    psnr: float  # restored vs HR, Y, shaved
    ssim: float
    lr_psnr: float  # model LR vs MATLAB-bicubic LR, Y, no shave
    lr_ssim: float
    cycles: int = 1
    temperature: float = 1.0


def crop_for(hr: np.ndarray, factor_y: float, factor_x: float) -> np.ndarray:
    """Integer factors: a multiple of the factor ("GTmod"); others: a multiple of 12 (AIDN)."""
    if float(factor_y).is_integer() and float(factor_x).is_integer() and factor_x == factor_y:
        return modcrop(hr, int(factor_y))
    return modcrop(hr, 12)


@torch.no_grad()
def down_up(
    model: ArbitraryRescaler,
    y: np.ndarray,
    factor_y: float,
    factor_x: float,
    generator: torch.Generator,
    channel: LrChannel | None = None,
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(LR codes, restored codes) for one Y plane in [0, 255]; both float64, rounded and clipped.
    z is drawn from N(0, temperature^2): 1 is the papers' protocol, 0 restores from z = 0."""
    geometry = RescaleGeometry.for_factor(*y.shape, factor_y, factor_x)
    t = geometry.tensors()
    hr = torch.from_numpy(y / 255.0).float()[None, None]
    lr, _ = model.down(hr, t.up_rows, t.up_cols, t.conds)
    lr_codes = (quantise_8bit(lr) * 255).round()[0, 0].double().numpy()
    if channel is not None:
        lr_codes = np.clip(np.round(channel(lr_codes)), 0, 255)
    lr_in = torch.from_numpy(lr_codes / 255.0).float()[None, None]
    z = torch.randn((1, model.latent_channels(geometry.levels), *geometry.lr), generator=generator) * temperature
    out = model.up(lr_in, z, t.inv_rows, t.inv_cols, t.conds)
    restored = np.clip(np.round(out[0, 0].double().numpy() * 255), 0, 255)
    return lr_codes, restored


def evaluate_rescaling(
    folder: str | Path,
    model: ArbitraryRescaler,
    factor_y: float,
    factor_x: float | None = None,
    cycles: int = 1,
    seed: int = 0,
    channel: LrChannel | None = None,
    with_ssim: bool = True,
    temperature: float = 1.0,
) -> RescaleScore:
    """Mean scores of ``model`` over the images of ``folder`` at one (possibly asymmetric) factor."""
    factor_x = factor_y if factor_x is None else factor_x
    model = model.eval().float()
    generator = torch.Generator().manual_seed(seed)
    border = math.ceil(max(factor_x, factor_y))
    rows = []
    for path in list_images(folder):
        rgb = crop_for(load_rgb(path), factor_y, factor_x)
        hr_y = np.clip(rgb_to_y(rgb), 0, 255)
        geometry = RescaleGeometry.for_factor(*hr_y.shape, factor_y, factor_x)
        ref_lr = rgb_to_y(np.clip(np.round(imresize(rgb, size=geometry.lr)), 0, 255))
        current = np.round(hr_y)
        lr = None
        for _ in range(cycles):
            lr_c, current = down_up(model, current, factor_y, factor_x, generator, channel, temperature)
            lr = lr_c if lr is None else lr
        assert lr is not None
        hr_s, out_s = shave(hr_y, border), shave(current, border)
        rows.append(
            (
                psnr(out_s, hr_s),
                ssim(out_s, hr_s) if with_ssim else float("nan"),
                psnr(lr, ref_lr),
                ssim(lr, ref_lr) if with_ssim else float("nan"),
            )
        )
    m = np.mean(np.array(rows), axis=0)
    return RescaleScore(
        Path(folder).name, (factor_y, factor_x), *(float(v) for v in m), cycles=cycles, temperature=temperature
    )
