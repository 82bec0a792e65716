"""Image quality on the field's terms: MATLAB BT.601 Y, border-shaved PSNR and SSIM.

Arrays are numpy, RGB values in [0, 255] (any float or integer dtype), shape (H, W, 3) or (H, W).
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma, studio swing: (H, W, 3) in [0, 255] -> (H, W) float64 in [16, 235].

    A 2-D input is taken as already being Y (grey images are measured as they are, not mapped to
    16-235, which would inflate PSNR; ``papers.md`` §1).
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 2:
        return rgb
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels on each side of the first two axes."""
    if border <= 0:
        return img
    return img[border:-border, border:-border]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two same-shaped arrays; inf when equal."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    w = np.outer(g, g)
    return w / w.sum()


def _filter_valid(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """2-D correlation keeping only fully-covered positions (MATLAB ``filter2(..., 'valid')``)."""
    from numpy.lib.stride_tricks import sliding_window_view

    patches = sliding_window_view(img, window.shape)
    return np.einsum("ijkl,kl->ij", patches, window)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """SSIM (Wang et al. 2004) of two single-channel images, Gaussian 11x11 window, sigma 1.5."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    w = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a**2
    var_b = _filter_valid(b * b, w) - mu_b**2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def psnr_y(sr_rgb: np.ndarray, hr_rgb: np.ndarray, border: int) -> float:
    """Y-PSNR the field's way: BT.601 studio Y of both, ``border`` pixels shaved."""
    return psnr(shave(rgb_to_y(sr_rgb), border), shave(rgb_to_y(hr_rgb), border))


def ssim_y(sr_rgb: np.ndarray, hr_rgb: np.ndarray, border: int) -> float:
    """Y-SSIM the field's way: BT.601 studio Y of both, ``border`` pixels shaved."""
    return ssim(shave(rgb_to_y(sr_rgb), border), shave(rgb_to_y(hr_rgb), border))
