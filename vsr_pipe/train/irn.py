"""Training the arbitrary-scale invertible rescaler with IRN's losses (``papers.md`` §2).

Per sample, summed over pixels (IRN's weights only balance with sums):
  guide    fy*fx * sum (LR - MATLAB-bicubic LR)^2      the LR must look like a proper downscale
  recon    sum Charbonnier(HR - up(quantise(LR), z~N(0,1)))
  latent   sum z^2                                      pushes z towards N(0, 1)'s mode
  cycle    sum Charbonnier(Y - E P+ Y), Y the enlarged frame the inverse builds, E the enlargement and
           P+ its least-squares inverse: zero when Y lies in what the enlargement can make, which is
           what makes a second down-up cycle give back the first one's LR (x2, x4: E = I, always 0)
The z that reconstruction draws is N(0, tau^2), tau ramped from 0 to 1 over the first ``warmup``
share of the steps, then 1 as at test: first the LR learns to carry the detail (z = 0 restores from
the LR alone), then the inverse learns to ignore a full-scale random z. Without the ramp, a random
z of unit scale swamps reconstruction from the first step and the couplings learn slowly.
Each batch draws one factor pair over [1, 4]: a share exactly x2 and x4 (the figures users compare),
the rest uniform, some of it asymmetric. The LR goes through 8-bit rounding with a straight-through
gradient, as the shipped LR is 8-bit. With ``codec_share`` > 0 that share of the batches also passes
the LR through the differentiable intra-codec stand-in (``models/codec_proxy.py``) at a strength drawn
between CRF ~16 and ~26 before restoring: the LR a user keeps is coded. Resumable; checkpoints are
safetensors.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError
from ..models.codec_proxy import CRF_STRENGTH, code_intra
from ..models.matlab_resize import imresize, imresize_matrix
from ..models.rescaler import MAX_FACTOR, ArbitraryRescaler, RescaleGeometry, quantise_8bit
from ..quality.imagefiles import list_images, load_rgb
from ..quality.metrics import rgb_to_y
from ..quality.rescaling import evaluate_rescaling
from .checkpoint import load_checkpoint, save_checkpoint
from .config import IrnTrainConfig  # also imported from here by callers


def learning_rate_at(step: int, cfg: IrnTrainConfig) -> float:
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.final_learning_rate + 0.5 * (cfg.learning_rate - cfg.final_learning_rate) * (1 + math.cos(math.pi * t))


def build_model(cfg: IrnTrainConfig) -> ArbitraryRescaler:
    return ArbitraryRescaler(cfg.blocks, cfg.growth, cfg.convs)


def warm_start(model: ArbitraryRescaler, path: str | Path) -> None:
    """Load weights of the same architecture; subnets that read fewer conditioning maps get zero
    weights for the new ones, so the model starts out computing exactly what the weights did."""
    from ..weights.store import load_model

    source = load_model(path)
    if not isinstance(source, ArbitraryRescaler) or (source.blocks, source.growth, source.convs) != (
        model.blocks, model.growth, model.convs
    ):  # fmt: skip
        raise WeightsError(f"{Path(path).name} is not a rescaler of this architecture: cannot start from it")
    state = model.state_dict()
    for key, value in source.state_dict().items():
        if value.shape != state[key].shape:  # a first conv: conditioning maps are its last inputs
            padded = torch.zeros_like(state[key])
            padded[:, : value.shape[1]] = value
            value = padded
        state[key] = value
    model.load_state_dict(state)


class LumaPatches:
    """Random HR Y patches of any size from images held in memory (flips and 90-degree turns)."""

    def __init__(self, folders: list[str | Path], seed: int = 0, size_factors=(1.0, 0.8, 0.6), log=print):
        self.planes: list[np.ndarray] = []
        files = [f for folder in folders for f in list_images(folder)]
        for i, path in enumerate(files):
            rgb = load_rgb(path)
            for factor in size_factors:
                img = rgb if factor == 1.0 else np.clip(imresize(rgb, factor), 0, 255)
                self.planes.append(np.round(rgb_to_y(np.round(img))).astype(np.float32) / 255.0)
            if log and (i + 1) % 100 == 0:
                log(f"prepared {i + 1}/{len(files)} training images")
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, h: int, w: int) -> np.ndarray:
        """(size, 1, h, w) float32 in [0, 1]."""
        out = np.empty((size, 1, h, w), np.float32)
        n = 0
        while n < size:
            plane = self.planes[self.rng.integers(len(self.planes))]
            turn = self.rng.integers(4)
            ph, pw = (w, h) if turn % 2 else (h, w)
            if plane.shape[0] < ph or plane.shape[1] < pw:
                continue
            y0 = self.rng.integers(plane.shape[0] - ph + 1)
            x0 = self.rng.integers(plane.shape[1] - pw + 1)
            patch = np.rot90(plane[y0 : y0 + ph, x0 : x0 + pw], turn)
            if self.rng.integers(2):
                patch = patch[:, ::-1]
            out[n, 0] = patch
            n += 1
        return out


def draw_factors(rng: np.random.Generator, cfg: IrnTrainConfig) -> tuple[float, float]:
    u = rng.random()
    if u < cfg.share_x2:
        return 2.0, 2.0
    if u < cfg.share_x2 + cfg.share_x4:
        return 4.0, 4.0
    if u < cfg.share_x2 + cfg.share_x4 + cfg.share_asymmetric:
        return float(rng.uniform(1, MAX_FACTOR)), float(rng.uniform(1, MAX_FACTOR))
    f = float(rng.uniform(1, MAX_FACTOR))
    return f, f


def temperature_at(step: int, cfg: IrnTrainConfig) -> float:
    return cfg.final_temperature * min(1.0, step / max(cfg.warmup * cfg.steps, 1.0))


def draw_codec_strength(rng: np.random.Generator, cfg: IrnTrainConfig) -> float | None:
    """None (lossless LR), or a stand-in strength log-uniform around x264 CRF 18 to 23's."""
    if rng.random() >= cfg.codec_share:
        return None
    lo, hi = CRF_STRENGTH[18] * 0.7, CRF_STRENGTH[23] * 1.5
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def rescale_losses(
    model: ArbitraryRescaler,
    hr: torch.Tensor,
    geometry: RescaleGeometry,
    temperature: float = 1.0,
    codec_strength: float | None = None,
) -> dict[str, torch.Tensor]:
    """IRN's three losses for one batch (per-sample sums, mean over the batch); with
    ``codec_strength`` the 8-bit LR is coded by the stand-in before the inverse sees it."""
    n = hr.shape[0]
    t = geometry.tensors(device=hr.device)
    guide_rows = torch.from_numpy(imresize_matrix(geometry.hr[0], geometry.lr[0])).float().to(hr.device)
    guide_cols = torch.from_numpy(imresize_matrix(geometry.hr[1], geometry.lr[1])).float().to(hr.device)
    guide = guide_rows @ hr @ guide_cols.T
    lr, z = model.down(hr, t.up_rows, t.up_cols, t.conds)
    stored = quantise_8bit(lr)
    if codec_strength is not None:
        stored = quantise_8bit(code_intra(stored, codec_strength))
    inner = model.up_inner(stored, torch.randn_like(z) * temperature, t.conds)
    restored = t.inv_rows @ inner @ t.inv_cols.T
    weight = geometry.factor_x * geometry.factor_y
    losses = {
        "guide": weight * ((lr - guide) ** 2).sum() / n,
        "recon": torch.sqrt((restored - hr) ** 2 + 1e-6).sum() / n,
        "latent": (z**2).sum() / n,
    }
    if geometry.inner != geometry.hr:
        off_range = inner - t.up_rows @ restored @ t.up_cols.T
        losses["cycle"] = (torch.sqrt(off_range**2 + 1e-6) - 1e-3).sum() / n
    return losses


