"""Calibrates the differentiable codec stand-in against libx264: for CRF 18 and 23, the strength of
``vsr_pipe.models.codec_proxy.code_intra`` whose mean Y-PSNR on Set5's bicubic x2 LR planes matches
libx264 intra coding's (medium preset), found by bisection. Prints both and the fitted strengths.

    python bench/codec_proxy.py [--data ../shared/data]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import H264Channel, bench_parser  # noqa: E402
from vsr_pipe.models.codec_proxy import CRF_STRENGTH, code_intra  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.quality.imagefiles import list_images, load_rgb, modcrop  # noqa: E402
from vsr_pipe.quality.metrics import psnr, rgb_to_y  # noqa: E402


def main() -> int:
    args = bench_parser(__doc__).parse_args()
    folder = Path(args.data) / "Set5"
    if not folder.is_dir():
        print(f"bench/codec_proxy.py: no Set5 under {args.data} (give --data)")
        return 2
    planes = [
        np.round(rgb_to_y(np.clip(np.round(imresize(modcrop(load_rgb(p), 2), 0.5)), 0, 255)))
        for p in list_images(folder)
    ]

    def proxy_psnr(strength: float) -> float:
        with torch.no_grad():
            outs = [code_intra(torch.from_numpy(p / 255).float()[None, None], strength)[0, 0].numpy() for p in planes]
        return float(np.mean([psnr(np.clip(np.round(o * 255), 0, 255), p) for o, p in zip(outs, planes)]))

    for crf in (18, 23):
        target = float(np.mean([psnr(np.clip(np.round(H264Channel(crf)(p)), 0, 255), p) for p in planes]))
        lo, hi = 0.01, 2.0
        for _ in range(30):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if proxy_psnr(mid) > target else (lo, mid)
        fitted = (lo * hi) ** 0.5
        shipped = CRF_STRENGTH.get(crf)
        print(f"CRF {crf}: libx264 {target:.2f} dB; stand-in strength {fitted:.3f} gives {proxy_psnr(fitted):.2f} dB"
              + (f" (shipped table: {shipped} -> {proxy_psnr(shipped):.2f} dB)" if shipped else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
