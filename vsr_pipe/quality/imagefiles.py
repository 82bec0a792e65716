"""Reading benchmark images: folder listing, RGB loading, modcrop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputNotFound

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFound(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputNotFound(f"no images in {folder}")
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) float64 RGB in [0, 255]; grey images are repeated to three channels."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale`` (the benchmarks' 'GTmod' step)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
