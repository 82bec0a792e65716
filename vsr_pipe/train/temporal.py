"""Training the causal recurrent model (``models/temporal.py``) on this CPU, resumable.

Sequences are made from still images moved as a camera would move over them: a window sliding by a
constant velocity of a few HR pixels a frame (sub-pixel at LR size, which is where the frames
before hold detail the current one lacks), a quarter of them standing still (so the model learns
not to invent motion). LR frames by MATLAB bicubic, as the pipeline's LR and the field's protocol.
The single-frame ESPCN under the model stays frozen; only the recurrent cell trains, by
backpropagation through the whole sequence. A checkpoint (safetensors) every few minutes; run the
same command again to resume.

  python -m vsr_pipe.train.temporal --scale 2 --steps 4000 --out runs/temporal_x2
  python -m vsr_pipe.train.temporal --scale 2 --out runs/temporal_x2 --release   # ship its checkpoint
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.matlab_resize import imresize
from ..models.temporal import TemporalSR
from ..quality.imagefiles import list_images, load_rgb
from ..quality.metrics import rgb_to_y
from ..weights.store import MAX_TEMPORAL_LAYERS
from .checkpoint import load_checkpoint, save_checkpoint
from .data import video_luma

CHECKPOINT = "checkpoint.safetensors"


class MotionSequences:
    """(LR, HR) sequences over still images: (N, T, 1, p, p) and (N, T, 1, p*r, p*r), float32 in [0, 1]."""

    def __init__(self, folders: list[str], scale: int, lr_patch: int, frames: int, seed: int = 0, max_speed: int = 3,
                 noise: float = 0.0, holds: float = 0.0, fast: float = 0.0, fast_speed: int = 16,
                 videos: list[np.ndarray] | None = None, video_share: float = 0.0):  # fmt: skip
        self.scale, self.lr_patch, self.frames, self.max_speed = scale, lr_patch, frames, max_speed
        self.noise = noise  # up to this many 8-bit levels of Gaussian noise on each LR frame, as a camera adds
        # The share of sequences in which frames repeat (each frame after the first, with probability
        # 1/2, is the one before it): what a source at a lower rate than its container, or a camera
        # that drops frames, gives; the output should then not change either.
        self.holds = holds
        # The share of sequences moving faster than the frames before can follow (up to fast_speed
        # HR px a frame: a car crossing a still camera's view); there the state must be let go of.
        self.fast, self.fast_speed = fast, fast_speed
        images = [rgb_to_y(load_rgb(f)).astype(np.float32) for d in folders for f in list_images(d)]
        self.images = [y for y in images if min(y.shape) >= lr_patch * scale + 2 * max_speed * frames]
        self.large = [y for y in images if min(y.shape) >= lr_patch * scale + fast_speed * (frames - 1)]
        if fast and not self.large:
            raise ValueError(f"no training image is large enough for {fast_speed} px a frame over {frames} frames")
        # Real camera video ((T, H, W) luma each): windows of consecutive frames, where the motion,
        # the sensor's noise and the source's coding are a camera's rather than a still image's.
        self.videos = [v for v in (videos or []) if v.shape[0] >= frames and min(v.shape[1:]) >= lr_patch * scale]
        if video_share and not self.videos:
            raise ValueError(f"no video has {frames} frames of at least {lr_patch * scale} px a side")
        self.video_share = video_share
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        lrs, hrs = zip(*(self.sequence() for _ in range(size)))
        return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))

    def sequence(self) -> tuple[np.ndarray, np.ndarray]:
        r, p, t = self.scale, self.lr_patch, self.frames
        hp = p * r
        if self.video_share and self.rng.random() < self.video_share:  # no draw without videos
            return self._pair(self._video_window(hp, t))
        if self.fast and self.rng.random() < self.fast:  # no draw without fast: older runs stay as they were
            y = self.large[self.rng.integers(len(self.large))]
            limit = (min(y.shape) - hp) // max(t - 1, 1)  # the span must fit the image along each axis
            v = self.rng.integers(-min(limit, self.fast_speed), min(limit, self.fast_speed) + 1, 2)
        else:
            y = self.images[self.rng.integers(len(self.images))]
            still = self.rng.random() < 0.25
            v = np.zeros(2, int) if still else self.rng.integers(-self.max_speed, self.max_speed + 1, 2)
        span = np.abs(v) * (t - 1)
        y0 = self.rng.integers(0, y.shape[0] - hp - span[0] + 1) + (span[0] if v[0] < 0 else 0)
        x0 = self.rng.integers(0, y.shape[1] - hp - span[1] + 1) + (span[1] if v[1] < 0 else 0)
        at = np.arange(t)
        if self.holds and self.rng.random() < self.holds:  # no draw without holds: older runs stay as they were
            moves = np.concatenate([[0], self.rng.random(t - 1) < 0.5])
            at = np.cumsum(moves)  # a held frame repeats the position before it, exactly
        hr = np.stack([y[y0 + k * v[0] : y0 + k * v[0] + hp, x0 + k * v[1] : x0 + k * v[1] + hp] for k in at])
        return self._pair(hr)

    def _video_window(self, hp: int, t: int) -> np.ndarray:
        v = self.videos[self.rng.integers(len(self.videos))]
        t0 = self.rng.integers(0, v.shape[0] - t + 1)
        y0, x0 = self.rng.integers(0, v.shape[1] - hp + 1), self.rng.integers(0, v.shape[2] - hp + 1)
        return v[t0 : t0 + t, y0 : y0 + hp, x0 : x0 + hp].astype(np.float32)

    def _pair(self, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.scale
        if self.rng.random() < 0.5:
            hr = hr[:, :, ::-1]
        lr = np.stack([imresize(f, 1.0 / r) for f in hr])
        if self.noise:  # new noise each frame: what a still camera's frames differ by
            lr = lr + self.rng.normal(0, self.rng.uniform(0, self.noise), lr.shape)
        lr = np.clip(np.round(lr), 0, 255)
        return (lr[:, None] / 255.0).astype(np.float32), (np.ascontiguousarray(hr)[:, None] / 255.0).astype(np.float32)


class CodedSequences:
    """(LR, HR) sequences from codec-decoded pans (``codec_aware.py``'s ``pairs.npz``/``val.npz``:
    8-frame pans coded with x264/x265 at CRF 18-48, in order), as :class:`MotionSequences` gives them:
    the recurrent model learning what the frames before say about the codec's losses."""

    PAN = 8

    def __init__(self, path: Path, scale: int, lr_patch: int, frames: int, seed: int = 0, min_crf: float = 0.0):
        with np.load(path) as z:
            lr, hr, crf = z["lr"], z["hr"], z["crf"]
        keep = (crf.reshape(-1, self.PAN)[:, 0] >= min_crf)
        self.lr = lr.reshape(-1, self.PAN, *lr.shape[1:])[keep]
        self.hr = hr.reshape(-1, self.PAN, *hr.shape[1:])[keep]
        self.scale, self.lr_patch, self.frames = scale, lr_patch, frames
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        lrs, hrs = zip(*(self.sequence() for _ in range(size)))
        return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))

    def sequence(self, whole: bool = False) -> tuple[np.ndarray, np.ndarray]:
        r, p, t = self.scale, self.lr_patch, self.frames
        k = self.rng.integers(len(self.lr))
        t0 = self.rng.integers(0, self.PAN - t + 1)
        h, w = self.lr.shape[2:]
        y0, x0 = (0, 0) if whole else (self.rng.integers(0, h - p + 1), self.rng.integers(0, w - p + 1))
        ph, pw = (h, w) if whole else (p, p)
        lr = self.lr[k, t0 : t0 + t, y0 : y0 + ph, x0 : x0 + pw]
        hr = self.hr[k, t0 : t0 + t, r * y0 : r * (y0 + ph), r * x0 : r * (x0 + pw)]
        return (lr[:, None] / 255.0).astype(np.float32), (hr[:, None] / 255.0).astype(np.float32)


