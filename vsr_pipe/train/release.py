"""Export a trained model: its weights and a manifest entry with measured figures, into a folder.

The folder is the run's ``export/`` unless the caller passes the package's weights folder
(``vsr-pipe train --release``). Everything is measured before anything is written, and each file is
written beside its target and renamed over it, so a failure leaves the folder as it was.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import torch

from ..quality.images import bicubic_upscaler, evaluate_folder, model_upscaler
from ..weights.store import MANIFEST, manifest_with, model_bytes, write_atomic
from .checkpoint import load_checkpoint, read_info
from .config import EspcnTrainConfig, IrnTrainConfig, from_saved

INPUT = "Y, BT.601 studio swing, [0, 1] = codes / 255"


def export_folder(out_dir: str | Path) -> Path:
    """Where ``train`` exports by default: beside the run's checkpoints, never into the package."""
    return Path(out_dir) / "export"


def export_espcn(checkpoint: str | Path, data_dir: str | Path | None, folder: str | Path, log=print) -> dict:
    """Write the checkpoint's model to ``folder/espcn_y_xS.safetensors`` and its Set5/Set14
    Y-PSNR/SSIM (and bicubic's) to ``folder/manifest.json``; returns the manifest entry."""
    info = read_info(checkpoint)
    cfg = from_saved(EspcnTrainConfig, info["config"])
    from .espcn import build_model

    model = build_model(cfg)
    load_checkpoint(checkpoint, model, None)
    name = cfg.weights_name
    figures = {}
    for set_name, folder_in in _benchmark_sets(data_dir):
        ours = evaluate_folder(folder_in, cfg.scale, model_upscaler(model))
        base = evaluate_folder(folder_in, cfg.scale, bicubic_upscaler)
        figures[set_name] = {"psnr": round(ours.psnr, 3), "ssim": round(ours.ssim, 4),
                             "bicubic_psnr": round(base.psnr, 3), "bicubic_ssim": round(base.ssim, 4)}  # fmt: skip
        log(f"{name} {set_name}: {ours.psnr:.3f} dB / {ours.ssim:.4f} (bicubic {base.psnr:.3f} / {base.ssim:.4f})")
    entry = {
        "file": f"{name}.safetensors",
        "architecture": "espcn",
        "scale": cfg.scale,
        "input": INPUT,
        "residual": cfg.residual,
        "num_feat": list(cfg.num_feat),
        "parameters": _parameters(model),
        "training": {
            "data": "T91 + BSD200 (../shared/data), sizes x1.0-0.6, flips and 90-degree turns",
            "lr_synthesis": "MATLAB bicubic (antialiased), rounded to 8 bits",
            "steps": info.get("step"),
            "batch": cfg.batch,
            "lr_patch": cfg.lr_patch,
            "optimiser": f"Adam {cfg.learning_rate:g}, cosine to {cfg.final_learning_rate:g}, MSE",
        },
        "figures": {"protocol": "Y-PSNR/SSIM, MATLAB-bicubic LR, scale px shaved", **figures},
    }
    return publish(model, name, entry, Path(folder), log)


def export_irn(checkpoint: str | Path, data_dir: str | Path | None, folder: str | Path, log=print) -> dict:
    """Write the rescaler to ``folder/irn_y.safetensors`` and its Set5/Set14 figures at x2 and x4
    (restored Y-PSNR/SSIM, LR against MATLAB bicubic) to ``folder/manifest.json``; returns the entry."""
    from ..quality.rescaling import evaluate_rescaling
    from .irn import build_model

    info = read_info(checkpoint)
    cfg = from_saved(IrnTrainConfig, info["config"])
    model = build_model(cfg)
    load_checkpoint(checkpoint, model, None)
    figures: dict = {}
    for set_name, folder_in in _benchmark_sets(data_dir):
        for factor in (2.0, 4.0):
            s = evaluate_rescaling(folder_in, model, factor)
            s0 = evaluate_rescaling(folder_in, model, factor, temperature=0.0)
            figures.setdefault(set_name, {})[f"x{factor:g}"] = {
                "psnr": round(s.psnr, 3), "ssim": round(s.ssim, 4),
                "psnr_z0": round(s0.psnr, 3), "ssim_z0": round(s0.ssim, 4),
                "lr_psnr": round(s.lr_psnr, 3), "lr_ssim": round(s.lr_ssim, 4),
            }  # fmt: skip
            log(f"irn_y {set_name} x{factor:g}: restored {s.psnr:.3f} dB / {s.ssim:.4f} (z = 0: {s0.psnr:.3f} / "
                f"{s0.ssim:.4f}), LR {s.lr_psnr:.3f} dB")  # fmt: skip
    entry = {
        "file": "irn_y.safetensors",
        "architecture": "irn_arbitrary",
        "scale": "any factor in [1, 4] per axis (down) and its inverse (up)",
        "input": INPUT,
        "parameters": _parameters(model),
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
    }
    return publish(model, "irn_y", entry, Path(folder), log)


def publish(model: torch.nn.Module, name: str, entry: dict, folder: Path, log=print) -> dict:
    """Write ``folder/entry['file']`` and ``name``'s manifest entry (with the file's sha256 and today's
    date), both staged before either replaces its target; returns the entry as written."""
    data = model_bytes(model)
    digest, today = hashlib.sha256(data).hexdigest(), datetime.date.today().isoformat()
    entry = {"file": entry["file"], "sha256": digest, **entry, "exported": today}  # the manifest's key order
    target = folder / entry["file"]
    before = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
    write_atomic((target, data), (folder / MANIFEST, manifest_with(name, entry, folder)))
    if before is None:
        log(f"exported {name} to {target}")
    elif before != digest:  # a release is deliberate, but say what it replaced: git holds the old file
        log(f"exported {name} to {target}, replacing the file there (sha256 {before[:16]} -> {digest[:16]})")
    else:
        log(f"exported {name} to {target}: the same bytes as the file there")
    return entry


def _benchmark_sets(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The Set5/Set14 folders ``data_dir`` holds (none: an export without figures)."""
    if data_dir is None:
        return []
    return [(name, Path(data_dir) / name) for name in ("Set5", "Set14") if (Path(data_dir) / name).is_dir()]


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
