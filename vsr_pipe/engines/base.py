"""The engine interface: run one model direction on a whole chunk of frames at once.

An engine knows tensors, devices and precisions; it knows nothing of files, codecs or PyAV.
Engine settings live in ``options.py`` and ``match_state`` in ``state.py`` (which every engine
imports, so no engine imports this module); they are re-exported here for older imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch

from ..errors import EngineUnavailable
from .options import CompileOptions, EngineOptions, OrtOptions, TorchOptions, TrtOptions
from .state import match_state

__all__ = [
    "CompileOptions", "Engine", "EngineOptions", "OrtOptions", "TorchOptions", "TrtOptions", "make_engine",
    "match_state", "resolve_engine",
]  # fmt: skip


@runtime_checkable
class Engine(Protocol):
    """A compiled or eager model for one direction (e.g. ESPCN x2, or IRN's downscale).

    ``__call__`` takes (N, C, h, w) float32 in [0, 1] on any device and returns the model's output
    as float32 on the engine's device. ``load_weights`` swaps weights between chunks (per-chunk
    overfitted models) without rebuilding or re-exporting; ``prepare`` does ahead of time whatever a
    later ``load_weights`` of the same weights would have to do, without making them current.
    Both take a state dict of the model the engine was built from (for a model that wraps a net in
    ``.model``, as the rescaler's ``BoundDown``/``BoundUp`` do, the net's own state dict works too);
    buffers may be left out, parameters may not (:func:`match_state`).
    """

    name: str
    device: torch.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None: ...

    def prepare(self, state: Mapping[str, torch.Tensor]) -> None: ...


# Option type -> (module, class): backends are imported only when chosen.
_ENGINES: dict[type, tuple[str, str]] = {
    TorchOptions: ("torch_engine", "TorchEngine"),
    CompileOptions: ("compile_engine", "CompiledEngine"),
    OrtOptions: ("onnxruntime_engine", "OrtEngine"),
    TrtOptions: ("tensorrt_engine", "TrtEngine"),
}


def make_engine(
    options: EngineOptions, model: torch.nn.Module, name: str, calibration: Sequence[torch.Tensor] = ()
) -> Engine:
    """Build the engine that ``options`` describes around ``model``.

    ``name`` names the model direction in cache entries (e.g. "espcn_x2"). ``calibration``: INT8
    TensorRT's calibration batches, (N, C, h, w) float32 in [0, 1] each; other engines ignore it.
    """
    import importlib

    try:
        module_name, class_name = _ENGINES[type(options)]
    except KeyError:
        raise TypeError(f"unknown engine options {type(options).__name__}") from None
    cls = getattr(importlib.import_module(f".{module_name}", __package__), class_name)
    if isinstance(options, TrtOptions):
        return cls(model, options, name, calibration)
    return cls(model, options, name)


def resolve_engine(engine: str, device: str, precision: str, threads: int) -> EngineOptions:
    """Options for ``--engine``/``--device``; "auto" picks the fastest available: torch on a
    CUDA GPU, else ONNX Runtime on the CPU, else torch on the CPU ("compile" is never picked)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":  # fp16 halves a GPU's memory traffic at ~50 dB from fp32; CPUs gain nothing
        precision = "fp16" if device.startswith("cuda") else "fp32"
    if engine == "auto":
        if device.startswith("cuda"):
            engine = "torch"
        else:
            from .onnxruntime_engine import available

            engine = "onnxruntime" if available() and precision in ("fp32", "int8") else "torch"
    if engine == "torch":
        return TorchOptions(device=device, precision=precision, threads=threads)
    if engine == "compile":
        return CompileOptions(device=device, precision=precision, threads=threads)
    if engine == "onnxruntime":
        return OrtOptions(device=device, precision=precision, threads=threads)
    if engine == "tensorrt":
        # Not picked by "auto" until it has been verified on a GPU machine with TensorRT.
        return TrtOptions(device=device if device.startswith("cuda") else "cuda", precision=precision)
    raise EngineUnavailable(f"engine '{engine}' is unknown: choose auto, torch, compile, onnxruntime or tensorrt")
