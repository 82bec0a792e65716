"""What server-side refinement of the LR adds to the rescaler (``--refine``; HCD's LR step, ``papers.md`` §6).

    python bench/collaborative_lr.py [--data ../shared/data] [--set Set5] [--factor 2]
                                     [--iters 50] [--lr-db 38.5] [--weights FILE] [--crf 18]

Runs ``models/refine.RefinedDown`` (what ``vsr-pipe ... --model irn --scale 0.5 --refine N`` runs) on
each image of a set: Adam steps on the 8-bit LR against the fixed inverse (z = 0), the LR kept within
``--lr-db`` dB of the MATLAB-bicubic LR. Prints per image and the mean: restored Y-PSNR and
LR-vs-bicubic PSNR, before and after. With ``--crf`` both LRs are also coded as H.264 intra frames
(libx264 medium, as ``bench/rescaling.py`` does) before restoring, to see what survives a codec.
Last, the seconds the refinement takes on one 640x360 frame (the bundled clip's size).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import H264Channel, bench_parser  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize, imresize_matrix  # noqa: E402
from vsr_pipe.models.refine import RefinedDown  # noqa: E402
from vsr_pipe.models.rescaler import BoundDown, BoundUp, RescaleGeometry, quantise_8bit  # noqa: E402
from vsr_pipe.quality.imagefiles import list_images, load_rgb  # noqa: E402
from vsr_pipe.quality.metrics import psnr, rgb_to_y, shave  # noqa: E402
from vsr_pipe.quality.rescaling import crop_for  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402


def refiner(model, geometry: RescaleGeometry, iters: int, lr_db: float) -> RefinedDown:
    rows, cols = (torch.from_numpy(imresize_matrix(n, m)) for n, m in zip(geometry.hr, geometry.lr))
    return RefinedDown(model, geometry, rows, cols, iters=iters, lr_db=lr_db)


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--set", default="Set5")
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--lr-db", type=float, default=38.5, help="the LR stays at least this close to bicubic")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--crf", type=float, default=None, help="also restore from the LRs coded with H.264 at this CRF")
    args = ap.parse_args()
    channels = {}
    if args.crf is not None:
        channels = {"before": H264Channel(args.crf), "after": H264Channel(args.crf)}

    model = load_model(args.weights or shipped_path("irn_y")).eval()
    f, border = args.factor, math.ceil(args.factor)
    rows, started = [], time.time()
    for path in list_images(Path(args.data) / args.set):
        rgb = crop_for(load_rgb(path), f, f)
        hr_y = np.clip(rgb_to_y(rgb), 0, 255)
        g = RescaleGeometry.for_factor(*hr_y.shape, f, f)
        bicubic = rgb_to_y(np.clip(np.round(imresize(rgb, size=g.lr)), 0, 255))
        hr = torch.from_numpy(np.round(hr_y) / 255).float()[None, None]
        up = BoundUp(model, g, temperature=0.0)
        row = []
        with torch.no_grad():
            for name, down in (("before", BoundDown(model, g)), ("after", refiner(model, g, args.iters, args.lr_db))):
                codes = (quantise_8bit(down(hr)) * 255).round()
                out = np.clip(np.round(up(codes / 255)[0, 0].double().numpy() * 255), 0, 255)
                codes = codes[0, 0].double().numpy()
                row += [psnr(shave(out, border), shave(hr_y, border)), psnr(codes, bicubic)]
                if channels:
                    coded = torch.from_numpy(np.clip(np.round(channels[name](codes)), 0, 255) / 255).float()
                    out = np.clip(np.round(up(coded[None, None])[0, 0].double().numpy() * 255), 0, 255)
                    row.append(psnr(shave(out, border), shave(hr_y, border)))
        rows.append(row)
        k = 3 if channels else 2
        print(
            f"{path.name}: restored {row[0]:.2f} -> {row[k]:.2f} dB, LR {row[1]:.2f} -> {row[k + 1]:.2f} dB", flush=True
        )
    m = np.mean(rows, axis=0)
    k = 3 if channels else 2
    print(
        f"{args.set} x{f:g}, {args.iters} iterations: restored {m[0]:.2f} -> {m[k]:.2f} dB ({m[k] - m[0]:+.2f}), "
        f"LR against bicubic {m[1]:.2f} -> {m[k + 1]:.2f} dB; {time.time() - started:.0f} s"
    )
    if channels:
        before, after = channels["before"].bits / 1000, channels["after"].bits / 1000
        print(
            f"LR coded at CRF {args.crf:g}: restored {m[2]:.2f} dB from {before:.0f} kbit -> {m[5]:.2f} dB from "
            f"{after:.0f} kbit ({m[5] - m[2]:+.2f} dB, {100 * (after / before - 1):+.1f}% bits)"
        )
    frame = refiner(model, RescaleGeometry.for_factor(360, 640, f, f), args.iters, args.lr_db)
    with torch.no_grad():
        t0 = time.time()
        frame(torch.rand(1, 1, 360, 640))
    print(f"{args.iters} steps on one 640x360 frame: {time.time() - t0:.1f} s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
