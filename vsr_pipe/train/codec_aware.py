"""Train the restorer that knows the codec: a correction (``models/correction.py``) on the shipped
ESPCN, fitted on x264/x265-decoded LR pans (``codec_pairs.py``). Delivery starts every title from it.

    python -m vsr_pipe.train.codec_aware --scale 2 --out runs/codec_x2 [--release]   # 20,000 steps, 20 min here

Resumable: a checkpoint (safetensors) every ``--every`` steps; the same command carries on from it.
``--init espcn_y_x2_codec`` fine-tunes the shipped model instead of starting from a zero tail;
``--crfs LO,HI`` narrows the training LR's CRFs (neither helped on the real clips: docs/delivery.md).
``--title-codes N`` trains the correction as CaFM trains its base: N pans each with modulation codes
of their own, learnt beside it (half of every batch; the other half with none), so that its channels
are ones a title's codes can steer (``models/modulation.py``); the zero codes stay the generic start.
``--x265-share 1`` trains on x265's LR alone and ships as ``espcn_y_x{r}_codec_hevc``, the start of
titles delivered in HEVC (6,000 steps from ``espcn_y_x{r}_codec`` at ``--learning-rate 5e-4``).
The held-out figure is measured on pans over Set14 (never trained on) at three CRFs, against bicubic
and the plain ESPCN on the same decoded LR.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.correction import Corrected, CorrectionNet
from ..models.modulation import TitleCodes, modulated
from ..weights.store import load_model, shipped_path
from .checkpoint import load_checkpoint, save_checkpoint
from .codec_pairs import CodedPairs, PanSettings, clip_pairs, coded_pairs

VAL_CRFS = (28.0, 38.0, 45.0)


@dataclass(frozen=True)
class CodecAwareConfig:
    scale: int = 2
    features: int = 16  # a 16x4 correction: a sixth of 32x4's cost on this CPU, 296 modulation codes
    blocks: int = 4
    steps: int = 20000  # on the real clips 3,000 steps gave about 60 % of the gain (bench/codec_aware.py)
    batch: int = 16
    patch: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    every: int = 250
    crfs: tuple[float, float] = PanSettings.crfs  # the training LR's CRFs, drawn uniformly
    x265_share: float = PanSettings.x265_share  # the rest is x264
    init: str = ""  # a shipped ``corrected`` weights name to start from (a fine-tune), or a zero tail
    videos: tuple[str, ...] = ()  # real camera clips to add windows of (hold them out of the figures)
    video_windows: int = 0  # how many 8-frame windows of them
    video_prescale: int = 2  # each clip downscaled first (MATLAB bicubic), as bench/rd.py's masters are
    title_codes: int = 0  # pans trained with codes of their own (CaFM's joint training); 0: none
    code_learning_rate: float = 3.0  # Adam's step for those codes, in code units


def base_name(scale: int) -> str:
    return f"espcn_y_x{scale}"


def released_name(scale: int, x265_share: float = PanSettings.x265_share) -> str:
    """What a run ships as: trained on x265 alone, the HEVC restorer (``weights.shipped.codec_aware_name``)."""
    return f"espcn_y_x{scale}_codec" + ("_hevc" if x265_share >= 1 else "")


def train(cfg: CodecAwareConfig, data: Path, out: Path, log=print) -> Corrected:
    out.mkdir(parents=True, exist_ok=True)
    pan = PanSettings(scale=cfg.scale, crfs=cfg.crfs, x265_share=cfg.x265_share)
    pairs = _cached_pairs(out / "pairs.npz", [data / "T91", data / "BSD200"], pan, log)
    if cfg.videos and cfg.video_windows:
        pairs = _joined(pairs, _cached_clip_pairs(out / "video_pairs.npz", cfg, pan, log))
    val = _cached_pairs(out / "val.npz", [data / "Set14"], PanSettings(scale=cfg.scale, pans_per_image=3), log, 1)
    base = load_model(shipped_path(base_name(cfg.scale))).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    net = CorrectionNet(cfg.scale, cfg.features, cfg.blocks)
    if cfg.init:
        net.load_state_dict(load_model(shipped_path(cfg.init)).correction.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    ckpt = out / "checkpoint.safetensors"
    info = load_checkpoint(ckpt, net, opt) if ckpt.exists() else {"step": 0, "curve": []}
    titles = _TitledPans(net, cfg, len(pairs.lr), out / "title_codes.safetensors") if cfg.title_codes else None
    rng = np.random.default_rng([cfg.seed, info["step"]])
    x, hr = torch.from_numpy(pairs.lr), torch.from_numpy(pairs.hr)
    clock, losses = time.perf_counter(), []
    for step in range(info["step"], cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        index, frames = titles.draw(cfg.batch, rng) if titles else (None, rng.integers(0, len(x), cfg.batch))
        xb, hb = _batch(x, hr, frames, cfg, rng)
        with torch.no_grad():
            yb = base(xb)
        correction = net(xb, yb) if titles is None else modulated(net, xb, yb, titles.codes(index).__getitem__)
        loss = torch.mean((yb + correction - hb) ** 2)
        opt.zero_grad(set_to_none=True)
        if titles:
            titles.opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if titles:
            titles.opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % cfg.every == 0 or step + 1 == cfg.steps:
            scores = evaluate(base, net, val)
            info = {"step": step + 1, "curve": info["curve"] + [{"step": step + 1, **scores}], "config": asdict(cfg)}
            save_checkpoint(ckpt, net, opt, info)
            if titles:
                titles.save(info)
            log(f"step {step + 1}/{cfg.steps} loss {np.mean(losses):.6f} {time.perf_counter() - clock:.0f} s " + _line(scores))
            losses = []
    (out / "curve.json").write_text(json.dumps(info["curve"], indent=1) + "\n")
    return Corrected(base, net.eval())


class _TitledPans:
    """The pans trained with codes of their own (``--title-codes``): which they are (fixed by the
    seed), their codes and the codes' optimiser, kept beside the checkpoint so a stop loses nothing."""

    def __init__(self, net: CorrectionNet, cfg: CodecAwareConfig, frames: int, path: Path):
        pans = frames // PanSettings.frames
        if not 1 <= cfg.title_codes <= pans:
            raise SystemExit(f"--title-codes {cfg.title_codes}: want 1 to {pans} (the pans there are)")
        self.first = np.random.default_rng([cfg.seed, 1]).choice(pans, cfg.title_codes, replace=False) * PanSettings.frames
        self.codes = TitleCodes(net, cfg.title_codes)
        self.opt = torch.optim.Adam(self.codes.parameters(), lr=cfg.code_learning_rate)
        self.path, self.frames = path, frames
        if path.exists():
            load_checkpoint(path, self.codes, self.opt)

    def draw(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """Half the batch from titled pans (their index), half from anywhere with none (-1)."""
        half = batch // 2
        title = rng.integers(0, len(self.first), half)
        frames = np.concatenate([self.first[title] + rng.integers(0, PanSettings.frames, half),
                                 rng.integers(0, self.frames, batch - half)])  # fmt: skip
        return torch.from_numpy(np.concatenate([title, np.full(batch - half, -1)])), frames

    def save(self, info: dict) -> None:
        save_checkpoint(self.path, self.codes, self.opt, {"step": info["step"]})


def _batch(x: torch.Tensor, hr: torch.Tensor, f: np.ndarray, cfg: CodecAwareConfig, rng: np.random.Generator):
    n, h, w = x.shape
    r, p = cfg.scale, min(cfg.patch, h, w)
    t, q = rng.integers(0, h - p + 1, cfg.batch), rng.integers(0, w - p + 1, cfg.batch)
    xb = torch.stack([x[i, a : a + p, b : b + p] for i, a, b in zip(f, t, q)])
    hb = torch.stack([hr[i, r * a : r * (a + p), r * b : r * (b + p)] for i, a, b in zip(f, t, q)])
    # Flips and 90-degree turns, the same for LR and HR (the codec's blocks stay on the grid).
    if rng.random() < 0.5:
        xb, hb = xb.flip(-1), hb.flip(-1)
    if rng.random() < 0.5:
        xb, hb = xb.transpose(-1, -2), hb.transpose(-1, -2)
    return xb.unsqueeze(1).float() / 255, hb.unsqueeze(1).float() / 255


@torch.no_grad()
def evaluate(base, net, val: CodedPairs) -> dict:
    """Mean Y-PSNR (dB, whole frame, 8-bit) per CRF band of the held-out pans: bicubic is left out
    here (the bench measures it); ``espcn`` and ``codec`` on the same decoded LR."""
    scores: dict = {}
    for crf in VAL_CRFS:
        pick = np.abs(val.crf - crf) <= 3
        if not pick.any():
            continue
        x = torch.from_numpy(val.lr[pick]).unsqueeze(1).float() / 255
        hr = torch.from_numpy(val.hr[pick]).unsqueeze(1).float()
        y = base(x)
        scores[f"crf{crf:g}"] = {"espcn": _psnr(y, hr), "codec": _psnr(y + net(x, y), hr)}
    return scores


def _psnr(out: torch.Tensor, hr: torch.Tensor) -> float:
    mse = ((torch.round(out.clamp(0, 1) * 255) - hr) ** 2).mean(dim=(1, 2, 3))
    return float(torch.mean(10 * torch.log10(255**2 / mse.clamp_min(1e-10))))


def _line(scores: dict) -> str:
    return " ".join(f"{k}: {v['espcn']:.2f}->{v['codec']:.2f}" for k, v in scores.items())


def _joined(a: CodedPairs, b: CodedPairs) -> CodedPairs:
    return CodedPairs(*(np.concatenate([x, y]) for x, y in ((a.lr, b.lr), (a.hr, b.hr), (a.crf, b.crf))))


def _cached_clip_pairs(path: Path, cfg: CodecAwareConfig, pan: PanSettings, log) -> CodedPairs:
    if path.exists():
        with np.load(path) as z:
            return CodedPairs(z["lr"], z["hr"], z["crf"])
    from ..models.matlab_resize import imresize
    from .data import video_luma

    clips = []
    for name in cfg.videos:
        luma = video_luma(name)
        if cfg.video_prescale > 1:
            luma = np.stack([np.clip(np.round(imresize(y, 1.0 / cfg.video_prescale)), 0, 255).astype(np.uint8) for y in luma])
        clips.append(luma)
    log(f"coding {cfg.video_windows} windows of {len(clips)} clip(s)")
    try:
        pairs = clip_pairs(clips, pan, cfg.video_windows, seed=cfg.seed + 7)
    except ValueError as e:  # clips too short or small for a window: one line, not a traceback
        raise SystemExit(f"--video: {e}") from None
    np.savez(path, lr=pairs.lr, hr=pairs.hr, crf=pairs.crf)
    return pairs


def _cached_pairs(path: Path, folders, settings: PanSettings, log, seed: int = 0) -> CodedPairs:
    if path.exists():
        with np.load(path) as z:
            return CodedPairs(z["lr"], z["hr"], z["crf"])
    pairs = coded_pairs(folders, settings, seed, log)
    np.savez(path, lr=pairs.lr, hr=pairs.hr, crf=pairs.crf)
    return pairs


def release(model: Corrected, cfg: CodecAwareConfig, curve: list, log=print) -> dict:
    """Ship ``model`` as ``released_name`` says beside the other weights, with its manifest entry."""
    from ..weights.store import shipped_dir
    from .release import publish

    entry = {
        "file": f"{released_name(cfg.scale, cfg.x265_share)}.safetensors",
        "architecture": "corrected",
        "scale": cfg.scale,
        "input": "Y, BT.601 studio swing, [0, 1] = codes / 255",
        "base": base_name(cfg.scale),
        "features": cfg.features,
        "blocks": cfg.blocks,
        "training": {
            "data": "pans over T91 + BSD200 (../shared/data), 8 frames each, a third still"
            + (f"; {cfg.video_windows} windows of 8 consecutive frames of {', '.join(Path(v).name for v in cfg.videos)}"
               f" (downscaled x{cfg.video_prescale} first)" if cfg.video_windows else ""),
            "lr_synthesis": f"MATLAB bicubic, then x264 ({1 - cfg.x265_share:.0%}) / x265 ({cfg.x265_share:.0%}) medium at CRF {cfg.crfs[0]:g}-{cfg.crfs[1]:g}, decoded",
            "started_from": cfg.init or "a zero tail",
            "steps": cfg.steps,
            "batch": cfg.batch,
            "lr_patch": cfg.patch,
            "optimiser": f"Adam {cfg.learning_rate}, cosine, MSE; the base ESPCN frozen",
            "title_codes": (f"{cfg.title_codes} pans with modulation codes of their own, learnt beside it "
                            f"(Adam {cfg.code_learning_rate:g} code units), half of every batch") if cfg.title_codes else "none",
        },
        "figures": {"protocol": "held-out pans over Set14, Y-PSNR dB, whole frame", "by_crf": curve[-1] if curve else {}},
    }
    return publish(model, released_name(cfg.scale, cfg.x265_share), entry, shipped_dir(), log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=CodecAwareConfig.steps)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--features", type=int, default=CodecAwareConfig.features, help="the correction's width")
    ap.add_argument("--blocks", type=int, default=CodecAwareConfig.blocks, help="the correction's residual blocks")
    ap.add_argument("--crfs", default="18,48", help="LO,HI: the training LR's CRFs, drawn uniformly")
    ap.add_argument("--x265-share", type=float, default=PanSettings.x265_share, help="share of training LR coded by x265 (the rest x264)")
    ap.add_argument("--init", default="", help="start from this shipped corrected model (e.g. espcn_y_x2_codec)")
    ap.add_argument("--learning-rate", type=float, default=CodecAwareConfig.learning_rate)
    ap.add_argument("--video", action="append", default=[], help="a real clip to add windows of (repeatable)")
    ap.add_argument("--video-windows", type=int, default=0, help="how many 8-frame windows of --video to add")
    ap.add_argument("--video-prescale", type=int, default=2, help="downscale each --video first (as bench/rd.py's masters)")
    ap.add_argument("--title-codes", type=int, default=0, help="pans trained with codes of their own (CaFM's joint training)")
    ap.add_argument("--code-learning-rate", type=float, default=CodecAwareConfig.code_learning_rate)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--release", action="store_true", help="ship the result in vsr_pipe/weights/")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lo, hi = _crf_range(args.crfs)
    if not 0 <= args.x265_share <= 1:
        raise SystemExit(f"--x265-share {args.x265_share:g}: want a share from 0 to 1")
    if args.title_codes < 0 or not args.code_learning_rate > 0:
        raise SystemExit(f"--title-codes {args.title_codes} / --code-learning-rate {args.code_learning_rate:g}: want >= 0 / > 0")
    if args.init:
        _check_init(args.init, args.scale, args.features, args.blocks)
    cfg = CodecAwareConfig(
        scale=args.scale, steps=args.steps, features=args.features, blocks=args.blocks,
        learning_rate=args.learning_rate, crfs=(lo, hi), x265_share=args.x265_share, init=args.init, videos=tuple(args.video),
        video_windows=args.video_windows, video_prescale=args.video_prescale,
        title_codes=args.title_codes, code_learning_rate=args.code_learning_rate,
    )  # fmt: skip
    model = train(cfg, Path(args.data), Path(args.out), lambda m: print(m, flush=True))
    if args.release:
        curve = json.loads((Path(args.out) / "curve.json").read_text())
        release(model, cfg, curve)


def _crf_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(c) for c in text.split(","))
    except ValueError:
        raise SystemExit(f"--crfs {text}: want LO,HI, e.g. 30,51") from None
    if not 0 <= lo <= hi <= 51:
        raise SystemExit(f"--crfs {text}: want 0 <= LO <= HI <= 51")
    return lo, hi


def _check_init(name: str, scale: int, features: int, blocks: int) -> None:
    """Exit with one line unless ``name`` is a shipped corrected model of this scale and shape."""
    try:
        correction = getattr(load_model(shipped_path(name)), "correction", None)
    except Exception as e:  # unknown name, damaged file: one line, not a traceback
        raise SystemExit(f"--init {name}: {str(e).splitlines()[0]}") from None
    shape = None if correction is None else (correction.scale, correction.features, correction.blocks)
    if shape != (scale, features, blocks):
        raise SystemExit(f"--init {name}: holds no x{scale} {features}x{blocks} correction (it has {shape})")


if __name__ == "__main__":
    main()
