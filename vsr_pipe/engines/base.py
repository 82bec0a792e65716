"""The engine interface: run one model direction on a whole chunk of frames at once.

An engine knows tensors, devices and precisions; it knows nothing of files, codecs or PyAV.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, Union, runtime_checkable

import torch


@runtime_checkable
class Engine(Protocol):
    """A compiled or eager model for one direction (e.g. ESPCN x2, or IRN's downscale).

    ``__call__`` takes (N, C, h, w) float32 in [0, 1] on any device and returns the model's output
    as float32 on the engine's device. ``load_weights`` swaps weights between chunks (per-chunk
    overfitted models) without rebuilding.
    """

    name: str
    device: torch.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None: ...


@dataclass(frozen=True)
class TorchOptions:
    """Eager PyTorch. On CUDA, fp16 halves memory traffic; channels-last suits tensor cores.

    Args:
        device: "cpu", "cuda", "cuda:1", ...
        precision: "fp32" or "fp16" (fp16 on CUDA only).
        threads: CPU intra-op threads; 0 keeps torch's default.
        channels_last: NHWC activations (tensor cores prefer them); CUDA only.
        cuda_graphs: on CUDA, capture one graph per input shape and replay it: a whole chunk is one
            launch, so the GPU never waits on Python between layers.
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    channels_last: bool = True
    cuda_graphs: bool = True
    kind: ClassVar[str] = "torch"


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime on the exported graph: the fastest engine on a CPU (graph fusion, no Python
    per layer). ``device`` "cuda" needs the onnxruntime-gpu package.

    Args:
        device: "cpu" or "cuda".
        precision: "fp32", or "int8" (dynamic quantisation of the exported graph: INT8 weights,
            activations quantised per call; no calibration data needed).
        threads: intra-op threads; 0 lets ONNX Runtime choose (all cores).
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    kind: ClassVar[str] = "onnxruntime"


@dataclass(frozen=True)
class TrtOptions:
    """TensorRT built from the ONNX export: the fastest engine on an NVIDIA GPU. The plan is built
    once per weights, shape profile, precision, GPU and TensorRT version and cached.

    Args:
        device: "cuda" or "cuda:N".
        precision: "fp32", "fp16" or "int8" (INT8 calibrates on frames of the input video).
        profile: (min, opt, max) input shapes (N, C, H, W) of the optimisation profile.
        workspace_mib: builder workspace limit.
    """

    device: str = "cuda"
    precision: str = "fp16"
    profile: tuple[tuple[int, int, int, int], ...] = ((1, 1, 16, 16), (4, 1, 540, 960), (8, 1, 1088, 1920))
    workspace_mib: int = 2048
    kind: ClassVar[str] = "tensorrt"


EngineOptions = Union[TorchOptions, OrtOptions, TrtOptions]


def make_engine(options: EngineOptions, model: torch.nn.Module, name: str) -> Engine:
    """Build the engine that ``options`` describes around ``model``."""
    if isinstance(options, TorchOptions):
        from .torch_engine import TorchEngine

        return TorchEngine(model, options, name)
    if isinstance(options, OrtOptions):
        from .onnxruntime_engine import OrtEngine

        return OrtEngine(model, options, name)
    if isinstance(options, TrtOptions):
        from .tensorrt_engine import TrtEngine

        return TrtEngine(model, options, name)
    raise TypeError(f"unknown engine options {type(options).__name__}")


def resolve_engine(engine: str, device: str, precision: str, threads: int) -> EngineOptions:
    """Options for ``--engine``/``--device``; "auto" picks the fastest available: torch on a
    CUDA GPU, else ONNX Runtime on the CPU, else torch on the CPU."""
    from ..errors import EngineUnavailable

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
    if engine == "onnxruntime":
        return OrtOptions(device=device, precision=precision, threads=threads)
    if engine == "tensorrt":
        # Not picked by "auto" until it has been verified on a GPU machine with TensorRT.
        return TrtOptions(device=device if device.startswith("cuda") else "cuda", precision=precision)
    raise EngineUnavailable(f"engine '{engine}' is unknown: choose auto, torch, onnxruntime or tensorrt")
