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

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import bench_parser, noninteger_pairs, noninteger_psnr  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.models.resample import resize_planes  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402


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
    results: dict[str, list[float]] = {k: [] for k in strategies(s)}
    for hr_y, lr_y in noninteger_pairs(folder, s):
        for name, stages in strategies(s).items():
            sr = luma_chain(stages, *hr_y.shape)(lr_y) if stages else imresize(lr_y, size=hr_y.shape)
            results[name].append(noninteger_psnr(sr, hr_y, s))
    return {k: float(np.mean(v)) for k, v in results.items()}


def main() -> None:
    ap = bench_parser(__doc__)
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
