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

    @property
    def chroma(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The input's and the output's chroma subsampling, (vertical, horizontal) each, and the
        output chroma plane's (height, width)."""
        src, dst = self.src, self.dst
        sub_in = (1 << src.chroma_shift_y, 1 << src.chroma_shift_x)
        sub_out = (1 << dst.chroma_shift_y, 1 << dst.chroma_shift_x)
        return sub_in, sub_out, dst.plane_size(1)

    @property
    def neutral_chroma(self) -> int:
        """The output's code for no colour, which a gray input's chroma planes get."""
        return round(128 / 255 * self.dst.unit)
