"""Eager PyTorch engine, CPU or CUDA."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import EngineUnavailable
from .base import TorchOptions


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
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.model = model.eval().to(device=device, dtype=self.dtype, memory_format=self.memory_format)
        for p in self.model.parameters():
            p.requires_grad_(False)

    # no_grad rather than inference_mode: the caller quantises the output in place, which
    # inference tensors refuse outside inference mode.
    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)
        return self.model(x).float()

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k: v.to(self.device, self.dtype) for k, v in state.items()})
