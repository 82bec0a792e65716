"""Which way to reach a non-integer factor: measured on Set5/Set14 (Y-PSNR, MATLAB-bicubic LR).

    python bench/noninteger_scales.py [--data ../shared/data] [--scales 1.5,2.5]

Strategies, all on Y (chroma does not enter the figure):
  next-int   ESPCN at the next integer factor, then antialiased bicubic down to the target
             (what the pipeline does)
  over-int   ESPCN at the integer after that, then down
  floor+bic  ESPCN at the integer below (if any), then bicubic up
  bicubic    bicubic only
HR is cropped so that HR / s is an integer size; the border shaved is ceil(s).
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vsr_pipe.models.resample import resize_planes
from vsr_pipe.quality.imagefiles import list_images, load_rgb
from vsr_pipe.quality.matlab_resize import imresize
from vsr_pipe.quality.metrics import psnr, rgb_to_y, shave
from vsr_pipe.weights.store import load_model, shipped_path

ROOT = Path(__file__).resolve().parent.parent


def luma_chain(stages: list[int], out_h: int, out_w: int):
    models = [load_model(shipped_path(f"espcn_y_x{s}")) for s in stages]

    def run(y: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(y / 255.0).float()[None, None]
        with torch.no_grad():
            for m in models:
                t = m(t)
            h, w = t.shape[-2:]
            if (h, w) != (out_h, out_w):
                t = resize_planes(t.double(), out_h, out_w, out_h / h, out_w / w, "bicubic")
        return t[0, 0].double().numpy() * 255.0

    return run


def strategies(s: float) -> dict[str, list[int]]:
    nxt = math.ceil(s)
    out = {"next-int": [nxt], "over-int": [nxt + 1]}
    if math.floor(s) >= 2:
        out["floor+bic"] = [math.floor(s)]
    out["bicubic"] = []
    return out


def evaluate(folder: Path, s: float) -> dict[str, float]:
    frac = Fraction(s).limit_denominator(8)
    results: dict[str, list[float]] = {k: [] for k in strategies(s)}
    for path in list_images(folder):
        hr = load_rgb(path)
        m = frac.numerator  # HR sides must be multiples of the numerator for an exact LR size
        hr = hr[: hr.shape[0] - hr.shape[0] % m, : hr.shape[1] - hr.shape[1] % m]
        lr_h, lr_w = int(hr.shape[0] / s), int(hr.shape[1] / s)
        lr = np.clip(np.round(imresize(hr, size=(lr_h, lr_w))), 0, 255)
        hr_y, lr_y = rgb_to_y(hr), rgb_to_y(lr)
        border = math.ceil(s)
        for name, stages in strategies(s).items():
            sr = np.clip(np.round(luma_chain(stages, *hr_y.shape)(lr_y)), 0, 255) if stages else \
                np.clip(np.round(imresize(lr_y, size=hr_y.shape)), 0, 255)  # fmt: skip
            results[name].append(psnr(shave(sr, border), shave(hr_y, border)))
    return {k: float(np.mean(v)) for k, v in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--scales", default="1.5,2.5")
    ap.add_argument("--sets", default="Set5,Set14")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for s in (float(v) for v in args.scales.split(",")):
        for name in args.sets.split(","):
            scores = evaluate(Path(args.data) / name, s)
            row = "  ".join(f"{k} {v:.2f}" for k, v in scores.items())
            print(f"x{s:g} {name}: {row}  (Y-PSNR dB)")


if __name__ == "__main__":
    main()
