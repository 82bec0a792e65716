"""How a frame's planes get from the input layout to the output layout (no arrays here)."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.layout import FrameLayout


@dataclass(frozen=True)
class ProcessPlan:
    """Input and output layouts and how Y and chroma get from one to the other."""

    src: FrameLayout
    dst: FrameLayout
    kernel: str = "bicubic"

    @property
    def scale_x(self) -> float:
        return self.dst.width / self.src.width

    @property
    def scale_y(self) -> float:
        return self.dst.height / self.src.height