def validate(model: ArbitraryRescaler, folder: str) -> dict[str, float]:
    if next(model.parameters()).device.type != "cpu":  # the benchmark protocol runs on the CPU
        scores = validate(copy.deepcopy(model).cpu(), folder)
        model.train()
        return scores
    scores = {}
    for f in (2.0, 4.0, 2.5):
        s = evaluate_rescaling(folder, model, f, with_ssim=False)
        scores[f"x{f:g}"] = round(s.psnr, 3)
        scores[f"x{f:g}_lr"] = round(s.lr_psnr, 3)
        scores[f"x{f:g}_z0"] = round(evaluate_rescaling(folder, model, f, with_ssim=False, temperature=0.0).psnr, 3)
    model.train()
    return scores


def train(cfg: IrnTrainConfig, log=print) -> Path:
    """Train (or resume) and return the path of the checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.safetensors"
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = build_model(cfg).to(device)
    scales = list(model.latent_log_scale.parameters())
    others = [p for n, p in model.named_parameters() if not n.startswith("latent_log_scale")]
    optimizer = torch.optim.Adam(
        [{"params": others, "weight_decay": 1e-5}, {"params": scales, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    step = 0
    if ckpt.exists():
        step = int(load_checkpoint(ckpt, model, optimizer).get("step", 0))
        log(f"resumed from {ckpt} at step {step}")
    elif cfg.init_from:
        warm_start(model, cfg.init_from)
        model.to(device)
        log(f"starting from the weights in {cfg.init_from}")
    if step >= cfg.steps:
        return ckpt
    patches = LumaPatches(list(cfg.train_dirs), seed=cfg.seed + step, log=log)
    rng = np.random.default_rng(cfg.seed + 7919 * step)
    log(f"{len(patches.planes)} training planes; {cfg.steps - step} steps to go")
    history = out / "history.jsonl"
    started, first_step = time.time(), step
    running: dict[str, float] = {}
    model.train()
    while step < cfg.steps:
        fy, fx = draw_factors(rng, cfg)
        lr_h, lr_w = cfg.lr_patch, cfg.lr_patch
        geometry = RescaleGeometry((round(lr_h * fy), round(lr_w * fx)), (lr_h, lr_w))
        if cfg.max_seconds and time.time() - started > cfg.max_seconds:
            save_checkpoint(ckpt, model, optimizer, {"step": step, "config": asdict(cfg)})
            log(f"stopped at step {step}: {cfg.max_seconds:g} s of wall-clock time used")
            break
        hr = torch.from_numpy(patches.batch(cfg.batch, *geometry.hr)).to(device, non_blocking=True)
        base_lr = learning_rate_at(step, cfg)
        optimizer.param_groups[0]["lr"] = base_lr
        optimizer.param_groups[1]["lr"] = base_lr * cfg.latent_scale_learning_rate / cfg.learning_rate
        losses = rescale_losses(model, hr, geometry, temperature_at(step, cfg), draw_codec_strength(rng, cfg))
        loss = sum(cfg.cycle_weight * v if k == "cycle" else v for k, v in losses.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        for k, v in losses.items():  # per HR pixel, so factors of any size read alike
            per_px = v.item() / (geometry.hr[0] * geometry.hr[1])
            running[k] = 0.98 * running.get(k, per_px) + 0.02 * per_px
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt, model, optimizer, {"step": step, "config": asdict(cfg)})
        if cfg.val_dir and (step % cfg.eval_every == 0 or step == cfg.steps):
            scores = validate(model, cfg.val_dir)
            rate = (step - first_step) / max(time.time() - started, 1e-9)
            record = {"step": step, "temperature": round(temperature_at(step, cfg), 3),
                      **{k: round(v, 6) for k, v in running.items()}, **scores,
                      "elapsed_s": round(time.time() - started, 1)}  # fmt: skip
            with history.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(
                f"step {step}/{cfg.steps} " + " ".join(f"{k} {v}" for k, v in scores.items()) + f" ({rate:.2f} steps/s)"
            )
    return ckpt
