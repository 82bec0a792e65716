"""Train a scale-aware ESPCN head briefly and measure it against "next integer + resample".

    python bench/scale_aware_head.py [--minutes 20] [--data ../shared/data] [--out runs/scale_aware]

Training: T91 + BSD200 Y, factors drawn from [1.1, 4], LR patches 24x24 made from HR crops by MATLAB
bicubic at the exact ratio, body initialised from the shipped ESPCN x2, Adam 1e-3 -> 1e-5 cosine
over the time budget, MSE. Then Y-PSNR on Set5/Set14 at x1.5 and x2.5 with the protocol of
bench/noninteger_scales.py, beside the pipeline's strategy (ESPCN at the next integer, then
antialiased bicubic down).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import DATA, ROOT, bench_parser, noninteger_pairs, noninteger_psnr  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.models.scale_aware import ScaleAwareESPCN  # noqa: E402
from vsr_pipe.quality.imagefiles import list_images, load_rgb  # noqa: E402
from vsr_pipe.quality.metrics import rgb_to_y  # noqa: E402
from vsr_pipe.weights.store import load_model, shipped_path  # noqa: E402


def load_y_images(folders):
    return [rgb_to_y(load_rgb(p)) / 255.0 for f in folders for p in list_images(f)]


def batch(images, rng, size=32, lr=24):
    s = rng.uniform(1.1, 4.0)
    hr_side = int(round(lr * s))
    hrs, lrs = [], []
    for _ in range(size):
        img = images[rng.integers(len(images))]
        if min(img.shape) < hr_side:
            img = images[0]
        y, x = rng.integers(0, img.shape[0] - hr_side + 1), rng.integers(0, img.shape[1] - hr_side + 1)
        hr = np.rot90(img[y : y + hr_side, x : x + hr_side], rng.integers(4))
        hrs.append(hr)
        lrs.append(np.round(imresize(hr, size=(lr, lr)) * 255) / 255)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(np.stack(a))).float()[:, None]  # noqa: E731
    return to(lrs), to(hrs)


def evaluate(model, folder: Path, s: float) -> float:
    scores = []
    for hr, lr in noninteger_pairs(folder, s):  # the protocol of bench/noninteger_scales.py
        with torch.no_grad():
            sr = model(torch.from_numpy(lr / 255.0).float()[None, None], *hr.shape)[0, 0].double().numpy() * 255
        scores.append(noninteger_psnr(sr, hr, s))
    return float(np.mean(scores))


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT / "runs" / "scale_aware"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    images = [im for im in load_y_images([data / "T91", data / "BSD200"]) if min(im.shape) >= 100]
    model = ScaleAwareESPCN()
    espcn = load_model(shipped_path("espcn_y_x2"))
    model.conv_first.load_state_dict(espcn.conv_first.state_dict())
    model.conv_body.load_state_dict(espcn.conv_body.state_dict())
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    budget, start, step = args.minutes * 60, time.time(), 0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for g in opt.param_groups:
            g["lr"] = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * frac))
        lr, hr = batch(images, rng)
        loss = torch.nn.functional.mse_loss(model(lr, *hr.shape[-2:]), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.6f} {time.time() - start:.0f} s", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(args.out) / "model.safetensors"))
    model.eval()
    for s in (1.5, 2.5):
        for name in ("Set5", "Set14"):
            print(f"x{s:g} {name}: scale-aware head {evaluate(model, data / name, s):.2f} dB after {step} steps")


if __name__ == "__main__":
    main()
