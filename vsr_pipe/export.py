"""The shipped models as ONNX graphs (``vsr-pipe export``), by default into the engine cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Scale
from .engines.cache import cache_dir, entry_name
from .engines.onnx_export import OPSET, export_onnx, export_rescaler
from .errors import InvalidOption
from .weights.store import load_model, shipped_path


@dataclass(frozen=True)
class EspcnExport:
    path: Path  # the ONNX file written
    model: torch.nn.Module
    engine_name: str  # what the engines call this model, e.g. "espcn_x2"


def export_espcn(scale: Scale, output: str | Path | None = None) -> EspcnExport:
    """The shipped ESPCN of ``scale`` (2, 3 or 4) as ONNX with dynamic batch, height and width,
    to ``output`` or to the engine cache under the name the ONNX Runtime engine looks for."""
    if not scale.is_uniform or scale.x not in (2, 3, 4):
        raise InvalidOption(f"scale {scale}: espcn ships x2, x3 and x4")
    factor = int(scale.x)
    model = load_model(shipped_path(f"espcn_y_x{factor}"))
    name = f"espcn_x{factor}"
    target = Path(output) if output else cache_dir() / (entry_name(name, model, f"opset{OPSET}", "fp32") + ".onnx")
    return EspcnExport(export_onnx(model, target, channels=model.num_ch), model, name)


def export_irn(scale: Scale, output: str | Path | None = None) -> tuple[Path, Path]:
    """The shipped rescaler's down and up graphs for the band ``scale`` falls in, (1, 2] or (2, 4]
    (a downscale factor below 1 counts as its inverse), as ``prefix-down.onnx`` and ``prefix-up.onnx``."""
    net = load_model(shipped_path("irn_y"))
    factor = max(scale.x, scale.y)
    factor = 1 / factor if factor < 1 else factor
    Scale(factor, factor).check_for("irn")
    levels = 1 if factor <= 2 else 2  # one Haar level halves: up to x2 one does, up to x4 two
    prefix = Path(output) if output else cache_dir() / entry_name(f"irn_y_{levels}lv", net, f"opset{OPSET}", "fp32")
    return export_rescaler(net, levels, prefix)


def tensorrt_plan(exported: EspcnExport) -> tuple[Path, bool] | None:
    """Where TensorRT is installed, its serialized engine built from that graph into the cache:
    (plan path, whether an existing one was reused); else None."""
    from .engines.tensorrt_engine import available

    if not available():
        return None
    from .engines.base import TrtOptions, make_engine

    engine = make_engine(TrtOptions(), exported.model, exported.engine_name)
    return engine.plan_path, engine.reused
