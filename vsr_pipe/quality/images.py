"""Super-resolution quality on an image folder, the benchmarks' way (``papers.md`` §1).

HR cropped to a multiple of the scale, LR by MATLAB bicubic rounded to 8 bits, Y-PSNR and Y-SSIM
with ``scale`` border pixels shaved, averaged over images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.matlab_resize import imresize
from .imagefiles import list_images, load_rgb, modcrop
from .metrics import psnr_y, rgb_to_y, ssim_y

# An upscaler takes an (h, w, 3) float64 RGB LR in [0, 255] and returns (h*s, w*s, 3) in [0, 255].
Upscaler = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class SetScore:
    name: str
    scale: int
    psnr: float
    ssim: float
    per_image: tuple[tuple[str, float, float], ...]


def bicubic_upscaler(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
    return imresize(lr_rgb, scale)


def evaluate_folder(folder: str | Path, scale: int, upscale: Upscaler, with_ssim: bool = True) -> SetScore:
    """Mean Y-PSNR/SSIM of ``upscale`` over the images in ``folder``."""
    rows = []
    for path in list_images(folder):
        hr = modcrop(load_rgb(path), scale)
        lr = np.clip(np.round(imresize(hr, 1.0 / scale)), 0, 255)
        sr = np.clip(np.round(upscale(lr, scale)), 0, 255)
        p = psnr_y(sr, hr, scale)
        s = ssim_y(sr, hr, scale) if with_ssim else float("nan")
        rows.append((path.name, p, s))
    return SetScore(
        name=Path(folder).name,
        scale=scale,
        psnr=float(np.mean([r[1] for r in rows])),
        ssim=float(np.mean([r[2] for r in rows])),
        per_image=tuple(rows),
    )


def luma_upscaler(upscale_y: Callable[[np.ndarray], np.ndarray]) -> Upscaler:
    """Build an RGB upscaler from one that works on Y in [0, 1].

    Y goes through ``upscale_y``; Cb/Cr are bicubic-upscaled; the result is turned back to RGB with
    MATLAB's BT.601 studio-swing matrix. Only Y is measured, so chroma only matters for pictures.
    """

    def run(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        y = rgb_to_y(lr_rgb) / 255.0
        sr_y = upscale_y(y) * 255.0
        ycbcr = _rgb_to_ycbcr(lr_rgb)
        up = imresize(ycbcr, scale)
        up[..., 0] = sr_y
        return _ycbcr_to_rgb(up)

    return run


_M = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])


def _rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    return rgb @ _M.T + _OFFSET


def _ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    return (ycbcr - _OFFSET) @ np.linalg.inv(_M).T


def model_upscaler(model) -> Upscaler:
    """An upscaler from a torch model on Y (1 channel) or RGB (3 channels) in [0, 1]."""
    import torch

    model.eval()
    if getattr(model, "num_ch", 1) == 1:

        def run_y(y: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(y).float()[None, None])[0, 0].double().numpy()

        return luma_upscaler(run_y)

    def run_rgb(lr_rgb: np.ndarray, scale: int) -> np.ndarray:
        x = torch.from_numpy(lr_rgb.transpose(2, 0, 1) / 255.0).float()[None]
        with torch.no_grad():
            return model(x)[0].double().numpy().transpose(1, 2, 0) * 255.0

    return run_rgb
