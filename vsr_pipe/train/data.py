"""Training pairs from image folders: HR and MATLAB-bicubic LR, on Y or RGB, as random patches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidOption
from ..models.matlab_resize import imresize
from ..quality.imagefiles import list_images, load_rgb, modcrop
from ..quality.metrics import rgb_to_y


def training_folders(data_dir: str | Path) -> tuple[tuple[str, ...], str]:
    """(training folders, validation folder) of a data folder holding T91/, BSD200/ and Set5/."""
    data_dir = Path(data_dir)
    for sub in ("T91", "BSD200", "Set5"):
        if not (data_dir / sub).is_dir():
            raise InvalidOption(f"training data folder {data_dir / sub} not found (give --data)")
    return (str(data_dir / "T91"), str(data_dir / "BSD200")), str(data_dir / "Set5")


def make_pair(hr_rgb: np.ndarray, scale: int, luma: bool) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) float32 in [0, 1], shaped (C, h, w) and (C, h*s, w*s).

    The LR is MATLAB bicubic of the RGB HR rounded to 8 bits, as a stored LR image would be; with
    ``luma`` both are reduced to BT.601 studio Y.
    """
    hr = modcrop(hr_rgb, scale)
    lr = np.clip(np.round(imresize(hr, 1.0 / scale)), 0, 255)
    if luma:
        hr, lr = rgb_to_y(hr)[None], rgb_to_y(lr)[None]
    else:
        hr, lr = hr.transpose(2, 0, 1), lr.transpose(2, 0, 1)
    return (lr / 255.0).astype(np.float32), (hr / 255.0).astype(np.float32)


@dataclass(frozen=True)
class PatchConfig:
    scale: int
    lr_patch: int = 24
    luma: bool = True
    # FSRCNN-style data augmentation: each image also enters at these downscaled sizes.
    size_factors: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6)


class PatchSampler:
    """Random aligned (LR, HR) patches with flips and 90-degree turns, from pairs held in memory."""

    def __init__(self, folders: list[str | Path], config: PatchConfig, seed: int = 0, log=print):
        self.config = config
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        files = [f for folder in folders for f in list_images(folder)]
        for i, path in enumerate(files):
            rgb = load_rgb(path)
            for factor in config.size_factors:
                img = rgb if factor == 1.0 else np.clip(imresize(rgb, factor), 0, 255)
                lr, hr = make_pair(img, config.scale, config.luma)
                if min(lr.shape[1:]) >= config.lr_patch:
                    self.pairs.append((lr, hr))
            if log and (i + 1) % 50 == 0:
                log(f"prepared {i + 1}/{len(files)} training images")
        areas = np.array([lr.shape[1] * lr.shape[2] for lr, _ in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(size, C, p, p) LR and (size, C, p*s, p*s) HR float32 patches."""
        p, s = self.config.lr_patch, self.config.scale
        idx = self.rng.choice(len(self.pairs), size=size, p=self.weights)
        lrs, hrs = [], []
        for i in idx:
            lr, hr = self.pairs[i]
            y = self.rng.integers(0, lr.shape[1] - p + 1)
            x = self.rng.integers(0, lr.shape[2] - p + 1)
            lr_patch = lr[:, y : y + p, x : x + p]
            hr_patch = hr[:, y * s : (y + p) * s, x * s : (x + p) * s]
            k = self.rng.integers(0, 4)
            flip = self.rng.integers(0, 2)
            lr_patch, hr_patch = np.rot90(lr_patch, k, (1, 2)), np.rot90(hr_patch, k, (1, 2))
            if flip:
                lr_patch, hr_patch = lr_patch[:, :, ::-1], hr_patch[:, :, ::-1]
            lrs.append(lr_patch)
            hrs.append(hr_patch)
        return np.ascontiguousarray(np.stack(lrs)), np.ascontiguousarray(np.stack(hrs))


def video_luma(path: str) -> np.ndarray:
    """Every frame's luma of a video file, (T, H, W) uint8 (8-bit sources only)."""
    from ..io.keyframes import luma_frames

    try:
        frames = [y for y, _ in luma_frames(path)]
    except Exception as e:  # a missing or unreadable file: one line, not a traceback
        raise SystemExit(f"--video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not frames or frames[0].dtype != np.uint8:
        raise SystemExit(f"--video {path}: no 8-bit video frames")
    return np.stack(frames)
