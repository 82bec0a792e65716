"""Training pairs for a restorer that knows the codec: short pans over images, downscaled (MATLAB
bicubic), coded with x264/x265 at a spread of CRFs and decoded, against the pans' HR frames.

A pan is real video to an encoder — motion-compensated P/B frames, skip blocks where it stands still
— so the artefacts are those a delivered LR stream has, not a single intra-coded still. A third of the
pans stand still (a fixed camera, as surveillance and talking-head video are), the rest move by
whole and sub-pixel (in LR) steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.codec_roundtrip import code_frames, gray_frames
from ..models.matlab_resize import imresize_matrix
from ..quality.imagefiles import list_images, load_rgb
from ..quality.metrics import rgb_to_y


@dataclass(frozen=True)
class PanSettings:
    scale: int = 2
    lr_size: tuple[int, int] = (48, 64)  # (h, w) of each LR frame (T91 images are small)
    frames: int = 8
    pans_per_image: int = 4
    crfs: tuple[float, float] = (18, 48)  # drawn uniformly
    x265_share: float = 0.3
    still_share: float = 0.34
    max_speed: float = 3.0  # HR pixels per frame
    preset: str = "medium"


@dataclass(frozen=True)
class CodedPairs:
    """``lr`` (n, h, w) decoded LR Y codes, ``hr`` (n, r·h, r·w) HR Y codes, ``crf`` (n,), uint8/float32."""

    lr: np.ndarray
    hr: np.ndarray
    crf: np.ndarray


def coded_pairs(folders: list[str | Path], settings: PanSettings, seed: int = 0, log=print) -> CodedPairs:
    """Pans over every image of ``folders`` (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    files = [f for folder in folders for f in list_images(folder)]
    lrs, hrs, crfs = [], [], []
    for i, path in enumerate(files):
        luma = np.round(rgb_to_y(load_rgb(path))).astype(np.uint8)
        for _ in range(settings.pans_per_image):
            hr = _pan(luma, settings, rng)
            if hr is None:
                continue
            crf = float(rng.uniform(*settings.crfs))
            codec = "libx265" if rng.random() < settings.x265_share else "libx264"
            lr = [_downscale(h, settings.scale) for h in hr]
            lrs += code_frames(gray_frames(lr), codec, crf, settings.preset).luma
            hrs += hr
            crfs += [crf] * len(hr)
        if log and (i + 1) % 50 == 0:
            log(f"coded pans: {i + 1}/{len(files)} images, {len(lrs)} frames")
    return CodedPairs(np.stack(lrs), np.stack(hrs), np.asarray(crfs, np.float32))


def clip_pairs(clips: list[np.ndarray], settings: PanSettings, windows: int, seed: int = 0) -> CodedPairs:
    """``windows`` stretches of ``settings.frames`` consecutive frames of real video (``clips``: (T, H, W)
    uint8 luma each), cropped at random to the pans' size and coded as a pan is: the motion, noise
    and softness of a camera, which pans over photographs lack."""
    rng = np.random.default_rng(seed)
    h, w = settings.lr_size[0] * settings.scale, settings.lr_size[1] * settings.scale
    clips = [c for c in clips if c.shape[0] >= settings.frames and c.shape[1] >= h and c.shape[2] >= w]
    if not clips:
        raise ValueError(f"no clip has {settings.frames} frames of at least {w}x{h}")
    lrs, hrs, crfs = [], [], []
    for _ in range(windows):
        clip = clips[rng.integers(len(clips))]
        t0 = rng.integers(0, clip.shape[0] - settings.frames + 1)
        top, left = rng.integers(0, clip.shape[1] - h + 1), rng.integers(0, clip.shape[2] - w + 1)
        hr = [np.ascontiguousarray(f[top : top + h, left : left + w]) for f in clip[t0 : t0 + settings.frames]]
        crf = float(rng.uniform(*settings.crfs))
        codec = "libx265" if rng.random() < settings.x265_share else "libx264"
        lrs += code_frames(gray_frames([_downscale(f, settings.scale) for f in hr]), codec, crf, settings.preset).luma
        hrs += hr
        crfs += [crf] * len(hr)
    return CodedPairs(np.stack(lrs), np.stack(hrs), np.asarray(crfs, np.float32))


def _pan(luma: np.ndarray, s: PanSettings, rng: np.random.Generator) -> list[np.ndarray] | None:
    """``s.frames`` HR windows of size r·lr_size moving in a straight line, or None if it won't fit."""
    h, w = s.lr_size[0] * s.scale, s.lr_size[1] * s.scale
    still = rng.random() < s.still_share
    v = np.zeros(2) if still else rng.uniform(-s.max_speed, s.max_speed, 2)
    travel = np.abs(v) * (s.frames - 1)
    room = np.array(luma.shape) - (h, w) - np.ceil(travel)
    if (room < 0).any():
        return None
    start = rng.uniform(0, room + 1e-9) + np.where(v < 0, travel, 0)
    frames = []
    for t in range(s.frames):
        top, left = np.round(start + v * t).astype(int)
        frames.append(np.ascontiguousarray(luma[top : top + h, left : left + w]))
    return frames


def _downscale(hr: np.ndarray, r: int) -> np.ndarray:
    a, b = imresize_matrix(hr.shape[0], hr.shape[0] // r), imresize_matrix(hr.shape[1], hr.shape[1] // r)
    return np.clip(np.round(a @ hr.astype(np.float64) @ b.T), 0, 255).astype(np.uint8)
