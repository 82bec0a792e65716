"""The stages of a plain CPU run built without torch: shipped ESPCN models in ONNX Runtime from
graphs already in the engine cache, the planes in numpy (``host.py``).

Importing torch costs about a second on this CPU, most of a live run's start; this way a run that
needs nothing torch does (a weights schedule, refinement, tiles, the recurrent model, a GPU, a
graph not yet exported) starts without it. Any of those, or any doubt, and :func:`host_stages`
answers None: ``stages.py`` builds the run as always, and records the graphs it exported so that
the next run can come this way. Both ways compute the same frames (``tests``: within one code)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys

import numpy as np

from ..engines.options import OrtOptions
from ..engines.ort_session import HostOrtEngine, cached_int8, graph_initializers, indexed_graph
from ..errors import WeightsError
from ..weights.shipped import manifest, shipped_path, shipped_sha
from .chunk_stages import ChunkStages
from .host import HostPlaneRescaler
from .plan import RunPlan, live_model_int8
from .process_plan import ProcessPlan


def host_stages(plan: RunPlan) -> tuple[ChunkStages, str] | None:
    """``plan``'s stages in numpy and ONNX Runtime, and the engine's name; None if it needs torch."""
    request = plan.engine
    if not plan.luma or plan.weights is not None or plan.refine or plan.tile:
        return None
    if request.engine not in ("auto", "onnxruntime") or request.precision not in ("auto", "fp32", "int8"):
        return None
    if request.device not in ("auto", "cpu") or (request.device == "auto" and _cuda_possible()):
        return None
    shipped = manifest()
    if any(stage.kind != "espcn" or stage.weights not in shipped for stage in plan.luma):
        return None
    if any(name != "bicubic" and name not in shipped for name in plan.fallbacks):
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    try:
        return _build(plan)
    except WeightsError:
        raise
    except Exception:  # noqa: BLE001 - a cache entry that will not load: the torch way exports it again
        return None


def _build(plan: RunPlan) -> tuple[ChunkStages, str] | None:
    request = plan.engine
    options = OrtOptions(device="cpu", precision="int8" if request.precision == "int8" else "fp32", threads=request.threads)
    int8 = live_model_int8(plan, options.kind, options.device)
    model_options = dataclasses.replace(options, precision="int8") if int8 else options
    engines = [_engine(f"espcn_x{stage.factor}", stage.weights, model_options) for stage in plan.luma]
    fallbacks = []
    for name in plan.fallbacks:
        bicubic = ProcessPlan(plan.src, plan.dst, "bicubic")
        fallbacks.append(HostPlaneRescaler(bicubic, [] if name == "bicubic" else [_engine(name, name, options)]))
    if None in engines or any(None in path.luma_stages for path in fallbacks):
        return None
    rescaler = HostPlaneRescaler(ProcessPlan(plan.src, plan.dst, plan.kernel), engines)
    name = f"{options.kind} ({options.device}{', model int8' if int8 else ''})"
    return ChunkStages(plan, engines, rescaler, {}, tuple(fallbacks)), name


def _engine(label: str, weights: str, options: OrtOptions) -> HostOrtEngine | None:
    """Shipped ``weights`` in ONNX Runtime on the graph the cache has for them, or None if it has
    none, or if the file is not the one the manifest names."""
    graph = indexed_graph(label, shipped_sha(weights))
    if graph is None:
        return None
    path = shipped_path(weights)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != shipped_sha(weights):
        return None  # changed since it shipped: the torch way checks and reports it
    from safetensors.numpy import load

    names = graph_initializers(graph)
    arrays = {k: v for k, v in load(data).items() if k in names}  # as the torch way passes them
    if not arrays or any(arrays[k].shape != names[k] for k in arrays):
        return None
    for key, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
            raise WeightsError(f"{path.name}: tensor {key} holds values that are not finite floating point weights")
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    # ESPCN is a chain of odd square convolutions: its receptive radius is the sum of their half-widths.
    radius = sum((a.shape[-1] - 1) // 2 for a in arrays.values() if a.ndim == 4)
    if options.precision != "int8":
        return HostOrtEngine(graph, arrays, options, label, radius=radius)
    try:
        return HostOrtEngine(graph, arrays, options, label, cached_int8(label, shipped_sha(weights), graph, arrays), radius)
    except Exception:  # noqa: BLE001 - a cached INT8 model that does not load (truncated): made again
        int8_model = cached_int8(label, shipped_sha(weights), graph, arrays, fresh=True)
        return HostOrtEngine(graph, arrays, options, label, int8_model, radius)


def _cuda_possible() -> bool:
    """Whether torch might find a CUDA GPU here: on Linux, not without the NVIDIA driver loaded;
    elsewhere, assume it might (the torch way then asks torch)."""
    return not sys.platform.startswith("linux") or os.path.exists("/proc/driver/nvidia")
