"""Engine settings: one small frozen dataclass per engine kind, as vs-mlrt's backends are.

Everything that changes a compiled engine is a field here; ``make_engine`` (``base.py``) dispatches
on the dataclass's type. Importing this module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union


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
class CompileOptions:
    """``torch.compile`` (Inductor: Triton kernels on CUDA, C++ on a CPU), one static-shape graph per
    input shape; falls back to eager PyTorch, with one warning, where compilation fails.

    Args:
        device: "cpu", "cuda", "cuda:1", ...
        precision: "fp32" or "fp16" (fp16 on CUDA only).
        threads: CPU intra-op threads; 0 keeps torch's default.
        mode: ``torch.compile`` mode: "default", "reduce-overhead" (CUDA graphs), "max-autotune" or
            "max-autotune-no-cudagraphs".
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    mode: str = "default"
    kind: ClassVar[str] = "compile"


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime on the exported graph: the fastest engine on a CPU (graph fusion, no Python
    per layer). ``device`` "cuda" needs the onnxruntime-gpu package.

    Args:
        device: "cpu" or "cuda".
        precision: "fp32", or "int8": static INT8 for each convolution between two tanh (ESPCN's
            middle layer) with ranges fixed by tanh, no calibration data (``ort_session.quantise``);
            a graph without one, dynamic quantisation (INT8 weights, activations per call).
        threads: intra-op threads; 0 lets ONNX Runtime choose (all cores).
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    kind: ClassVar[str] = "onnxruntime"


@dataclass(frozen=True)
class TrtOptions:
    """TensorRT built from the ONNX export: the fastest engine on an NVIDIA GPU. The plan is built
    refittable, once per architecture, shape profile, precision, GPU and TensorRT version, and
    cached; weights are refitted into it (INT8 plans also per weights: calibration depends on them).

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


EngineOptions = Union[TorchOptions, CompileOptions, OrtOptions, TrtOptions]
