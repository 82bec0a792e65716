"""Training loop for ESPCN on image folders: MSE on Y (or RGB), Adam, cosine decay, resumable."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..models.espcn import ESPCN
from ..quality.images import evaluate_folder, model_upscaler
from .checkpoint import load_checkpoint, save_checkpoint
from .config import EspcnTrainConfig  # also imported from here by callers
from .data import PatchConfig, PatchSampler


def learning_rate_at(step: int, cfg: EspcnTrainConfig) -> float:
    """Cosine from ``learning_rate`` to ``final_learning_rate`` over ``steps``."""
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.final_learning_rate + 0.5 * (cfg.learning_rate - cfg.final_learning_rate) * (1 + math.cos(math.pi * t))


def build_model(cfg: EspcnTrainConfig) -> ESPCN:
    return ESPCN(cfg.scale, num_ch=1 if cfg.luma else 3, num_feat=tuple(cfg.num_feat), residual=cfg.residual)


def validate(model: ESPCN, cfg: EspcnTrainConfig, folder: str, with_ssim: bool = False):
    """Set score of ``model`` on ``folder`` with the standard protocol."""
    score = evaluate_folder(folder, cfg.scale, model_upscaler(model), with_ssim=with_ssim)
    model.train()
    return score


def train(cfg: EspcnTrainConfig, log=print) -> Path:
    """Train (or resume) and return the path of the final checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.safetensors"
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    step = 0
    if ckpt.exists():
        info = load_checkpoint(ckpt, model, optimizer)
        step = int(info.get("step", 0))
        log(f"resumed from {ckpt} at step {step}")
    if step >= cfg.steps:
        return ckpt
    sampler = PatchSampler(
        list(cfg.train_dirs),
        PatchConfig(cfg.scale, cfg.lr_patch, cfg.luma, cfg.size_factors),
        seed=cfg.seed + step,
        log=log,
    )
    log(f"{len(sampler.pairs)} training pairs; {cfg.steps - step} steps to go")
    history = out / "history.jsonl"
    started, running, first_step = time.time(), 0.0, step
    model.train()
    while step < cfg.steps:
        lr_np, hr_np = sampler.batch(cfg.batch)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, cfg)
        loss = torch.nn.functional.mse_loss(model(torch.from_numpy(lr_np)), torch.from_numpy(hr_np))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > first_step + 1 else loss.item()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt, model, optimizer, {"step": step, "config": asdict(cfg)})
        if cfg.val_dir and (step % cfg.eval_every == 0 or step == cfg.steps):
            score = validate(model, cfg, cfg.val_dir)
            rate = (step - first_step) / max(time.time() - started, 1e-9)
            record = {"step": step, "loss": running, "val_psnr": score.psnr, "elapsed_s": time.time() - started}
            with history.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(
                f"step {step}/{cfg.steps} loss {running:.6f} {score.name} x{cfg.scale} {score.psnr:.3f} dB ({rate:.1f} steps/s)"
            )
    return ckpt
