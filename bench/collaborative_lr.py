"""What server-side optimisation of the LR itself adds to the rescaler (HCD's LR step, ``papers.md`` §6).

    python bench/collaborative_lr.py [--data ../shared/data] [--set Set5] [--factor 2]
                                     [--iters 50] [--step 0.5] [--lr-db 38.5] [--weights FILE] [--crf 18]

The server holds the HR, so it can search for the 8-bit LR that the fixed inverse restores best:
Adam on the LR (step in 8-bit codes) minimising the MSE between HR and up(quantise(LR), z = 0),
straight-through rounding, starting from the model's own LR. After each step the LR is projected
onto the ball around the MATLAB-bicubic LR whose radius is ``--lr-db`` dB of PSNR, so it still looks
like a proper downscale. Prints per image and the mean: restored Y-PSNR and LR-vs-bicubic PSNR,
before and after, and the seconds spent. With ``--crf`` both LRs are also coded as H.264 intra frames
(libx264 medium, as ``bench/rescaling.py`` does) before restoring, to see what survives a codec. Not part of the video path (yet): it costs ``iters``
forward + backward passes of the inverse per frame.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsr_pipe.models.rescaler import RescaleGeometry, quantise_8bit  # noqa: E402
from vsr_pipe.quality.imagefiles import list_images, load_rgb  # noqa: E402
from vsr_pipe.quality.matlab_resize import imresize  # noqa: E402
from vsr_pipe.quality.metrics import psnr, rgb_to_y, shave  # noqa: E402
from vsr_pipe.quality.rescaling import crop_for  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", default="Set5")
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--step", type=float, default=0.5, help="Adam step, in 8-bit codes")
    ap.add_argument("--lr-db", type=float, default=38.5, help="the LR stays at least this close to bicubic")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--crf", type=float, default=None, help="also restore from the LRs coded with H.264 at this CRF")
    args = ap.parse_args()
    channels = {}
    if args.crf is not None:
        from rescaling import H264Channel  # bench/rescaling.py, beside this file

        channels = {"before": H264Channel(args.crf), "after": H264Channel(args.crf)}

    model = load_model(args.weights or shipped_path("irn_y")).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    f, border = args.factor, math.ceil(args.factor)
    rows, started = [], time.time()
    for path in list_images(Path(args.data) / args.set):
        rgb = crop_for(load_rgb(path), f, f)
        hr_y = np.clip(rgb_to_y(rgb), 0, 255)
        g = RescaleGeometry.for_factor(*hr_y.shape, f, f)
        t = g.tensors()
        bicubic = rgb_to_y(np.clip(np.round(imresize(rgb, size=g.lr)), 0, 255))
        ref = torch.from_numpy(bicubic / 255).float()[None, None]
        hr = torch.from_numpy(np.round(hr_y) / 255).float()[None, None]
        with torch.no_grad():
            lr0, z = model.down(hr, t.up_rows, t.up_cols, t.conds)
        zero = torch.zeros_like(z)

        def restore(lr: torch.Tensor, zero=zero, t=t) -> torch.Tensor:
            return model.up(quantise_8bit(lr), zero, t.inv_rows, t.inv_cols, t.conds)

        radius = math.sqrt(ref.numel() * 10 ** (-args.lr_db / 10))
        lr = lr0.clone().requires_grad_(True)
        opt = torch.optim.Adam([lr], lr=args.step / 255)
        for _ in range(args.iters):
            loss = ((restore(lr) - hr) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # back into the ball around the bicubic LR
                off = lr - ref
                norm = off.norm()
                if norm > radius:
                    lr.copy_(ref + off * (radius / norm))
        row = []
        for name, candidate in (("before", lr0), ("after", lr.detach())):
            with torch.no_grad():
                codes = (quantise_8bit(candidate) * 255).round()[0, 0].double().numpy()
                out = np.clip(np.round(restore(candidate)[0, 0].double().numpy() * 255), 0, 255)
                row += [psnr(shave(out, border), shave(hr_y, border)), psnr(codes, bicubic)]
                if channels:
                    coded = torch.from_numpy(np.clip(np.round(channels[name](codes)), 0, 255) / 255).float()
                    out = np.clip(np.round(restore(coded[None, None])[0, 0].double().numpy() * 255), 0, 255)
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


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
