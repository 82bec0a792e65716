"""Eager PyTorch engine, CPU or CUDA (fp16, channels-last and CUDA graphs there)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch

from ..errors import EngineUnavailable
from .options import TorchOptions
from .state import match_state

# Captured graphs kept per engine: chunks have one shape, plus a shorter last chunk per video.
MAX_GRAPHS = 4


class TorchEngine:
    """Runs an ``nn.Module`` in inference mode on one device and precision."""

    def __init__(self, model: torch.nn.Module, options: TorchOptions, name: str):
        self.name = f"torch:{name}"
        self.options = options
        device = torch.device(options.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailable(f"device {options.device} asked for, but torch sees no CUDA GPU")
        if options.precision not in ("fp32", "fp16"):
            raise EngineUnavailable(f"torch engine precision {options.precision}: choose fp32 or fp16")
        if options.precision == "fp16" and device.type != "cuda":
            raise EngineUnavailable("fp16 needs a CUDA device with the torch engine; use fp32 on CPU")
        if options.threads and device.type == "cpu":
            torch.set_num_threads(options.threads)
        self.device = device
        self.dtype = torch.float16 if options.precision == "fp16" else torch.float32
        on_cuda = device.type == "cuda"
        self.memory_format = torch.channels_last if options.channels_last and on_cuda else torch.contiguous_format
        self.model = model.eval().to(device=device, dtype=self.dtype, memory_format=self.memory_format)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.use_graphs = options.cuda_graphs and on_cuda
        self._graphs: dict[tuple[int, ...], _CapturedCall] = {}

    # no_grad rather than inference_mode: the caller quantises the output in place, which
    # inference tensors refuse outside inference mode.
    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)
        if not self.use_graphs:
            return self.model(x).float()
        out = self._graphed(x)
        # The graph's output buffer is overwritten by the next replay: hand out a copy, made once
        # (fp16 -> fp32 already copies).
        return out.float() if out.dtype != torch.float32 else out.clone()

    def _graphed(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        call = self._graphs.get(key)
        if call is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            try:
                call = self._graphs[key] = _CapturedCall(self.model, x)
            except RuntimeError as exc:  # a layer that cannot be captured: stay eager, say so once
                warnings.warn(f"{self.name}: CUDA graph capture failed ({exc}); running eagerly", stacklevel=2)
                self.use_graphs = False
                return self.model(x)
        return call(x)

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state`` into the live parameters (see ``match_state`` for the keys taken)."""
        # In-place copies: captured CUDA graphs read the same memory, so they see the new weights.
        own = self.model.state_dict()
        with torch.no_grad():
            for key, value in match_state(self.model, state).items():
                own[key].copy_(value)

    def prepare(self, state: Mapping[str, torch.Tensor]) -> None:
        """Nothing to build ahead: only checks that ``state`` fits."""
        match_state(self.model, state)


class _CapturedCall:
    """One CUDA graph of ``model`` on a static input buffer of ``example``'s shape (PyTorch's
    documented capture recipe: warm up on a side stream, capture, then copy in and replay)."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor):
        self.static_in = example.clone()
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # cuDNN picks its algorithms outside the capture
                model(self.static_in)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = model(self.static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out
