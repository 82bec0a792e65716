"""Export a model direction to ONNX with dynamic batch, height and width."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

OPSET = 17


def export_onnx(model: torch.nn.Module, path: str | Path, channels: int = 1, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX (input ``lr`` (N, C, H, W) float32 -> output ``hr``); atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    example = torch.rand(1, channels, 32, 48)
    model = model.eval().float().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["lr"],
            output_names=["hr"],
            dynamic_axes={"lr": {0: "batch", 2: "height", 3: "width"}, "hr": {0: "batch", 2: "out_height", 3: "out_width"}},
            opset_version=opset,
            dynamo=False,
        )
    os.replace(tmp, path)
    return path
