"""The causal recurrent model (``models/temporal.py``) measured the field's way (papers.md §1, video).

On real camera clips held out from its training (``shared/data/video/``), whole by default: Y-PSNR
and SSIM per frame against the clip's own luma, borders cropped by the scale, LR by MATLAB bicubic;
bicubic and the shipped ESPCN beside it; the gain over ESPCN on the moving frames alone (where the
reference changes by more than one 8-bit level a pixel on average from the frame before: both clips
are still cameras with cars or people passing, and the frames before help least there); a flicker
figure, the mean over t >= 1 of |(o_t - o_t-1) - (r_t - r_t-1)| in 8-bit luma levels (lower is
steadier); CPU time per frame against ESPCN on torch (1 thread, the two taking turns, each one's
fastest block); ONNX Runtime against torch in dB over the first frames; a PSNR-per-frame chart per
clip.

  python bench/temporal.py --scale 2 4                  # the shipped temporal_y_xS, whole clips (~10 min)
  python bench/temporal.py --scale 4 --frames 24        # a quick look at the first 24 frames
  python bench/temporal.py --scale 4 --checkpoint runs/temporal_x{scale}/checkpoint.safetensors
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, bench_parser, decoded_planes, load_checkpoint_or_exit  # noqa: E402
from vsr_pipe.models.matlab_resize import imresize  # noqa: E402
from vsr_pipe.models.temporal import WARMUP_STEPS  # noqa: E402
from vsr_pipe.quality.metrics import psnr, shave, ssim  # noqa: E402

CLIPS = ("car-detection.mp4", "one-by-one-person-detection.mp4")
MOVING_LEVELS = 1.0  # a frame is moving when the reference's mean |change| from the one before exceeds this
ORT_FRAMES = 64  # ONNX Runtime is compared with torch over the first frames


@dataclass
class Scores:
    """One method on one clip: per-frame Y-PSNR (dB) and SSIM, and the flicker figure."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    flicker: float = float("nan")

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    def mean_psnr_where(self, frames: np.ndarray) -> float:
        return float(np.mean(np.asarray(self.psnr)[frames])) if frames.any() else float("nan")


