"""The model stages of a run: engines built from the plan, run on whole chunks, with the weights
schedule applied between chunks through ``Engine.load_weights`` (no engine is rebuilt).

Schedule entries whose weights are in hand (a file's path, or a file's bytes in memory) are loaded
and prepared before the run; entries still on their way (futures) are loaded and prepared by the
thread that delivers them, and waited for if their first frame reaches the model before they
arrive. Nothing here writes a weights file: weights built for a run stay in memory."""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from ..config import Weights
from ..engines.base import Engine, make_engine, resolve_engine
from ..engines.options import EngineOptions, TorchOptions
from ..errors import WeightsError
from ..weights.store import architecture_header, load_model, shipped_path
from .plan import LumaStage, RunPlan
from .process import PlaneRescaler, ProcessPlan
from .ring import Chunk

# Video restores from z = 0, the latent's mode: a fresh z ~ N(0, 1) per frame would make each frame's
# detail differ from the last (temporal flicker), and the shipped rescaler restores best from z = 0.
RESTORE_TEMPERATURE = 0.0
SHIPPED = -1  # the schedule index of the stage's own (shipped) weights


class ChunkStages:
    """Turns input chunks into output chunks: Y through the engines, chroma resampled, and the
    weights each chunk asks for (``chunk.weights``) loaded before it runs.

    ``paths`` are the ways a chunk can go, best first: the plan's model, then its fallbacks (a live
    run sends a chunk that would miss its deadline down a cheaper one).
    """

    def __init__(
        self,
        plan: RunPlan,
        engines: list[Engine],
        rescaler: PlaneRescaler,
        states: dict[int, Mapping],
        fallbacks: tuple[PlaneRescaler, ...] = (),
        load_entry: Callable[[Weights], Mapping] | None = None,
    ):
        self.plan = plan
        self.engines = engines
        self.rescaler = rescaler
        self.paths = (rescaler, *fallbacks)
        self.path_names = (plan.chain, *(_path_name(name) for name in plan.fallbacks))
        self._states = states  # schedule index -> state dict of the single model stage
        self._load_entry = load_entry  # a later entry's weights -> its checked state dict
        self._announced = SHIPPED  # the last entry the schedule's on_swap was told of
        self._current = SHIPPED
        self.swaps = 0
        self.swap_seconds = 0.0  # spent in load_weights, all swaps together
        self.stalls = 0  # swaps whose weights had not arrived when their first frame reached the model
        self.stall_seconds = 0.0  # spent waiting for them
        self._ready_lock = threading.Lock()
        self._passed = SHIPPED  # the last streamed entry the run has moved past
        for entry, swap in enumerate(plan.weights.swaps if plan.weights is not None else ()):
            if swap.pending:  # streamed: prepared by the thread that delivers it
                swap.weights.add_done_callback(functools.partial(self._prepare_arrived, entry))

    @property
    def device(self) -> torch.device:
        return self.rescaler.device

    def weights_for(self, chunk_index: int, pts: int | None) -> int:
        """The schedule index a frame of chunk ``chunk_index`` at ``pts`` runs with."""
        schedule = self.plan.weights
        return SHIPPED if schedule is None else schedule.entry_at(chunk_index, pts)

    def await_weights(self, entry: int, cancelled: Callable[[], bool]) -> bool:
        """Make schedule entry ``entry``'s weights ready to swap in, waiting for weights still on
        their way (a stall, counted) until they come or ``cancelled()``; False if cancelled. Raises
        what fetching or checking them raised."""
        schedule = self.plan.weights
        if schedule is None or entry == SHIPPED:
            return True
        if entry > self._announced:
            self._announced = entry
            if schedule.on_swap is not None:
                schedule.on_swap(entry)
        with self._ready_lock:
            if entry in self._states:
                return True
        pending = schedule.swaps[entry].weights
        if not pending.done():
            self.stalls += 1
            started = time.perf_counter()
            while not pending.done():
                if cancelled():
                    return False
                concurrent.futures.wait([pending], timeout=0.1)
            self.stall_seconds += time.perf_counter() - started
        state = self._load_entry(pending.result())
        with self._ready_lock:
            self._states.setdefault(entry, state)
        return True

    def _prepare_arrived(self, entry: int, arrived: concurrent.futures.Future) -> None:
        """Weights that came on their way: checked and prepared in the engine (ONNX Runtime builds
        their session, seconds for a large model) by the thread that delivered them, so that the
        swap at their first frame is a lookup. Any failure is left for ``await_weights`` to raise
        on the processing thread, where it ends the run properly."""
        try:
            if arrived.cancelled() or arrived.exception() is not None:
                return
            state = self._load_entry(arrived.result())
            prepare = getattr(self.engines[0], "prepare", None)
            if prepare is not None:
                prepare(state)
            with self._ready_lock:
                if entry > self._passed:  # the run may have gone past it already
                    self._states.setdefault(entry, state)
        except Exception:  # noqa: BLE001 - raised again, properly, where the entry is awaited
            return

    def process(self, chunk: Chunk, out: Chunk, path: int = 0) -> None:
        """Rescale ``chunk``'s frames into ``out``'s planes along ``path`` (0: the model)."""
        if not chunk.count:
            return
        if path == 0 and chunk.weights != self._current:
            self.await_weights(chunk.weights, lambda: False)
            started = time.perf_counter()
            self.engines[0].load_weights(self._states[chunk.weights])
            self.swap_seconds += time.perf_counter() - started
            with self._ready_lock:
                if self._is_pending(self._current):  # a streamed entry is not needed again: time moves on
                    self._states.pop(self._current, None)
                    self._passed = max(self._passed, self._current)
            self._current = chunk.weights
            self.swaps += 1
        self.paths[path](chunk.views(), out.planes)

    def _is_pending(self, entry: int) -> bool:
        schedule = self.plan.weights
        return schedule is not None and entry != SHIPPED and schedule.swaps[entry].pending


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
    engines = [make_engine(options, module, _engine_label(stage), calib) for stage, module in zip(plan.luma, modules)]
    states = _scheduled_states(plan, nets[0], engines[0]) if plan.weights else {}
    load_entry = functools.partial(_entry_state, plan, architecture_header(nets[0])) if plan.weights else None
    halo = max(getattr(net, "receptive_radius", 8) for net in nets)
    scales = [stage.factor for stage in plan.luma]
    device = engines[0].device
    rescaler = PlaneRescaler(process, engines, device, tile=plan.tile, stage_scales=scales, halo=halo)
    fallbacks = tuple(_fallback(name, plan, options, device) for name in plan.fallbacks)
    stages = ChunkStages(plan, engines, rescaler, states, fallbacks, load_entry)
    return stages, f"{options.kind} ({options.device})"


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
    process = ProcessPlan(plan.src, plan.dst, "bicubic")
    return PlaneRescaler(process, [engine], device, stage_scales=[net.scale], halo=net.receptive_radius)


def _path_name(fallback: str) -> str:
    """ "espcn_y_x2_f16x8" -> "espcn 16,8 x2"; "bicubic" stays."""
    if not fallback.startswith("espcn_y_x"):
        return fallback
    factor, _, width = fallback[len("espcn_y_x") :].partition("_f")
    return f"espcn {width.replace('x', ',')} x{factor}"


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
