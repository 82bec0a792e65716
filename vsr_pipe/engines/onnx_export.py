"""Export a model direction to ONNX with dynamic batch, height and width."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Container, Mapping
from pathlib import Path

import numpy as np
import torch

from .ort_session import OPSET, graph_initializers, graph_with_weights  # noqa: F401 (torch-free; the names callers know)


def export_onnx(model: torch.nn.Module, path: str | Path, channels: int = 1, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX (input ``lr`` (N, C, H, W) float32 -> output ``hr``) with its weights; atomic.

    A model bound to one frame size (it has ``example_shape``) keeps H and W fixed; batch stays dynamic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_trace(model.eval().float().cpu(), channels, opset, fold=True))
    os.replace(tmp, path)
    return path


def export_graph(model: torch.nn.Module, path: str | Path, channels: int = 1, opset: int = OPSET) -> Path:
    """Write ``model``'s graph as ONNX for engines that take their weights at load time; atomic.

    Inputs and outputs as :func:`export_onnx`. Every initializer that comes from the model's state
    is named by its state-dict key and stored outside the graph, in ``{path}.data`` (ONNX Runtime
    replaces only such initializers, ``SessionOptions.add_external_initializers``). The values
    written are random placeholders: the file depends on the architecture alone, and no two
    parameters are equal, which the exporter would otherwise merge into one initializer (as it
    does two zero biases). No constant folding, which would rename parameters it folds.
    """
    import copy
    import shutil
    import tempfile

    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    placeholder = copy.deepcopy(model).eval().float().cpu()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in placeholder.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    proto = onnx.load_from_string(_trace(placeholder, channels, opset, fold=False))
    data_name = path.name + ".data"
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location=data_name, size_threshold=0)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        onnx.save_model(proto, str(tmp_dir / path.name))
        os.replace(tmp_dir / data_name, path.with_name(data_name))  # the data first: a graph never lacks it
        os.replace(tmp_dir / path.name, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def cached_graph(model_name: str, model: torch.nn.Module, channels: int = 1) -> tuple[Path, bool]:
    """The engine cache's graph of ``model``'s architecture (:func:`export_graph`), exported if
    absent, and whether it was there already.

    One file (and its ``.data``) per architecture and opset, whatever the weights: engines put the
    weights in at load time. ``model_name`` names the direction, e.g. "espcn_x2".
    """
    from .cache import cache_dir, graph_entry_name

    path = cache_dir() / (graph_entry_name(model_name, model, f"opset{OPSET}", "fp32") + ".onnx")
    if path.exists() and path.with_name(path.name + ".data").exists():
        return path, True
    return export_graph(model, path, channels=channels), False


def weight_arrays(state: Mapping[str, torch.Tensor], names: Container[str] | None = None) -> dict[str, np.ndarray]:
    """``state``'s tensors (those in ``names``, if given) as CPU arrays for initializers of the same
    names: float32 where floating, shapes kept (0-d too)."""
    arrays = {}
    for key, tensor in state.items():
        if names is None or key in names:
            tensor = tensor.detach().cpu()
            # .contiguous().numpy() keeps 0-d tensors 0-d (np.ascontiguousarray would make them 1-d).
            arrays[key] = (tensor.float() if tensor.is_floating_point() else tensor).contiguous().numpy()
    return arrays


def _trace(model: torch.nn.Module, channels: int, opset: int, fold: bool) -> bytes:
    bound = getattr(model, "example_shape", None)
    example = torch.rand(*bound) if bound else torch.rand(1, channels, 32, 48)
    axes = {0: "batch"} if bound else {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch"} if bound else {0: "batch", 2: "out_height", 3: "out_width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=["lr"],
            output_names=["hr"],
            dynamic_axes={"lr": axes, "hr": out_axes},
            opset_version=opset,
            do_constant_folding=fold,
            dynamo=False,
        )
    return buffer.getvalue()


def export_rescaler(model: torch.nn.Module, levels: int, prefix: str | Path, opset: int = OPSET) -> tuple[Path, Path]:
    """Write the invertible rescaler's two directions for ``levels`` Haar levels (1: factors up to 2,
    2: up to 4) as ``{prefix}-down.onnx`` and ``{prefix}-up.onnx``.

    Every size-dependent tensor is an input, so one pair serves any frame size and any factor in its
    band: ``hr``, ``up_rows``, ``up_cols``, ``cond0``[, ``cond1``] -> ``lr``; and ``lr``, ``z``,
    ``inv_rows``, ``inv_cols``, ``cond0``[, ``cond1``] -> ``hr`` (see ``RescaleGeometry.tensors``).
    """
    from ..models.rescaler import DownGraph, RescaleGeometry, UpGraph

    model = model.eval().float().cpu()
    geometry = RescaleGeometry((36, 52), (18, 26)) if levels == 1 else RescaleGeometry((36, 52), (12, 17))
    t = geometry.tensors()
    n_lat = model.latent_channels(levels)
    conds = [f"cond{i}" for i in range(levels)]
    cond_axes = {f"cond{i}": {2: f"cond{i}_h", 3: f"cond{i}_w"} for i in range(levels)}
    hr = torch.rand(1, 1, *geometry.hr)
    lr = torch.rand(1, 1, *geometry.lr)
    z = torch.randn(1, n_lat, *geometry.lr)
    prefix = Path(prefix)
    down_path = prefix.with_name(prefix.name + "-down.onnx")
    up_path = prefix.with_name(prefix.name + "-up.onnx")
    _export(
        DownGraph(model, levels), (hr, t.up_rows, t.up_cols, *t.conds), down_path,
        ["hr", "up_rows", "up_cols", *conds], ["lr"],
        {"hr": {0: "batch", 2: "height", 3: "width"}, "up_rows": {0: "inner_h", 1: "height"},
         "up_cols": {0: "inner_w", 1: "width"}, "lr": {0: "batch", 2: "lr_h", 3: "lr_w"}, **cond_axes},
        opset,
    )  # fmt: skip
    _export(
        UpGraph(model, levels), (lr, z, t.inv_rows, t.inv_cols, *t.conds), up_path,
        ["lr", "z", "inv_rows", "inv_cols", *conds], ["hr"],
        {"lr": {0: "batch", 2: "lr_h", 3: "lr_w"}, "z": {0: "batch", 2: "lr_h", 3: "lr_w"},
         "inv_rows": {0: "height", 1: "inner_h"}, "inv_cols": {0: "width", 1: "inner_w"},
         "hr": {0: "batch", 2: "height", 3: "width"}, **cond_axes},
        opset,
    )  # fmt: skip
    return down_path, up_path


def _export(module, args, path: Path, inputs, outputs, axes, opset: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    os.replace(tmp, path)


RECURRENT_INPUTS = ("frame", "prev_frame", "prev_out", "state")
RECURRENT_OUTPUTS = ("out", "next_state")


def export_recurrent(model: torch.nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write a recurrent model (``models/temporal.py``: ``forward(frame, prev_frame, prev_out,
    state) -> (out, state)``) as ONNX, its state an explicit input and output, so the caller carries
    it from frame to frame (and resets it at a cut); batch, height and width dynamic; atomic."""
    model = model.eval().float().cpu()
    r = model.scale
    frame = torch.rand(1, 1, 24, 32)
    example = (frame, frame, torch.rand(1, 1, 24 * r, 32 * r), torch.rand(1, model.state_channels, 24, 32))
    lr_axes, hr_axes = {0: "batch", 2: "height", 3: "width"}, {0: "batch", 2: "out_height", 3: "out_width"}
    axes = dict(zip(RECURRENT_INPUTS + RECURRENT_OUTPUTS, (lr_axes, lr_axes, hr_axes, lr_axes, hr_axes, lr_axes)))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, example, buffer, input_names=list(RECURRENT_INPUTS), output_names=list(RECURRENT_OUTPUTS),
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path