def hr_frames(path: Path, frames: int, crop: int, scale: int, prescale: int = 1) -> list[np.ndarray]:
    """The clip's first ``frames`` luma planes (0: all), downscaled by ``prescale`` (MATLAB bicubic,
    rounded to 8 bits) then centre-cropped to ``crop`` (a multiple of the scale), uint8."""
    out = []
    for planes in decoded_planes(path, frames or None):
        y = planes[0].astype(np.float64)
        if prescale > 1:
            y = np.clip(np.round(imresize(y, 1.0 / prescale)), 0, 255)
        h, w = (min(crop, y.shape[0]) // scale * scale, min(crop, y.shape[1]) // scale * scale)
        top, left = (y.shape[0] - h) // 2, (y.shape[1] - w) // 2
        out.append(y[top : top + h, left : left + w].astype(np.uint8))
    return out


def score(outputs: list[np.ndarray], refs: list[np.ndarray], border: int) -> Scores:
    """Per-frame scores of 8-bit ``outputs`` against 8-bit ``refs`` (stored as uint8: a whole clip
    at float64 would take gigabytes)."""
    s = Scores()
    for o, r in zip(outputs, refs):
        o, r = shave(o.astype(np.float64), border), shave(r.astype(np.float64), border)
        s.psnr.append(psnr(o, r))
        s.ssim.append(ssim(o, r))
    f64 = lambda x: x.astype(np.float64)  # noqa: E731
    diffs = [
        np.abs((f64(o1) - f64(o0)) - (f64(r1) - f64(r0))).mean()
        for o0, o1, r0, r1 in zip(outputs, outputs[1:], refs, refs[1:])
    ]
    s.flicker = float(np.mean(diffs)) if diffs else float("nan")
    return s


def to_levels(t: torch.Tensor) -> np.ndarray:
    """(1, 1, H, W) in [0, 1] -> (H, W) 8-bit levels, rounded as the pipeline writes them."""
    return np.clip(np.round(t[0, 0].numpy() * 255.0), 0, 255).astype(np.uint8)


def moving_frames(refs: list[np.ndarray]) -> np.ndarray:
    """Which frames move: the reference's mean |change| from the frame before above MOVING_LEVELS."""
    change = [np.abs(b.astype(np.float64) - a.astype(np.float64)).mean() for a, b in zip(refs, refs[1:])]
    return np.array([False, *(c > MOVING_LEVELS for c in change)])


def load_temporal(scale: int, checkpoint: str | None):
    """The shipped model (``checkpoint`` "shipped"), a training checkpoint's, or the untrained cell."""
    from vsr_pipe.train.temporal import checkpoint_layers, with_base
    from vsr_pipe.weights.shipped import manifest, shipped_path
    from vsr_pipe.weights.store import load_model

    if checkpoint == "shipped":
        name = f"temporal_y_x{scale}"
        return load_model(shipped_path(name)).eval() if name in manifest() else with_base(scale).eval()
    path = checkpoint.format(scale=scale) if checkpoint else ""
    model = with_base(scale, layers=checkpoint_layers(path) if checkpoint else 2)
    if checkpoint:
        load_checkpoint_or_exit(path, model, f"a x{scale} temporal model", "a training checkpoint file")
    return model.eval()


@torch.no_grad()
def time_ratio(step, espcn, lr: list[torch.Tensor], block: int = 16, warm: int = 2) -> float:
    """CPU time per frame of ``step`` over ``espcn``'s, on the same frames. The two take turns in
    blocks of ``block`` frames, and each one's fastest block counts: on a shared machine another
    process slows whichever runs while it does, and the fastest block is the least disturbed."""
    for x in lr[:warm]:
        step(x)
        espcn(x)
    best = {step: float("inf"), espcn: float("inf")}
    for i in range(warm, len(lr), block):
        frames = lr[i : i + block]
        for fn in (step, espcn):
            t0 = time.perf_counter()
            for x in frames:
                fn(x)
            best[fn] = min(best[fn], (time.perf_counter() - t0) / len(frames))
    return best[step] / best[espcn] if best[espcn] < float("inf") else float("nan")  # no frames to time


@torch.no_grad()
def onnx_agreement_db(model, lr: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    import onnxruntime as ort

    from vsr_pipe.engines.onnx_export import export_recurrent

    with tempfile.TemporaryDirectory() as tmp:
        session = ort.InferenceSession(
            str(export_recurrent(model, Path(tmp) / "t.onnx")), providers=["CPUExecutionProvider"]
        )
        prev, prev_out, state = (t.numpy() for t in model.initial_state(lr[0], WARMUP_STEPS))
        mse = []
        for x, w in zip(lr, want):
            frame = x.numpy()
            out, state = session.run(None, {"frame": frame, "prev_frame": prev, "prev_out": prev_out, "state": state})
            mse.append(float(np.mean((out - w.numpy()) ** 2)))
            prev, prev_out = frame, out
    return float(10 * np.log10(1 / max(np.mean(mse), 1e-20)))


def run_clip(path: Path, scale: int, args, espcn, temporal) -> tuple[dict[str, Scores], np.ndarray, float, float]:
    refs = hr_frames(path, args.frames, args.crop, scale, args.prescale)
    lr_np = [np.clip(np.round(imresize(r.astype(np.float64), 1.0 / scale)), 0, 255) for r in refs]
    lr = [torch.from_numpy((x / 255.0).astype(np.float32))[None, None] for x in lr_np]
    with torch.no_grad():
        esp = [to_levels(espcn(x)) for x in lr]
        temporal_out = temporal.run(torch.cat(lr)).split(1)
    methods = {
        "bicubic": [np.clip(np.round(imresize(x, float(scale))), 0, 255).astype(np.uint8) for x in lr_np],
        "ESPCN": esp,
        "temporal": [to_levels(o) for o in temporal_out],
    }
    scores = {name: score(outs, refs, scale) for name, outs in methods.items()}
    carried = {}

    def temporal_step(x):
        if "prev" not in carried:
            carried["prev"], carried["prev_out"], carried["state"] = temporal.initial_state(x, WARMUP_STEPS)
        out, carried["state"] = temporal(x, carried["prev"], carried["prev_out"], carried["state"])
        carried["prev"], carried["prev_out"] = x, out

    ratio = time_ratio(temporal_step, espcn, lr)
    ort_db = onnx_agreement_db(temporal, lr[:ORT_FRAMES], list(temporal_out[:ORT_FRAMES]))
    return scores, moving_frames(refs), ratio, ort_db


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--scale", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--frames", type=int, default=0, help="frames per clip, from its start (0: all)")
    ap.add_argument("--crop", type=int, default=384, help="HR centre crop side (pixels)")
    ap.add_argument("--checkpoint", default="shipped",
                    help="shipped (the weights that ship, else untrained), a training checkpoint "
                         "(runs/temporal_x{scale}/checkpoint.safetensors), or '' for the untrained cell (ESPCN exactly)")  # fmt: skip
    ap.add_argument("--prescale", type=int, default=1,
                    help="downscale each clip by this first (2: most of the source's coding noise gone, as "
                         "shared/data's README suggests for these already lossy clips)")  # fmt: skip
    ap.add_argument("--charts", default=str(ROOT / "runs" / "temporal_bench"))
    ap.add_argument("--clips", nargs="+", default=list(CLIPS),
                    help="clips of shared/data/video, or paths (e.g. samples/big_buck_bunny_640x360.mp4: animation)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from vsr_pipe.quality.plots import plot_series
    from vsr_pipe.weights.shipped import shipped_path
    from vsr_pipe.weights.store import load_model

    Path(args.charts).mkdir(parents=True, exist_ok=True)
    print(
        f"{'clip':<34} {'x':>2} {'method':<9} {'Y-PSNR':>7} {'SSIM':>7} {'flicker':>8} {'vs ESPCN':>9} "
        f"{'moving':>7} {'time':>6} {'ORT dB':>7}"
    )
    for scale in args.scale:
        espcn = load_model(shipped_path(f"espcn_y_x{scale}")).eval()
        given = args.checkpoint
        if given not in ("shipped", "") and not Path(given.format(scale=scale)).exists():
            raise SystemExit(f"--checkpoint {given.format(scale=scale)}: not found")  # not the untrained cell, silently
        checkpoint = given or None
        temporal = load_temporal(scale, checkpoint)
        for clip in args.clips:
            path = Path(clip) if Path(clip).is_file() else Path(args.data) / "video" / clip
            if not path.is_file():
                raise SystemExit(f"{clip}: not found (a path, or a clip in {Path(args.data) / 'video'})")
            clip = path.name
            scores, moving, ratio, ort_db = run_clip(path, scale, args, espcn, temporal)
            base, base_moving = scores["ESPCN"].mean_psnr, scores["ESPCN"].mean_psnr_where(moving)
            for name, s in scores.items():
                extra = f"{ratio:>5.2f}x {ort_db:>7.1f}" if name == "temporal" else ""
                print(f"{clip:<34} {scale:>2} {name:<9} {s.mean_psnr:>7.2f} {np.mean(s.ssim):>7.4f} "
                      f"{s.flicker:>8.3f} {s.mean_psnr - base:>+9.3f} {s.mean_psnr_where(moving) - base_moving:>+7.3f} "
                      f"{extra}")  # fmt: skip
            print(f"{clip:<34} {scale:>2} {len(moving)} frames, {int(moving.sum())} moving")
            tag = f"_pre{args.prescale}" if args.prescale > 1 else ""
            plot_series(scores, Path(args.charts) / f"{Path(clip).stem}_x{scale}{tag}.png", f"{clip} x{scale}{tag}")


if __name__ == "__main__":
    main()
