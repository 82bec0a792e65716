"""The delivery path on a real video: learned downscale + its inverse against bicubic + ESPCN.

    python bench/rescaling_video.py [--input samples/big_buck_bunny_640x360.mp4] [--crf 18,23]
                                    [--out runs/rescaling_video] [--frames K] [--refine N]

For each CRF, both ways go through the product's own command line, as a server and a client would:
  irn:          vsr-pipe MASTER --model irn --scale 0.5 --crf C -o irn_lr.mp4   (libx264, medium)
                vsr-pipe irn_lr.mp4 --codec ffv1 -o irn_restored.mkv           (the tag picks the inverse)
  conventional: the master's planes shrunk by MATLAB bicubic (antialiased), libx264 medium at the
                (fractional) CRF, found by bisection, whose LR spends as many bits as irn's or up to
                1% more, then
                vsr-pipe conv_lr.mp4 --model espcn --scale 2 --codec ffv1 -o conv_restored.mkv
  refined:      with ``--refine N``, the irn downscale again with ``--refine N`` (server-side LR
                refinement), coded at the same CRF, restored the same way.
The restored videos are lossless (FFV1), so what is measured is the rescaling and the LR's coding.
With ``--frames K`` the master is the first K frames, copied losslessly (FFV1) first.
Prints Y-PSNR per video (mean over frames, against the decoded master) and the LR bits; writes a
chart of PSNR per frame per CRF (``psnr_crfC.png``) into ``--out``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for python bench/NAME.py

from bench.common import ROOT, SAMPLE, bench_parser  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.quality.plots import plot_series  # noqa: E402
from vsr_pipe.quality.video import compare_videos  # noqa: E402

CLI = [sys.executable, "-m", "vsr_pipe"]


def video_bits(path: Path) -> int:
    with av.open(str(path)) as container:
        return 8 * sum(p.size for p in container.demux(container.streams.video[0]) if p.size)


def bicubic_lr(master: Path, out: Path, crf: float) -> None:
    """Halve every plane of a yuv420p master with MATLAB bicubic and code it with libx264."""
    with av.open(str(master)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        w, h = vin.codec_context.width // 2, vin.codec_context.height // 2
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
        vout.time_base = vin.time_base
        vout.options = {"crf": f"{crf:.3f}", "preset": "medium"}
        for frame in src.decode(vin):
            frame = frame.reformat(format="yuv420p")
            planes = [
                np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[
                    : (frame.height >> (i > 0)), : (frame.width >> (i > 0))
                ]
                for i, p in enumerate(frame.planes)
            ]
            small = [
                np.clip(np.round(imresize(p.astype(np.float64), size=((h >> (i > 0)), (w >> (i > 0))))), 0, 255)
                for i, p in enumerate(planes)
            ]
            lr = av.VideoFrame(w, h, "yuv420p")
            for plane, data in zip(lr.planes, small):
                rows = np.zeros((data.shape[0], plane.line_size), np.uint8)
                rows[:, : data.shape[1]] = data
                plane.update(rows.tobytes())
            lr.pts, lr.time_base = frame.pts, frame.time_base
            for packet in vout.encode(lr):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)


def matching_crf(master: Path, out: Path, bits: int, lo: float, hi: float) -> float:
    """Bisect the CRF so that the bicubic LR spends ``bits`` to ``1.01 * bits``; leaves that LR in ``out``."""
    for _ in range(12):
        crf = (lo + hi) / 2
        bicubic_lr(master, out, crf)
        spent = video_bits(out)
        if bits <= spent <= 1.01 * bits:
            return crf
        lo, hi = (crf, hi) if spent > bits else (lo, crf)
    bicubic_lr(master, out, lo)  # the closest CRF that spends at least ``bits``
    return lo


def first_frames(master: Path, out: Path, count: int) -> Path:
    """A lossless copy of the first ``count`` frames of ``master`` (video only)."""
    with av.open(str(master)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("ffv1", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.time_base = vin.time_base
        for i, frame in enumerate(src.decode(vin)):
            if i == count:
                break
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)
    return out


def run(*args: str) -> None:
    subprocess.run([*CLI, *args, "-q"], check=True)


def main() -> None:
    ap = bench_parser(__doc__, data=False)
    ap.add_argument("--input", default=str(SAMPLE))
    ap.add_argument("--crf", default="18,23")
    ap.add_argument("--out", default=str(ROOT / "runs" / "rescaling_video"))
    ap.add_argument("--frames", type=int, default=0, help="only the first K frames (0: all)")
    ap.add_argument("--refine", type=int, default=0, help="also the irn downscale with --refine N")
    args = ap.parse_args()
    master, out = Path(args.input), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.frames:
        master = first_frames(master, out / f"master_{args.frames}.mkv", args.frames)
    results = []
    for crf in (int(c) for c in args.crf.split(",")):
        started = time.time()
        irn_lr, irn_hr = out / f"irn_lr_crf{crf}.mp4", out / f"irn_restored_crf{crf}.mkv"
        run(str(master), "--model", "irn", "--scale", "0.5", "--crf", str(crf), "--preset", "medium", "-o", str(irn_lr))
        run(str(irn_lr), "--codec", "ffv1", "-o", str(irn_hr))
        irn_bits = video_bits(irn_lr)
        conv_lr = out / f"conv_lr_crf{crf}.mp4"
        conv_crf = matching_crf(master, conv_lr, irn_bits, lo=max(crf - 8.0, 0.0), hi=crf + 4.0)
        conv_hr = out / f"conv_restored_crf{crf}.mkv"
        run(str(conv_lr), "--model", "espcn", "--scale", "2", "--codec", "ffv1", "-o", str(conv_hr))
        series = {}
        if args.refine:
            ref_lr, ref_hr = out / f"refined_lr_crf{crf}.mp4", out / f"refined_restored_crf{crf}.mkv"
            run(str(master), "--model", "irn", "--scale", "0.5", "--refine", str(args.refine), "--crf", str(crf),
                "--preset", "medium", "-o", str(ref_lr))  # fmt: skip
            run(str(ref_lr), "--codec", "ffv1", "-o", str(ref_hr))
            series[f"irn down, LR refined in {args.refine} steps + irn up"] = compare_videos(
                str(master), str(ref_hr), with_ssim=False
            )
            refined_bits = video_bits(ref_lr)
        irn_scores = compare_videos(str(master), str(irn_hr), with_ssim=False)
        conv_scores = compare_videos(str(master), str(conv_hr), with_ssim=False)
        row = {
            "crf": crf,
            "irn_psnr": round(irn_scores.mean_psnr, 3),
            "irn_kbit": round(irn_bits / 1000, 1),
            "conventional_crf": round(conv_crf, 3),
            "conventional_psnr": round(conv_scores.mean_psnr, 3),
            "conventional_kbit": round(video_bits(conv_lr) / 1000, 1),
            "frames": len(irn_scores.psnr),
            "irn_worst_frame": round(min(irn_scores.psnr), 2),
            "conventional_worst_frame": round(min(conv_scores.psnr), 2),
        }
        if args.refine:
            refined = next(iter(series.values()))
            row["refined_psnr"], row["refined_kbit"] = round(refined.mean_psnr, 3), round(refined_bits / 1000, 1)
        plot_series(
            {"irn down + irn up": irn_scores, "bicubic down + ESPCN up": conv_scores, **series},
            out / f"psnr_crf{crf}.png",
            title=f"{master.name}, LR x0.5 coded at CRF {crf} (bicubic LR at CRF {conv_crf:.2f}, as many bits)",
        )
        results.append(row)
        print(
            f"CRF {crf}: irn {row['irn_psnr']:.2f} dB from {row['irn_kbit']:.0f} kbit; bicubic + ESPCN "
            f"{row['conventional_psnr']:.2f} dB from {row['conventional_kbit']:.0f} kbit (CRF {conv_crf:.2f}); "
            f"{row['irn_psnr'] - row['conventional_psnr']:+.2f} dB ({time.time() - started:.0f} s)"
            + (
                f"; refined LR: {row['refined_psnr']:.2f} dB from {row['refined_kbit']:.0f} kbit" if args.refine else ""
            ),
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
