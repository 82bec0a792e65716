"""How a frame's samples are laid out in planes: sizes, bit depth, chroma subsampling, range.

Plain data: the processor works from this and never sees PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameLayout:
    """A planar YUV (or grey) frame layout.

    Planes are Y, then Cb and Cr (absent for grey). Chroma planes are
    ``ceil(width / 2**chroma_shift_x)`` by ``ceil(height / 2**chroma_shift_y)``. Samples are
    unsigned integers of ``bits`` bits stored in 1 byte (8 bits) or 2 bytes (9-16 bits).
    """

    width: int
    height: int
    pix_fmt: str
    bits: int = 8
    chroma_shift_x: int = 1
    chroma_shift_y: int = 1
    gray: bool = False
    full_range: bool = False

    @property
    def plane_count(self) -> int:
        return 1 if self.gray else 3

    def plane_size(self, index: int) -> tuple[int, int]:
        """(height, width) of plane ``index``."""
        if index == 0:
            return self.height, self.width
        return (
            -(-self.height // (1 << self.chroma_shift_y)),
            -(-self.width // (1 << self.chroma_shift_x)),
        )

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bits <= 8 else 2

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1

    @property
    def unit(self) -> float:
        """Code value that maps to 1.0: 255 in 8 bits; a limited-range 10-bit 940 maps like 8-bit 235."""
        if self.full_range:
            return float(self.max_code)
        return 255.0 * (1 << (self.bits - 8))

    @property
    def chroma_sited_left(self) -> bool:
        """MPEG-2/H.264 default siting: horizontally subsampled chroma sits on the left luma sample."""
        return self.chroma_shift_x > 0
