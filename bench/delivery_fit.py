"""How far a per-chunk correction goes with capacity and time: one chunk of the bundled clip fitted
for a wall-clock budget, evaluated as it goes; the curve of gain over the generic model against
minutes, for each setting, as a chart.

    python bench/delivery_fit.py --name f32b4 --features 32 --blocks 4 --minutes 20
    python bench/delivery_fit.py --name f32b4_uniform --uniform-share 1 --minutes 20
    python bench/delivery_fit.py --chart            # runs/delivery_fit/gain.png from every run's log
    python bench/delivery_fit.py --pan ../shared/data/BSD200/108073.jpg --name pan_108073   # a held-out clip

``--pan IMAGE`` makes the master from a photograph instead: a 384×256 window panning across it
diagonally over 72 frames (24 fps, x264 CRF 8), real content the method was never tuned on.

The LR is made once per (down, CRF) exactly as ``vsr-pipe deliver`` makes it (the pipeline's
downscale, x264 preset medium, a keyframe at the chunk's start) and decoded as a client decodes it.
Every ``--eval-every`` seconds the correction's Y-PSNR is measured on every 4th frame of the chunk
(fp16 weights, 8-bit output, whole frame) and written to ``log.jsonl`` with the weights so far
(``latest.safetensors``), so a run stopped midway keeps its curve and its weights. At the end the
whole chunk is measured by ``fit_chunk`` itself (``result.json``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SAMPLE, bench_parser  # noqa: E402

OUT = ROOT / "runs" / "delivery_fit"


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--name", default="run")
    ap.add_argument("--input", default=str(SAMPLE))
    ap.add_argument("--pan", help="make the master by panning across this image (see above)")
    ap.add_argument("--down", choices=["bicubic", "irn"], default="bicubic")
    ap.add_argument("--crf", type=float, default=23)
    ap.add_argument("--first", type=int, default=0, help="the chunk's first frame")
    ap.add_argument("--frames", type=int, default=0, help="the chunk's frames (0: to the end)")
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--uniform-share", type=float, default=0.25)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--steps", type=int, default=0, help="a step budget instead of --minutes")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--eval-every", type=float, default=60, help="seconds between evaluations")
    ap.add_argument("--chart", action="store_true", help="only draw the chart of every run so far")
    args = ap.parse_args()
    if args.chart:
        return chart()
    if args.pan:
        args.input = str(pan_clip(Path(args.pan)))
    run(args)
    chart()


def pan_clip(image: Path, size=(384, 256), frames: int = 72) -> Path:
    """A master made by moving a window diagonally across ``image`` (whole pixels per frame, so no
    resampling softens the photograph)."""
    import av
    import numpy as np
    from PIL import Image

    dst = OUT / f"pan_{image.stem}.mkv"
    if dst.is_file():
        return dst
    rgb = np.asarray(Image.open(image).convert("RGB"))
    if rgb.shape[0] < rgb.shape[1]:  # landscape or portrait, the window is laid the same way
        w, h = size
    else:
        h, w = size
    dy, dx = (rgb.shape[0] - h) / (frames - 1), (rgb.shape[1] - w) / (frames - 1)
    OUT.mkdir(parents=True, exist_ok=True)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "8"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            top, left = int(round(i * dy)), int(round(i * dx))
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[top : top + h, left : left + w]), format="rgb24"
            )
            frame.pts = i
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return dst


def chunk_frames(args):
    """(LR Y planes, master Y planes) of the chunk, the LR made and decoded as deliver does."""
    import numpy as np

    from vsr_pipe.config import EncodeOptions
    from vsr_pipe.delivery.server import DeliverOptions, make_lr
    from vsr_pipe.io.keyframes import luma_frames

    hr, pts = zip(*luma_frames(args.input))
    last = len(hr) if not args.frames else args.first + args.frames
    lr_path = OUT / f"lr_{Path(args.input).stem}_{args.down}_crf{args.crf:g}_{args.first}_{last}.mp4"
    if not lr_path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        options = DeliverOptions(down=args.down, encode=EncodeOptions(crf=args.crf, preset="medium"))
        partial = lr_path.with_name(".partial-" + lr_path.name)
        make_lr(args.input, partial, options, [pts[args.first]])
        partial.rename(lr_path)
    lr = [y for y, _ in luma_frames(str(lr_path))]
    return np.stack(lr[args.first : last]), np.stack(hr[args.first : last]), lr_path


def run(args) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from vsr_pipe.delivery.fit import BaseModel, ChunkTask, FitSettings, _psnr_per_frame, build_base, fit_chunk

    lr, hr, lr_path = chunk_frames(args)
    folder = OUT / args.name
    folder.mkdir(parents=True, exist_ok=True)
    r = hr.shape[1] // lr.shape[1]
    base = (
        BaseModel("espcn", f"espcn_y_x{r}", r)
        if args.down == "bicubic"
        else BaseModel("irn_up", "irn_y", r, hr.shape[1:], lr.shape[1:])
    )
    settings = FitSettings(
        steps=args.steps or 1, seconds=0 if args.steps else args.minutes * 60, features=args.features,
        blocks=args.blocks, batch=args.batch, patch=args.patch, learning_rate=args.learning_rate,
        threads=args.threads, uniform_share=args.uniform_share,
    )  # fmt: skip
    # The evaluation subset: every 4th frame, with the generic model's output computed once.
    xs = torch.from_numpy(lr[::4].astype(np.float32) / 255).unsqueeze(1)
    hs = torch.from_numpy(hr[::4].astype(np.float32) / 255).unsqueeze(1)
    with torch.no_grad():
        ys = torch.cat([build_base(base)(part) for part in xs.split(4)])
    generic = float(np.mean(_psnr_per_frame([ys], [hs], 1.0)))
    log = (folder / "log.jsonl").open("w")
    params = None
    last_eval = [0.0]
    eval_seconds = [0.0]

    def evaluate(step: int, seconds: float, loss: float, net) -> None:
        t = time.perf_counter()
        state = {k: v.detach().half().float() for k, v in net.state_dict().items()}
        probe = type(net)(net.scale, net.features, net.blocks)
        probe.load_state_dict(state)
        with torch.no_grad():
            tuned = torch.cat([yi + probe(xi, yi) for xi, yi in zip(xs.split(4), ys.split(4))])
        psnr = float(np.mean(_psnr_per_frame([tuned], [hs], 1.0)))
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(folder / ".latest.safetensors"))
        (folder / ".latest.safetensors").replace(folder / "latest.safetensors")
        row = {
            "step": step,
            "minutes": seconds / 60,
            "loss": loss,
            "generic": generic,
            "tuned": psnr,
            "gain": psnr - generic,
        }
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(f"{args.name}: {seconds / 60:6.1f} min, step {step:6d}, loss {loss:.2e}, "
              f"{generic:.2f} -> {psnr:.2f} dB ({psnr - generic:+.2f})", flush=True)  # fmt: skip
        eval_seconds[0] += time.perf_counter() - t

    def watch(step, seconds, loss, net) -> bool:
        nonlocal params
        params = params or sum(p.numel() for p in net.parameters())
        if seconds - last_eval[0] >= args.eval_every or step == 1:
            last_eval[0] = seconds
            evaluate(step, seconds, loss, net)
        return False

    started = time.perf_counter()
    result = fit_chunk(ChunkTask(0, lr, hr, base, settings), watch)
    summary = {
        "name": args.name, "lr": lr_path.name, "frames": len(lr), "parameters": params,
        "weights_kb": params * 2 / 1000, "settings": vars(args), "steps": result.steps,
        "seconds": time.perf_counter() - started, "eval_seconds": eval_seconds[0],
        "generic_psnr": float(np.mean(result.generic_psnr)), "tuned_psnr": float(np.mean(result.tuned_psnr)),
    }  # fmt: skip
    summary["gain_db"] = summary["tuned_psnr"] - summary["generic_psnr"]
    (folder / "result.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("name", "parameters", "steps", "generic_psnr", "tuned_psnr", "gain_db")}))


def chart(width: int = 900, height: int = 380) -> None:
    """Gain over the generic model (dB) against minutes of fitting, one line per run (Pillow only)."""
    from PIL import Image, ImageDraw

    from vsr_pipe.quality.plots import COLOURS as BASE

    COLOURS = (*BASE, (140, 40, 160), (20, 150, 150), (110, 110, 110))

    runs = {}
    for log in sorted(OUT.glob("*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if rows:
            runs[log.parent.name] = [(r["minutes"], r["gain"]) for r in rows]
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 20, 30 + 14 * (len(runs) + 1), height - 40
    draw.text(
        (left, 8), "Per-chunk correction: Y-PSNR gain over the generic model against minutes of fitting", fill="black"
    )
    for k, (name, points) in enumerate(runs.items()):
        draw.text(
            (left, 22 + 14 * k),
            f"{name}: {points[-1][1]:+.2f} dB at {points[-1][0]:.1f} min",
            fill=COLOURS[k % len(COLOURS)],
        )
    draw.text((left, 22 + 14 * len(runs)), "dashed: the bar, +1.5 dB", fill="grey")
    draw.rectangle([left, top, right, bottom], outline="black")
    t_max = max([m for points in runs.values() for m, _ in points] + [1.0])
    g_max = max([g for points in runs.values() for _, g in points] + [2.0])
    x = lambda m: left + m / t_max * (right - left)  # noqa: E731
    y = lambda g: bottom - max(g, 0) / g_max * (bottom - top)  # noqa: E731
    for tenth in range(0, int(g_max * 2) + 1):
        draw.line([left, y(tenth / 2), right, y(tenth / 2)], fill=(225, 225, 225))
        draw.text((8, y(tenth / 2) - 6), f"{tenth / 2:+.1f}", fill="black")
    for gx in range(left, right, 12):
        draw.line([gx, y(1.5), gx + 6, y(1.5)], fill="grey")
    for k, points in enumerate(runs.values()):
        if len(points) > 1:
            draw.line([(x(m), y(g)) for m, g in points], fill=COLOURS[k % len(COLOURS)], width=2)
    draw.text((left, bottom + 8), "0 min", fill="black")
    draw.text((right - 70, bottom + 8), f"{t_max:.0f} min", fill="black")
    OUT.mkdir(parents=True, exist_ok=True)
    img.save(OUT / "gain.png")
    print(f"chart: {OUT / 'gain.png'}")


if __name__ == "__main__":
    main()
