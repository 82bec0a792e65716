"""The engine interface: run one model direction on a whole chunk of frames at once.

An engine knows tensors, devices and precisions; it knows nothing of files, codecs or PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

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
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    channels_last: bool = False


def make_engine(options: TorchOptions, model: torch.nn.Module, name: str) -> Engine:
    """Build the engine that ``options`` describes around ``model``."""
    if isinstance(options, TorchOptions):
        from .torch_engine import TorchEngine

        return TorchEngine(model, options, name)
    raise TypeError(f"unknown engine options {type(options).__name__}")
