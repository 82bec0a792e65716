"""Y through the network with chroma resampled, or RGB through the network: quality and speed.

    python bench/luma_vs_rgb.py [--y runs/cmp_y_x2] [--rgb runs/cmp_rgb_x2]

Both checkpoints come from `vsr-pipe train --scale 2 --steps 6000 [--rgb]` with the same data,
schedule and seed. Quality: Y-PSNR on Set5/Set14 x2 (the field's protocol). Speed: seconds per
640x360 4:2:0 frame for everything a video needs, on the same frames:
  Y path:   Y -> model; Cb, Cr -> resampler                      (what the pipeline does)
  RGB path: chroma up to 4:4:4, YUV -> RGB, model, RGB -> YUV, chroma down to 4:2:0
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import DATA, ROOT, bench_parser  # noqa: E402
from vsr_pipe.models.resample import resize_planes  # noqa: E402
from vsr_pipe.quality.images import evaluate_folder, model_upscaler  # noqa: E402
from vsr_pipe.train.checkpoint import load_checkpoint  # noqa: E402
from vsr_pipe.train.espcn import EspcnTrainConfig, build_model  # noqa: E402

# BT.709 limited range, normalised codes: y in [16, 235]/255, c in [16, 240]/255 centred on 128/255.
M = torch.tensor([[1.0, 0.0, 1.5748], [1.0, -0.1873, -0.4681], [1.0, 1.8556, 0.0]])


def load(run: str, luma: bool):
    cfg = EspcnTrainConfig(scale=2, train_dirs=(), val_dir=None, out_dir=run, luma=luma)
    model = build_model(cfg)
    info = load_checkpoint(Path(run) / "checkpoint.safetensors", model, None)
    return model.eval(), info.get("step")


def y_path(model, y, cb, cr):
    with torch.inference_mode():
        out_y = model(y)
        h, w = out_y.shape[-2:]
        out_c = [resize_planes(c, h // 2, w // 2, 2.0, 2.0, "bicubic", (2, 2), (2, 2), True) for c in (cb, cr)]
    return out_y, out_c


def rgb_path(model, y, cb, cr):
    with torch.inference_mode():
        h, w = y.shape[-2:]
        cb4, cr4 = (resize_planes(c, h, w, 1.0, 1.0, "bicubic", (2, 2), (1, 1), True) for c in (cb, cr))
        yuv = torch.cat([(y - 16 / 255) * 255 / 219, (cb4 - 128 / 255) * 255 / 224, (cr4 - 128 / 255) * 255 / 224], 1)
        rgb = torch.einsum("ij,njhw->nihw", M, yuv).clamp(0, 1)
        out = model(rgb).clamp(0, 1)
        back = torch.einsum("ij,njhw->nihw", torch.linalg.inv(M), out)
        oy = back[:, :1] * 219 / 255 + 16 / 255
        oc = [resize_planes(back[:, i : i + 1] * 224 / 255 + 128 / 255, h, w, 2.0, 2.0, "bicubic", (1, 1), (2, 2), True)
              for i in (1, 2)]  # fmt: skip
    return oy, oc


def seconds_per_frame(fn, model, frames=8, chunk=4) -> float:
    y = torch.rand(chunk, 1, 360, 640) * 0.8 + 0.1
    cb, cr = torch.rand(chunk, 1, 180, 320) * 0.2 + 0.4, torch.rand(chunk, 1, 180, 320) * 0.2 + 0.4
    fn(model, y, cb, cr)
    t = time.perf_counter()
    for _ in range(frames // chunk):
        fn(model, y, cb, cr)
    return (time.perf_counter() - t) / frames


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--y", default=str(ROOT / "runs" / "cmp_y_x2"))
    ap.add_argument("--rgb", default=str(ROOT / "runs" / "cmp_rgb_x2"))
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    y_model, y_steps = load(args.y, True)
    rgb_model, rgb_steps = load(args.rgb, False)
    print(f"Y model {y_steps} steps, {sum(p.numel() for p in y_model.parameters())} parameters; "
          f"RGB model {rgb_steps} steps, {sum(p.numel() for p in rgb_model.parameters())} parameters")  # fmt: skip
    for name in ("Set5", "Set14"):
        a = evaluate_folder(Path(args.data) / name, 2, model_upscaler(y_model), with_ssim=False).psnr
        b = evaluate_folder(Path(args.data) / name, 2, model_upscaler(rgb_model), with_ssim=False).psnr
        print(f"{name} x2 Y-PSNR: Y model {a:.2f} dB, RGB model {b:.2f} dB")
    ty = seconds_per_frame(y_path, y_model)
    tr = seconds_per_frame(rgb_path, rgb_model)
    print(f"640x360 4:2:0 -> x2, torch threads {torch.get_num_threads()}: Y path {ty * 1000:.0f} ms/frame, "
          f"RGB path {tr * 1000:.0f} ms/frame, RGB / Y = {tr / ty:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
