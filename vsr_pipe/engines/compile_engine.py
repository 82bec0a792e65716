"""``torch.compile`` engine: Inductor kernels (Triton on CUDA, C++ on a CPU), one static-shape graph
per input shape, eager PyTorch where compilation fails."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch

from ..errors import EngineUnavailable
from .options import CompileOptions, TorchOptions
from .torch_engine import TorchEngine

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompiledEngine:
    """Runs an ``nn.Module`` through ``torch.compile(dynamic=False)`` in inference mode.

    Each new input shape compiles its own graph on its first call (seconds); later calls of that
    shape run the compiled code. Dynamo keeps a handful of graphs per model class
    (``torch._dynamo.config.recompile_limit``) and runs further shapes eagerly. The compiled code
    reads the parameters by reference, so ``load_weights`` copies into them and nothing recompiles.
    """

    def __init__(self, model: torch.nn.Module, options: CompileOptions, name: str):
        if options.mode not in MODES:
            raise EngineUnavailable(f"torch.compile mode '{options.mode}': choose {', '.join(MODES)}")
        # The eager engine does the device and precision checks, the placement and the weight swaps.
        self._eager = TorchEngine(
            model, TorchOptions(options.device, options.precision, options.threads, cuda_graphs=False), name
        )
        self.name = f"compile:{name}"
        self.options = options
        self.device, self.dtype = self._eager.device, self._eager.dtype
        self.model = self._eager.model
        self._compiled = torch.compile(self.model, mode=options.mode, dynamic=False)
        # CUDA graphs (reduce-overhead, max-autotune) reuse their output buffers on the next call.
        self._outputs_reused = self.device.type == "cuda" and options.mode in ("reduce-overhead", "max-autotune")

    # no_grad rather than inference_mode: the caller quantises the output in place (as TorchEngine).
    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self._eager.memory_format)
        if self._compiled is not None:
            try:
                out = self._compiled(x)
            except Exception as exc:  # noqa: BLE001 (no C++ compiler, an unsupported op...: stay eager, say so once)
                warnings.warn(
                    f"{self.name}: torch.compile failed ({type(exc).__name__}); running eagerly", stacklevel=2
                )
                self._compiled = None
            else:
                if out.dtype != torch.float32:
                    return out.float()
                return out.clone() if self._outputs_reused else out
        return self.model(x).float()

    @property
    def compiled(self) -> bool:
        """False once compilation has failed and the engine runs eagerly."""
        return self._compiled is not None

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state`` into the live parameters, which the compiled code reads; no recompilation."""
        self._eager.load_weights(state)

    def prepare(self, state: Mapping[str, torch.Tensor]) -> None:
        """Nothing to build ahead: only checks that ``state`` fits."""
        self._eager.prepare(state)
