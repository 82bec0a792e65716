"""The model stages of a run: engines built from the plan, run on whole chunks, with the weights
schedule applied between chunks through ``Engine.load_weights`` (no engine is rebuilt).

Schedule entries whose weights are in hand (a file's path, or a file's bytes in memory) are loaded
and prepared before the run; entries still on their way (futures) are loaded and prepared by the
thread that delivers them, and waited for if their first frame reaches the model before they
arrive. Nothing here writes a weights file: weights built for a run stay in memory."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..config import Weights
from ..engines.base import Engine, make_engine, resolve_engine
from ..engines.options import EngineOptions, OrtOptions, TorchOptions
from ..errors import WeightsError
from ..weights.store import architecture_header, load_model, shipped_path
from .chunk_stages import SHIPPED, ChunkStages
from .plan import LumaStage, RunPlan, live_model_int8
from .process import PlaneRescaler, ProcessPlan

# Video restores from z = 0, the latent's mode: a fresh z ~ N(0, 1) per frame would make each frame's
# detail differ from the last (temporal flicker), and the shipped rescaler restores best from z = 0.
RESTORE_TEMPERATURE = 0.0


def build_stages(plan: RunPlan, calibration: np.ndarray | None = None) -> tuple[ChunkStages, str]:
    """The stages ``plan`` describes, and the engine's name for the summary. ``calibration``: a Y
    plane of the input, (h, w) integer codes, which TensorRT INT8 calibrates on."""
    process = ProcessPlan(plan.src, plan.dst, plan.kernel)
    if not plan.luma:
        return ChunkStages(plan, [], PlaneRescaler(process), {}), "resample"
    request = plan.engine
    options = resolve_engine(request.engine, request.device, request.precision, request.threads)
    if plan.refine:  # the refinement loop needs autograd: eager fp32 torch
        options = TorchOptions(options.device, "fp32", request.threads, cuda_graphs=False)
    if plan.luma[0].kind == "temporal":
        return _recurrent_stages(plan, process)
    nets = [load_model(_stage_weights(stage.weights)) for stage in plan.luma]
    modules = [_stage_module(stage, net, plan.refine) for stage, net in zip(plan.luma, nets)]
    calib = _calibration(calibration, plan, options)
    int8 = live_model_int8(plan, options.kind, options.device)
    model_options = dataclasses.replace(options, precision="int8") if int8 else options
    engines = [make_engine(model_options, module, _engine_label(stage), calib) for stage, module in zip(plan.luma, modules)]
    if not plan.refine:
        for stage, engine in zip(plan.luma, engines):
            _note_graph(engine, _engine_label(stage), stage.weights)
    states = _scheduled_states(plan, nets[0], engines[0]) if plan.weights else {}
    load_entry = functools.partial(_entry_state, plan, architecture_header(nets[0])) if plan.weights else None
    halo = max(getattr(net, "receptive_radius", 8) for net in nets)
    scales = [stage.factor for stage in plan.luma]
    device = engines[0].device
    rescaler = PlaneRescaler(process, engines, device, tile=plan.tile, stage_scales=scales, halo=halo)
    fallbacks = tuple(_fallback(name, plan, options, device) for name in plan.fallbacks)
    stages = ChunkStages(plan, engines, rescaler, states, fallbacks, load_entry)
    return stages, f"{options.kind} ({options.device}{', model int8' if int8 else ''})"


def _recurrent_stages(plan: RunPlan, process: ProcessPlan) -> tuple[ChunkStages, str]:
    """The recurrent model as the one Y stage: its state carried from chunk to chunk on the
    processing thread, which runs the chunks in order (``engines/recurrent.py``): fp32, each step
    in ONNX Runtime on a CPU (what ``auto`` picks there), else in torch."""
    from ..engines.recurrent import RecurrentRunner

    request = plan.engine
    options = resolve_engine(request.engine, request.device, "fp32", request.threads)
    if request.threads:
        torch.set_num_threads(request.threads)
    stage = plan.luma[0]
    on_cpu_runtime = options.kind == "onnxruntime" and options.device == "cpu"
    model = load_model(shipped_path(stage.weights)).to("cpu" if on_cpu_runtime else options.device)
    runner = RecurrentRunner(model, f"temporal_x{stage.factor}", request.threads if on_cpu_runtime else None)
    rescaler = PlaneRescaler(process, [runner], runner.device, stage_scales=[stage.factor])
    fallback_options = resolve_engine("auto", request.device, request.precision, request.threads)
    fallbacks = tuple(_fallback(name, plan, fallback_options, runner.device) for name in plan.fallbacks)
    return ChunkStages(plan, [runner], rescaler, {}, fallbacks), f"{runner.name.split(':')[0]} ({runner.device}), recurrent"


def _fallback(name: str, plan: RunPlan, options: EngineOptions, device: torch.device) -> PlaneRescaler:
    """A cheaper path: the plain bicubic resampler, or a light model's engine on Y."""
    if name == "bicubic":
        return PlaneRescaler(ProcessPlan(plan.src, plan.dst, "bicubic"), device=device)
    net = load_model(shipped_path(name))
    engine = make_engine(options, net, name)
    _note_graph(engine, name, name)
    process = ProcessPlan(plan.src, plan.dst, "bicubic")
    return PlaneRescaler(process, [engine], device, stage_scales=[net.scale], halo=net.receptive_radius)