def unroll(model: TemporalSR, lr: torch.Tensor) -> torch.Tensor:
    """Outputs of a batch of sequences from a reset state: (N, T, 1, p, p) -> (N, T, 1, p*r, p*r)."""
    prev, prev_out, state = model.initial_state(lr[:, 0])
    outs = []
    for t in range(lr.shape[1]):
        out, state = model(lr[:, t], prev, prev_out, state)
        outs.append(out)
        prev, prev_out = lr[:, t], out
    return torch.stack(outs, 1)


def psnr_y(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    a = a[..., border:-border, border:-border].clamp(0, 1)
    b = b[..., border:-border, border:-border]
    return float(10 * torch.log10(1 / F.mse_loss(a, b).clamp_min(1e-12)))


def with_base(scale: int, **kw) -> TemporalSR:
    """A fresh model on the shipped ESPCN of its scale."""
    from ..weights.shipped import shipped_path
    from ..weights.store import load_model

    model = TemporalSR(scale, **kw)
    model.base.load_state_dict(load_model(shipped_path(f"espcn_y_x{scale}")).state_dict())
    return model


def checkpoint_layers(path: str | Path) -> int:
    """The body layers a training run's checkpoint was made with (its ``--layers``; 2 before there
    was one, or where the file says nothing readable: loading it then says what is wrong)."""
    from .checkpoint import read_info

    try:
        return int(read_info(path).get("args", {}).get("layers", 2))
    except Exception:
        return 2


def deepen(model: TemporalSR, trained: torch.nn.Module) -> None:
    """Load ``trained`` into ``model``, which may have more body layers: those start as identity
    convolutions (centre tap 1 on its own channel, no bias), which pass a ReLU's non-negative output
    through unchanged, so the deeper model computes exactly what ``trained`` did (Net2DeeperNet,
    Chen et al. 2016) and fine-tuning starts from it rather than from noise."""
    state = trained.state_dict()
    have = len(getattr(trained, "body", []))
    if not isinstance(trained, TemporalSR) or have > len(model.body):
        raise ValueError(f"not a temporal model with at most {len(model.body)} body layers")
    # the tail keeps its name; body layers past the trained ones become identities
    for i in range(have, len(model.body)):
        conv = model.body[i]
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            idx = torch.arange(conv.out_channels)
            conv.weight[idx, idx, 1, 1] = 1.0
        state.update({f"body.{i}.weight": conv.weight.detach().clone(), f"body.{i}.bias": conv.bias.detach().clone()})
    model.load_state_dict(state)


def train(args, log=print) -> Path:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = with_base(args.scale, layers=args.layers)
    if args.init:  # fine-tune a trained model (e.g. the shipped one) rather than start the cell afresh
        from ..weights.store import load_model

        try:
            deepen(model, load_model(args.init))
        except Exception as e:  # a missing or foreign weights file: one line, not a traceback
            raise SystemExit(f"--init {args.init}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    step, curve = 0, []
    if (out / CHECKPOINT).exists():
        if checkpoint_layers(out / CHECKPOINT) != args.layers:  # its tensors would not fit: say so, not a traceback
            raise SystemExit(f"{out / CHECKPOINT}: made with --layers {checkpoint_layers(out / CHECKPOINT)}, "
                             f"not {args.layers}: resume with those, or start in another --out")  # fmt: skip
        info = load_checkpoint(out / CHECKPOINT, model, optimizer)
        step, curve = int(info["step"]), info.get("curve", [])
        log(f"resumed at step {step}")
    data_dir = Path(args.data)
    if args.coded:  # codec-decoded pans (x264/x265), validated on held-out Set14 pans at CRF >= 35
        coded = Path(args.coded)
        train_set = CodedSequences(coded / "pairs.npz", args.scale, args.patch, args.frames, args.seed + step)
        val_set = CodedSequences(coded / "val.npz", args.scale, 48, args.frames, seed=1234, min_crf=35.0)
        val = [val_set.sequence(whole=True) for _ in range(16)]
    else:
        videos = [video_luma(v) for v in args.video] if args.video_share else []
        try:
            train_set = MotionSequences([str(data_dir / "T91"), str(data_dir / "BSD200")], args.scale, args.patch,
                                         args.frames, args.seed + step, noise=args.noise, holds=args.holds,
                                         fast=args.fast, fast_speed=args.fast_speed, videos=videos,
                                         video_share=args.video_share)  # fmt: skip
        except ValueError as e:  # one line, not a traceback: the options ask for more than the images hold
            raise SystemExit(f"{e}: lower --fast-speed, --frames or --patch") from None
        val_set = MotionSequences([str(data_dir / "Set14")], args.scale, 48, args.frames, seed=1234)
        val = [val_set.sequence() for _ in range(16)]
    val_lr = torch.from_numpy(np.stack([v[0] for v in val]))
    val_hr = torch.from_numpy(np.stack([v[1] for v in val]))
    saved = time.monotonic()
    while step < args.steps:
        lr_now = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        lr, hr = train_set.batch(args.batch)
        # L1, as EDSR and the recurrent VSR models train: MSE's gradient vanishes as the
        # residual over ESPCN gets small, which is where this model starts.
        out_seq = unroll(model, lr)
        loss = F.l1_loss(out_seq, hr)
        if args.temporal_weight:  # flicker: each frame's change should be the reference's change
            loss = loss + args.temporal_weight * F.l1_loss(out_seq.diff(dim=1), hr.diff(dim=1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % args.every == 0 or step == args.steps:
            curve.append(evaluate(model, val_lr, val_hr, step, loss.item()))
            log(json.dumps(curve[-1]))
        if time.monotonic() - saved > 120 or step == args.steps:
            save_checkpoint(out / CHECKPOINT, model, optimizer, {"step": step, "curve": curve, "args": vars(args)})
            saved = time.monotonic()
    return out / CHECKPOINT


@torch.no_grad()
def evaluate(model: TemporalSR, lr: torch.Tensor, hr: torch.Tensor, step: int, loss: float) -> dict:
    """Validation Y-PSNR of the model and of its ESPCN alone, on moving Set14 sequences."""
    model.eval()
    out = unroll(model, lr)
    base = model.base(lr.flatten(0, 1)).view_as(hr)
    model.train()
    r = model.scale
    return {"step": step, "loss": round(loss, 6), "val_db": round(psnr_y(out, hr, r), 3),
            "espcn_db": round(psnr_y(base, hr, r), 3), "flicker": _flicker(out, hr), "espcn_flicker": _flicker(base, hr)}  # fmt: skip


def _flicker(out: torch.Tensor, hr: torch.Tensor) -> float:
    """Mean |change of the output - change of the reference| between consecutive frames, 8-bit codes."""
    return round(255 * float((out.clamp(0, 1).diff(dim=1) - hr.diff(dim=1)).abs().mean()), 4)


def release(args, folder: Path | None = None, log=print) -> dict:
    """Ship the run's checkpoint as ``temporal_y_xS`` (package weights folder unless ``folder``),
    its manifest entry saying how it was trained and its last validation figures."""
    from ..weights.shipped import shipped_dir
    from .checkpoint import read_info
    from .release import INPUT, publish

    path = Path(args.out) / CHECKPOINT
    if not path.is_file():
        raise SystemExit(f"{path}: no checkpoint to release")
    info = read_info(path)
    model = with_base(args.scale, layers=checkpoint_layers(path))
    load_checkpoint(path, model, None)
    trained = info.get("args", {})
    curve = info.get("curve", [])
    videos = ", ".join(Path(v).name for v in trained.get("video", []))
    entry = {
        "file": f"temporal_y_x{args.scale}.safetensors", "architecture": "temporal", "scale": args.scale,
        "input": INPUT, "base": f"espcn_y_x{args.scale} (frozen)",
        "training": {
            "data": f"T91 + BSD200 windows moving 0-3 HR px a frame (a quarter still), {trained.get('frames', 6)} frames, MATLAB bicubic LR"
                    + (f"; in {trained['holds']:.0%} of them frames repeat at random" if trained.get("holds") else "")
                    + (f"; {trained['fast']:.0%} move up to {trained.get('fast_speed')} HR px a frame" if trained.get("fast") else "")
                    + (f"; {trained['video_share']:.0%} are windows of consecutive frames of {videos}" if trained.get("video_share") else ""),
            "steps": int(info["step"]), "batch": trained.get("batch"), "lr_patch": trained.get("patch"),
            "optimiser": f"Adam {trained.get('lr')}, cosine, L1, backpropagation through the sequence"
                         + (f", + {trained['temporal_weight']} x L1 of frame-to-frame change" if trained.get("temporal_weight") else ""),
            "lr_noise_sigma_max": trained.get("noise", 0.0),
            "init": f"fine-tuned from {args.init_note or Path(trained['init']).name}" if trained.get("init") else "ESPCN, cell afresh",
        },
        "figures": {"protocol": "moving Set14 windows, 16 sequences, Y-PSNR dB, border = scale", "last": curve[-1] if curve else {}},
    }  # fmt: skip
    return publish(model, f"temporal_y_x{args.scale}", entry, folder or shipped_dir(), log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--patch", type=int, default=32, help="LR patch side")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=100, help="validate every N steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", help="a temporal weights file to start from (fine-tuning)")
    ap.add_argument("--layers", type=int, default=2,
                    help="body layers of the cell; more than --init has start as identities (same output)")
    ap.add_argument("--temporal-weight", type=float, default=0.0,
                    help="weight of an L1 term on consecutive frames' change against the reference's (flicker)")
    ap.add_argument("--init-note", default="", help="--release: what --init was, for the manifest (e.g. the weights' sha256)")
    ap.add_argument("--holds", type=float, default=0.0,
                    help="share of training sequences whose frames repeat at random (a lower-rate source, dropped frames)")
    ap.add_argument("--fast", type=float, default=0.0,
                    help="share of training sequences moving fast (up to --fast-speed HR px a frame)")
    ap.add_argument("--fast-speed", type=int, default=16, help="fast sequences' top speed, HR px a frame")
    ap.add_argument("--video", action="append", default=[],
                    help="a real video to draw windows of consecutive frames from (repeatable); hold it out of the figures")
    ap.add_argument("--video-share", type=float, default=0.0, help="share of training sequences drawn from --video")
    ap.add_argument("--noise", type=float, default=0.0, help="LR noise, up to this sigma in 8-bit levels per frame")
    ap.add_argument("--coded", help="train on codec-decoded pans: a train.codec_aware run's folder (pairs.npz, val.npz)")
    ap.add_argument("--release", action="store_true", help="ship the run's checkpoint (no training)")
    args = ap.parse_args()
    if not 0 <= args.layers <= MAX_TEMPORAL_LAYERS:
        ap.error(f"--layers takes 0 to {MAX_TEMPORAL_LAYERS} (what a weights file may hold)")
    if not 0.0 <= args.fast <= 1.0 or args.fast_speed < 1:
        ap.error("--fast takes a share from 0 to 1 and --fast-speed at least 1 px a frame")
    if not 0.0 <= args.video_share <= 1.0 or bool(args.video_share) != bool(args.video):
        ap.error("--video-share takes a share from 0 to 1, and needs --video (and --video needs it)")
    release(args) if args.release else train(args)


if __name__ == "__main__":
    main()
