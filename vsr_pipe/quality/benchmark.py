"""One model measured on an image benchmark, the field's way for its kind: ``eval images``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Scale
from ..errors import InvalidOption


@dataclass(frozen=True)
class BenchmarkScore:
    """Mean Y-PSNR (dB) and SSIM over a folder; irn's also its LR against MATLAB bicubic.
    ``summary``: the figures as JSON-ready values (what ``eval images --json`` prints)."""

    name: str
    scale: str
    psnr: float
    ssim: float
    per_image: tuple[tuple[str, float, float], ...] = ()
    lr_psnr: float | None = None
    lr_ssim: float | None = None
    summary: dict = field(default_factory=dict)


def evaluate_benchmark(
    folder: str, scale: str, model: str, weights: str | None = None, cycles: int = 1, z_mode: str = "sample"
) -> BenchmarkScore:
    """espcn, bicubic: MATLAB-bicubic LR at an integer ``scale`` 2 to 4, that many border pixels
    shaved. irn: its own 8-bit LR restored ``cycles`` times with z ~ N(0, 1) ("sample") or z = 0
    ("zero"). ``weights``: a weights file instead of the shipped one."""
    from ..weights.store import load_model, shipped_path

    parsed = Scale.parse(scale)
    if model == "irn":
        from .rescaling import evaluate_rescaling

        parsed.check_for("irn")
        net = load_model(weights or shipped_path("irn_y"))
        r = evaluate_rescaling(
            folder, net, parsed.y, parsed.x, cycles=cycles, temperature=1.0 if z_mode == "sample" else 0.0
        )
        summary = {"set": r.name, "scale": str(parsed), "model": "irn", "cycles": cycles, "z": z_mode, "psnr": r.psnr,
                   "ssim": r.ssim, "lr_psnr": r.lr_psnr, "lr_ssim": r.lr_ssim}  # fmt: skip
        return BenchmarkScore(r.name, str(parsed), r.psnr, r.ssim, (), r.lr_psnr, r.lr_ssim, summary)
    from .images import bicubic_upscaler, evaluate_folder, model_upscaler

    if not parsed.is_uniform or not float(parsed.x).is_integer() or not 2 <= parsed.x <= 4:
        raise InvalidOption(f"scale {parsed}: {model} is measured at 2, 3 or 4")
    factor = int(parsed.x)
    if model == "bicubic":
        upscaler = bicubic_upscaler
    else:
        upscaler = model_upscaler(load_model(weights or shipped_path(f"espcn_y_x{factor}")))
    score = evaluate_folder(folder, factor, upscaler)
    summary = {"set": score.name, "scale": factor, "model": model, "psnr": score.psnr, "ssim": score.ssim}
    return BenchmarkScore(score.name, str(factor), score.psnr, score.ssim, score.per_image, summary=summary)
