"""TensorRT engine (TensorRT 10+, Python API): built from the exported ONNX, I/O bound to CUDA tensors
that PyTorch owns, enqueued on PyTorch's current CUDA stream.

Kept small and close to the TensorRT documentation ("The Build Phase" / "Performing Inference" of
the Python API guide): OnnxParser -> builder config (workspace, FP16/INT8 flags, REFIT, one
optimisation profile for the chunk shapes) -> build_serialized_network -> Runtime.deserialize_cuda_engine
-> execution context with set_input_shape / set_tensor_address / execute_async_v3. INT8 uses
post-training calibration on frames of the video being processed (an IInt8EntropyCalibrator2).
Weights are swapped by refitting ("Refitting an Engine": Refitter, set_named_weights per ONNX
initializer name, refit_cuda_engine), so one plan serves every weight set of an architecture.
Not exercised on the development machines, which have no TensorRT; everything around it (the ONNX
it consumes, its shapes and precision) is checked with ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import EngineUnavailable
from .cache import cache_dir, graph_entry_name, weights_hash
from .onnx_export import OPSET, cached_graph, graph_with_weights, weight_arrays
from .options import TrtOptions
from .state import match_state


def available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def engine_file_name(
    model_name: str, model: torch.nn.Module, options: TrtOptions, trt_version: str, device: int
) -> str:
    """Everything that changes a plan is in its name: architecture, profile, precision, GPU,
    TensorRT; and for INT8 the weights too (the calibration's ranges come from them)."""
    props = torch.cuda.get_device_properties(device)
    gpu = "".join(ch if ch.isalnum() else "_" for ch in props.name)
    profile = "_".join("x".join(str(v) for v in shape) for shape in options.profile)
    calibrated = [f"w{weights_hash(model)}"] if options.precision == "int8" else []
    return graph_entry_name(
        model_name, model, f"opset{OPSET}", options.precision, *calibrated, f"p{profile}",
        f"{gpu}-sm{props.major}{props.minor}", f"trt{trt_version}",
    ) + ".plan"  # fmt: skip


class _FrameCalibrator:
    """Feeds calibration batches (float32 CUDA tensors shaped like the input) to the INT8 builder."""

    def __new__(cls, batches: Sequence[torch.Tensor], cache_path):
        import tensorrt as trt

        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.batches = [b.detach().float().cuda().contiguous() for b in batches]
                self.index = 0

            def get_batch_size(self) -> int:
                return int(self.batches[0].shape[0])

            def get_batch(self, names):
                if self.index >= len(self.batches):
                    return None
                batch = self.batches[self.index]
                self.index += 1
                return [int(batch.data_ptr())]

            def read_calibration_cache(self):
                return cache_path.read_bytes() if cache_path.exists() else None

            def write_calibration_cache(self, cache: bytes) -> None:
                cache_path.write_bytes(bytes(cache))

        return Calibrator()


class TrtEngine:
    """One model direction as a refittable TensorRT plan, cached on disk, rebuilt when stale or corrupt."""

    def __init__(
        self, model: torch.nn.Module, options: TrtOptions, name: str, calibration: Sequence[torch.Tensor] = ()
    ):
        if not available():
            raise EngineUnavailable("engine tensorrt asked for, but TensorRT or a CUDA GPU is not available")
        import tensorrt as trt

        if options.precision == "int8" and not calibration:
            raise EngineUnavailable("TensorRT INT8 needs calibration frames")
        self.trt, self.options, self.model_name = trt, options, name
        self.name = f"tensorrt:{name}"
        self.device = torch.device(options.device if options.device.startswith("cuda") else "cuda")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.channels = getattr(model, "num_ch", 1)
        self.model = model.eval().float().cpu()
        self.calibration = list(calibration)
        self._state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        # The architecture's graph, shared with the ONNX Runtime engine; its weights are placeholders.
        self.graph_path, _ = cached_graph(name, self.model, self.channels)
        self._load()

    def _load(self) -> None:
        trt = self.trt
        plan_path = cache_dir() / engine_file_name(
            self.model_name, self.model, self.options, trt.__version__, self.device.index or 0
        )
        self.plan_path = plan_path
        self.reused = plan_path.exists()
        engine = None
        if plan_path.exists():
            engine = trt.Runtime(self.logger).deserialize_cuda_engine(plan_path.read_bytes())
        proto = graph_with_weights(self.graph_path, weight_arrays(self._state))
        if engine is None:  # absent, stale or corrupt: build
            plan = self._build(proto.SerializeToString(), plan_path)
            plan_path.write_bytes(plan)
            engine = trt.Runtime(self.logger).deserialize_cuda_engine(plan)
            self.reused = False
        self.engine = engine
        self.context = engine.create_execution_context()
        from onnx import numpy_helper

        # Graph constants that are not state: supplied again when a refit asks for them.
        self._constants = {
            t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if t.name not in self._state
        }
        if self.reused:  # a cached plan holds whichever weights it was built with
            self._refit(weight_arrays(self._state))

    def _build(self, onnx_bytes: bytes, plan_path) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineUnavailable(f"TensorRT could not parse {self.graph_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.options.workspace_mib << 20)
        config.set_flag(trt.BuilderFlag.REFIT)  # weights swap in place (load_weights)
        if self.options.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if self.options.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _FrameCalibrator(self.calibration, plan_path.with_suffix(".calib"))
        profile = builder.create_optimization_profile()
        low, opt, high = self.options.profile
        profile.set_shape("lr", low, opt, high)
        config.add_optimization_profile(profile)
        if self.options.precision == "int8":
            config.set_calibration_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineUnavailable(f"TensorRT could not build an engine for {self.model_name}")
        return bytes(plan)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32, non_blocking=True).contiguous()
        self.context.set_input_shape("lr", tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape("hr")), device=self.device, dtype=torch.float32)
        self.context.set_tensor_address("lr", x.data_ptr())
        self.context.set_tensor_address("hr", out.data_ptr())
        # PyTorch's current stream: the copies before and after are ordered with the engine.
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise EngineUnavailable("TensorRT execution failed")
        return out

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Refit the engine in place with ``state``; no rebuild. For INT8 the activation ranges stay
        those calibrated with the weights the plan was built from."""
        merged = {**self._state, **match_state(self.model, state)}
        self._refit(weight_arrays(merged))
        self._state = merged

    def prepare(self, state: Mapping[str, torch.Tensor]) -> None:
        """Nothing to build ahead (a refit takes milliseconds): only checks that ``state`` fits."""
        match_state(self.model, state)

    def _refit(self, weights: dict[str, np.ndarray]) -> None:
        trt = self.trt
        torch.cuda.current_stream(self.device).synchronize()  # no enqueued work may see a half refit
        refitter = trt.Refitter(self.engine, self.logger)
        kept = []  # TensorRT reads the host arrays during refit_cuda_engine: keep them alive till then
        for name in refitter.get_all_weights():
            array = weights.get(name, self._constants.get(name))
            if array is None or not np.issubdtype(array.dtype, np.floating):
                continue
            kept.append(np.ascontiguousarray(array))
            if not refitter.set_named_weights(name, trt.Weights(kept[-1])):
                raise EngineUnavailable(f"TensorRT refused the refit of '{name}' in {self.model_name}")
        missing = refitter.get_missing_weights()
        if missing:
            raise EngineUnavailable(f"TensorRT refit of {self.model_name} lacks weights {', '.join(missing[:3])}")
        if not refitter.refit_cuda_engine():
            raise EngineUnavailable(f"TensorRT could not refit the {self.model_name} engine")
