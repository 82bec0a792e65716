"""Ship a trained model: weights into the package, measured figures into the manifest."""

from __future__ import annotations

import datetime
from pathlib import Path

from ..quality.images import bicubic_upscaler, evaluate_folder, model_upscaler
from ..weights.store import save_model, shipped_dir, update_manifest
from .checkpoint import load_checkpoint
from .espcn import EspcnTrainConfig, build_model


def export_espcn(checkpoint: str | Path, data_dir: str | Path, log=print) -> dict:
    """Copy the checkpoint's model to ``vsr_pipe/weights/espcn_y_xS.safetensors`` and record
    its Set5/Set14 Y-PSNR/SSIM (and bicubic's) in the manifest."""
    probe = EspcnTrainConfig(scale=2, train_dirs=(), val_dir=None, out_dir=".")
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as f:
        import json

        info = json.loads((f.metadata() or {}).get("info", "{}"))
    cfg = EspcnTrainConfig(**{**probe.__dict__, **_tuples(info["config"])})
    model = build_model(cfg)
    load_checkpoint(checkpoint, model, None)
    name = f"espcn_y_x{cfg.scale}"
    digest = save_model(model, shipped_dir() / f"{name}.safetensors")
    figures = {}
    for set_name in ("Set5", "Set14"):
        folder = Path(data_dir) / set_name
        if folder.is_dir():
            ours = evaluate_folder(folder, cfg.scale, model_upscaler(model))
            base = evaluate_folder(folder, cfg.scale, bicubic_upscaler)
            figures[set_name] = {"psnr": round(ours.psnr, 3), "ssim": round(ours.ssim, 4),
                                 "bicubic_psnr": round(base.psnr, 3), "bicubic_ssim": round(base.ssim, 4)}  # fmt: skip
            log(f"{name} {set_name}: {ours.psnr:.3f} dB / {ours.ssim:.4f} (bicubic {base.psnr:.3f} / {base.ssim:.4f})")
    entry = {
        "file": f"{name}.safetensors",
        "sha256": digest,
        "architecture": "espcn",
        "scale": cfg.scale,
        "input": "Y, BT.601 studio swing, [0, 1] = codes / 255",
        "residual": cfg.residual,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "data": "T91 + BSD200 (../shared/data), sizes x1.0-0.6, flips and 90-degree turns",
            "lr_synthesis": "MATLAB bicubic (antialiased), rounded to 8 bits",
            "steps": info.get("step"),
            "z_temperature": cfg.final_temperature,
            "batch": cfg.batch,
            "lr_patch": cfg.lr_patch,
            "optimiser": f"Adam {cfg.learning_rate:g}, cosine to {cfg.final_learning_rate:g}, MSE",
        },
        "figures": {"protocol": "Y-PSNR/SSIM, MATLAB-bicubic LR, scale px shaved", **figures},
        "exported": datetime.date.today().isoformat(),
    }
    update_manifest(name, entry)
    return entry


def _tuples(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def export_irn(checkpoint: str | Path, data_dir: str | Path | None, log=print) -> dict:
    """Copy the rescaler to ``vsr_pipe/weights/irn_y.safetensors``; record its Set5/Set14 figures at
    x2 and x4 (restored Y-PSNR/SSIM, LR against MATLAB bicubic) in the manifest."""
    import json

    from safetensors import safe_open

    from ..quality.rescaling import evaluate_rescaling
    from .irn import IrnTrainConfig
    from .irn import build_model as build_rescaler

    with safe_open(str(checkpoint), framework="pt") as f:
        info = json.loads((f.metadata() or {}).get("info", "{}"))
    cfg = IrnTrainConfig(**_tuples(info["config"]))
    model = build_rescaler(cfg)
    load_checkpoint(checkpoint, model, None)
    digest = save_model(model, shipped_dir() / "irn_y.safetensors")
    figures: dict = {}
    for set_name in ("Set5", "Set14"):
        folder = Path(data_dir or ".") / set_name
        if data_dir and folder.is_dir():
            for factor in (2.0, 4.0):
                s = evaluate_rescaling(folder, model, factor)
                s0 = evaluate_rescaling(folder, model, factor, temperature=0.0)
                figures.setdefault(set_name, {})[f"x{factor:g}"] = {
                    "psnr": round(s.psnr, 3), "ssim": round(s.ssim, 4),
                    "psnr_z0": round(s0.psnr, 3), "ssim_z0": round(s0.ssim, 4),
                    "lr_psnr": round(s.lr_psnr, 3), "lr_ssim": round(s.lr_ssim, 4),
                }  # fmt: skip
                log(f"irn_y {set_name} x{factor:g}: restored {s.psnr:.3f} dB / {s.ssim:.4f} (z = 0: {s0.psnr:.3f} / "
                    f"{s0.ssim:.4f}), LR {s.lr_psnr:.3f} dB")  # fmt: skip
    entry = {
        "file": "irn_y.safetensors",
        "sha256": digest,
        "architecture": "irn_arbitrary",
        "scale": "any factor in [1, 4] per axis (down) and its inverse (up)",
        "input": "Y, BT.601 studio swing, [0, 1] = codes / 255",
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "data": "T91 + BSD200 (../shared/data), sizes x1.0/0.8/0.6, flips and 90-degree turns",
            "losses": "IRN: guide L2 to MATLAB-bicubic LR x fy*fx, Charbonnier reconstruction, sum z^2; per-sample sums",
            "factors": f"{cfg.share_x2:g} x2, {cfg.share_x4:g} x4, {cfg.share_asymmetric:g} asymmetric, rest uniform on [1, 4]",
            "steps": info.get("step"),
            "z_temperature": cfg.final_temperature,
            "batch": cfg.batch,
            "lr_patch": cfg.lr_patch,
            "optimiser": f"Adam {cfg.learning_rate:g}, cosine to {cfg.final_learning_rate:g}, clip {cfg.grad_clip:g}",
        },
        "figures": {
            "protocol": "Y-PSNR/SSIM; restored: ceil(factor) px shaved, z ~ N(0, 1) seed 0 (psnr) or z = 0 (psnr_z0, "
            "what video restores from); LR vs MATLAB bicubic, no shave",
            **figures,
        },  # fmt: skip
        "exported": datetime.date.today().isoformat(),
    }
    update_manifest("irn_y", entry)
    return entry