def _note_graph(engine: Engine, label: str, weights: str | bytes) -> None:
    """Index the cached graph a CPU ONNX Runtime engine of shipped weights runs on, so that
    the next run can build this stage without torch (``host_stages.py``)."""
    from ..engines.ort_session import record_graph
    from ..weights.shipped import shipped_sha

    options = getattr(engine, "options", None)
    if isinstance(weights, str) and shipped_sha(weights) and isinstance(options, OrtOptions):
        if options.device == "cpu" and hasattr(engine, "graph_path"):  # fp32 or int8: one graph
            record_graph(label, shipped_sha(weights), engine.graph_path)


def _stage_weights(weights: str | bytes) -> Weights | Path:
    """A stage's weights: bytes in memory or a file path (ends in .safetensors) as they are, else
    the name of shipped weights."""
    if isinstance(weights, bytes) or weights.endswith(".safetensors"):
        return weights
    return shipped_path(weights)


def _stage_module(stage: LumaStage, net: torch.nn.Module, refine: int = 0) -> torch.nn.Module:
    """What the engine runs for ``stage``: the net itself, or the rescaler bound to the frame sizes
    (a generic model with a correction network on top: its base bound, the correction as it is)."""
    from ..models.correction import Corrected

    if isinstance(net, Corrected):
        return Corrected(_stage_module(stage, net.base, refine), net.correction)
    if stage.kind == "espcn":
        return net
    from ..models.rescaler import BoundDown, BoundUp, RescaleGeometry

    geometry = RescaleGeometry(stage.hr, stage.lr)
    if stage.kind == "irn_up":
        return BoundUp(net, geometry, temperature=RESTORE_TEMPERATURE)
    if not refine:
        return BoundDown(net, geometry)
    from ..models.matlab_resize import imresize_matrix
    from ..models.refine import RefinedDown

    rows = torch.from_numpy(imresize_matrix(geometry.hr[0], geometry.lr[0]))
    cols = torch.from_numpy(imresize_matrix(geometry.hr[1], geometry.lr[1]))
    return RefinedDown(net, geometry, rows, cols, iters=refine)


def _engine_label(stage: LumaStage) -> str:
    if stage.kind == "espcn":
        return f"espcn_x{stage.factor}"
    return f"irn_{stage.kind[4:]}_{stage.hr[1]}x{stage.hr[0]}_{stage.lr[1]}x{stage.lr[0]}"


def _scheduled_states(plan: RunPlan, shipped: torch.nn.Module, engine: Engine) -> dict[int, Mapping]:
    """The stage's state dict for each schedule entry in hand (and the shipped one), checked
    against the stage's architecture and prepared in the engine ahead of the run where it can.
    Entries still on their way are loaded when the run reaches them (``ChunkStages.await_weights``)."""
    stage = plan.luma[0]
    expected = architecture_header(shipped)
    states = {SHIPPED: _state_of(_stage_module(stage, shipped, plan.refine))}
    for i, swap in enumerate(plan.weights.swaps):
        if not swap.pending:
            states[i] = _entry_state(plan, expected, swap.weights)
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        for state in states.values():
            prepare(state)
    return states


def _entry_state(plan: RunPlan, expected: dict, weights: Weights) -> dict[str, torch.Tensor]:
    """The model stage's state dict with ``weights`` (a file's path or its bytes), whose
    architecture must be ``expected`` (the stage's own)."""
    net = load_model(weights)
    if architecture_header(net) != expected:
        what = f"weights in memory ({len(weights)} bytes)" if isinstance(weights, bytes) else weights
        raise WeightsError(
            f"{what} holds a {net.__class__.__name__} {architecture_header(net)}; this run's model stage is {expected}"
        )
    return _state_of(_stage_module(plan.luma[0], net, plan.refine))


def _state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _calibration(plane: np.ndarray | None, plan: RunPlan, options: EngineOptions) -> list[torch.Tensor]:
    """TensorRT INT8 calibrates on frames of this video; every other engine needs none."""
    if plane is None or options.kind != "tensorrt" or options.precision != "int8":
        return []
    y = torch.from_numpy(plane.view(np.int16) if plane.dtype == np.uint16 else plane).float() / plan.src.unit
    return [y[None, None]]
