"""ONNX Runtime engine: the exported graph on the CPU (or CUDA with onnxruntime-gpu)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..errors import EngineUnavailable
from .base import OrtOptions
from .cache import cache_dir, entry_name
from .onnx_export import OPSET, export_onnx


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _quantise_dynamic(src, dst) -> None:
    """INT8 weights, activations quantised per call (ONNX Runtime's dynamic quantisation); atomic."""
    import logging
    import os

    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    os.replace(tmp, dst)


class OrtEngine:
    """Runs a model's ONNX export, built once per weights and cached on disk."""

    def __init__(self, model: torch.nn.Module, options: OrtOptions, name: str):
        if not available():
            raise EngineUnavailable("engine onnxruntime asked for, but the onnxruntime package is not installed")
        if options.precision not in ("fp32", "int8"):
            raise EngineUnavailable(f"onnxruntime engine precision {options.precision}: choose fp32 or int8")
        self.options = options
        self.model_name = name
        self.name = f"onnxruntime:{name}"
        self.device = torch.device("cpu")
        self.channels = getattr(model, "num_ch", 1)
        self.model = model.eval().float().cpu()
        self._session = self._open(self.model)

    def _providers(self) -> list[str]:
        import onnxruntime as ort

        if self.options.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EngineUnavailable(
                    "onnxruntime has no CUDA provider here: install onnxruntime-gpu, or use --device cpu"
                )
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _open(self, model: torch.nn.Module):
        import onnxruntime as ort

        fp32_path = cache_dir() / (entry_name(self.model_name, model, f"opset{OPSET}", "fp32") + ".onnx")
        path = fp32_path
        if self.options.precision == "int8":
            path = fp32_path.with_name(fp32_path.name.replace("-fp32.onnx", f"-int8dyn-ort{_ort_version()}.onnx"))
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.threads:
            session_options.intra_op_num_threads = self.options.threads
        session_options.log_severity_level = 3
        # Idle intra-op threads otherwise spin for a while after each call, taking the cores the
        # decoder and encoder threads of the pipeline need in the meantime.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.reused = path.exists()
        for attempt in range(2):
            if not path.exists():
                if not fp32_path.exists() or attempt:
                    export_onnx(model, fp32_path, channels=self.channels)
                if path != fp32_path:
                    _quantise_dynamic(fp32_path, path)
            try:
                return ort.InferenceSession(str(path), session_options, providers=self._providers())
            except EngineUnavailable:
                raise
            except Exception:
                if attempt:  # a fresh export that still fails is a real error
                    raise
                path.unlink(missing_ok=True)  # corrupt or stale cache entry: rebuild once
                self.reused = False
        raise AssertionError("unreachable")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self._session.run(None, {"lr": arr})[0])

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        self.model.load_state_dict(dict(state))
        self._session = self._open(self.model)
