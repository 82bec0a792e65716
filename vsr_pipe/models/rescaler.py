"""One invertible rescaler for any factor in [1, 4] per axis, non-integer and asymmetric too.

IRN (``papers.md`` §2) only rescales by powers of two: its Haar split halves each side. For any other
factor this model first *enlarges* the HR frame with a fixed bicubic resampler to ``2**L`` times the
LR size (L = 1 up to x2, 2 up to x4), then runs L Haar + affine-coupling levels down to the LR size.
Enlarging is injective, so nothing is lost before the invertible part: the non-invertible half of the
cycle is the way back, where the inner frame returns to HR size through the least-squares inverse
(pseudo-inverse) of the enlargement. Trained end to end through both resamplers, the couplings learn
to put out inner frames that this projection keeps, so that the down-up cycle is invertible in
effect; with the true latent it is exact.

The couplings are conditioned on where each sample sits: per axis the sub-pixel phase of its centre
on the HR grid (sin and cos) and the HR-pixels-per-sample ratio, and the whole factor HR / LR. The
last tells the first level at x4 (an intermediate frame, two levels to go) from the only level at x2
(the LR itself): both see the same grid ratio. Non-integer factors make the phase vary across the
frame; the maps are computed from the sizes alone, so the receiver knows them too.

The model works on one plane (luma, as the pipeline feeds it); the resampling matrices and the
conditioning maps are inputs of the two directions, so both export to ONNX with dynamic sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from .irn import CouplingBlock, HaarSplit
from .resample import resize_matrix

MAX_FACTOR = 4.0
COND_CHANNELS = 8  # phase sin/cos + grid ratio per axis, then the whole factor per axis
LEGACY_COND_CHANNELS = 6  # weights trained before the whole-factor maps read only the first six


def quantise_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit codes; the gradient passes straight through."""
    q = torch.round(x.clamp(0, 1) * 255) / 255
    return x + (q - x).detach()


@dataclass(frozen=True)
class RescaleGeometry:
    """HR and LR plane sizes, (height, width) each; the factors are HR / LR per axis."""

    hr: tuple[int, int]
    lr: tuple[int, int]

    @classmethod
    def for_factor(cls, hr_h: int, hr_w: int, factor_y: float, factor_x: float) -> RescaleGeometry:
        """The LR size is the HR size divided by the factor, rounded (at least 1, and never so small
        that rounding pushes the factor past 4)."""

        def lr_len(n: int, f: float) -> int:
            return max(1, round(n / f), math.ceil(n / MAX_FACTOR - 1e-9))

        return cls((hr_h, hr_w), (lr_len(hr_h, factor_y), lr_len(hr_w, factor_x)))

    @property
    def factor_y(self) -> float:
        return self.hr[0] / self.lr[0]

    @property
    def factor_x(self) -> float:
        return self.hr[1] / self.lr[1]

    @property
    def levels(self) -> int:
        f = max(self.factor_x, self.factor_y)
        if f < 1 - 1e-9 or f > MAX_FACTOR + 1e-9 or min(self.factor_x, self.factor_y) < 1 - 1e-9:
            raise ValueError(f"factor {self.factor_y:.3g}x{self.factor_x:.3g} is outside [1, {MAX_FACTOR:g}]")
        return 1 if f <= 2 + 1e-9 else 2

    @property
    def inner(self) -> tuple[int, int]:
        k = 2**self.levels
        return self.lr[0] * k, self.lr[1] * k

    def tensors(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> RescaleTensors:
        up_rows, inv_rows = _enlarge_pair(self.hr[0], self.inner[0])
        up_cols, inv_cols = _enlarge_pair(self.hr[1], self.inner[1])
        conds = tuple(
            _condition(
                self.hr, (self.lr[0] * 2 ** (self.levels - 1 - i), self.lr[1] * 2 ** (self.levels - 1 - i)), self.lr
            )
            for i in range(self.levels)
        )

        def to(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return RescaleTensors(to(up_rows), to(up_cols), to(inv_rows), to(inv_cols), tuple(to(c) for c in conds))


@dataclass(frozen=True)
class RescaleTensors:
    """What one geometry needs at run time: enlargement, its inverse, a conditioning map per level."""

    up_rows: torch.Tensor  # (inner_h, H)
    up_cols: torch.Tensor  # (inner_w, W)
    inv_rows: torch.Tensor  # (H, inner_h)
    inv_cols: torch.Tensor  # (W, inner_w)
    conds: tuple[torch.Tensor, ...]  # level i: (1, 8, inner_h / 2**(i+1), inner_w / 2**(i+1))


@lru_cache(maxsize=32)
def _enlarge_pair(n: int, inner: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bicubic enlargement n -> inner (inner >= n) and its least-squares inverse, float64."""
    if inner == n:
        eye = torch.eye(n, dtype=torch.float64)
        return eye, eye
    up = resize_matrix(n, inner, inner / n, "bicubic")
    return up, torch.linalg.pinv(up)


@lru_cache(maxsize=32)
def _condition(hr: tuple[int, int], grid: tuple[int, int], lr: tuple[int, int]) -> torch.Tensor:
    """(1, 8, gh, gw): per axis sin/cos of the sub-pixel phase of each sample on the HR grid, and
    log2 of the HR pixels per sample, halved (0 at x1, 1 at x4); then per axis log2(HR / LR), halved."""
    maps = []
    for axis in (0, 1):
        ratio = hr[axis] / grid[axis]
        centre = (torch.arange(grid[axis], dtype=torch.float64) + 0.5) * ratio - 0.5
        phase = 2 * math.pi * (centre - torch.floor(centre))
        feats = torch.stack([torch.sin(phase), torch.cos(phase), torch.full_like(phase, math.log2(ratio) / 2)])
        shape = (3, grid[0], 1) if axis == 0 else (3, 1, grid[1])
        maps.append(feats.view(shape).expand(3, *grid))
    whole = [torch.full((1, *grid), math.log2(hr[axis] / lr[axis]) / 2, dtype=torch.float64) for axis in (0, 1)]
    return torch.cat(maps + whole).unsqueeze(0).contiguous()


class ArbitraryRescaler(nn.Module):
    """Invertible rescaler of one plane: ``down`` gives (LR, z), ``up`` restores HR from LR and z.

    Args:
        blocks: coupling blocks at the first and the second Haar level.
        growth, convs: width and depth of each coupling's dense subnets.
        cond_channels: how many of the conditioning maps the subnets read (6: weights made before the
            whole-factor maps).
    """

    def __init__(
        self, blocks: tuple[int, int] = (6, 4), growth: int = 16, convs: int = 3, cond_channels: int = COND_CHANNELS
    ):
        super().__init__()
        self.blocks, self.growth, self.convs, self.cond_channels = tuple(blocks), growth, convs, cond_channels
        self.haar = nn.ModuleList([HaarSplit(1), HaarSplit(4)])
        self.couplings = nn.ModuleList(
            nn.ModuleList(CouplingBlock(4**(i + 1), 1, growth, convs, cond=cond_channels) for _ in range(n))
            for i, n in enumerate(self.blocks)
        )  # fmt: skip
        # A learnt per-channel scale of z for each level count (invertible: a diagonal linear map).
        # The couplings could learn it too, but slowly; restoring from z ~ N(0, 1) needs z's scale
        # right first, so it gets a direct path (and its own learning rate in training).
        self.latent_log_scale = nn.ParameterList(nn.Parameter(torch.zeros(1, 4**levels - 1, 1, 1)) for levels in (1, 2))

    @staticmethod
    def latent_channels(levels: int) -> int:
        return 4**levels - 1

    def down(
        self, hr: torch.Tensor, up_rows: torch.Tensor, up_cols: torch.Tensor, conds: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HR (N, 1, H, W) -> LR (N, 1, h, w), unquantised, and z (N, 4**L - 1, h, w)."""
        x = up_rows @ hr @ up_cols.transpose(0, 1)
        for level, cond in enumerate(conds):
            x = self.haar[level](x)
            for block in self.couplings[level]:
                x = block(x, cond)
        return x[:, :1], x[:, 1:] * torch.exp(self.latent_log_scale[len(conds) - 1])

    def up(
        self,
        lr: torch.Tensor,
        z: torch.Tensor,
        inv_rows: torch.Tensor,
        inv_cols: torch.Tensor,
        conds: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """LR (N, 1, h, w) and z (N, 4**L - 1, h, w) -> HR (N, 1, H, W)."""
        return inv_rows @ self.up_inner(lr, z, conds) @ inv_cols.transpose(0, 1)

    def up_inner(self, lr: torch.Tensor, z: torch.Tensor, conds: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The invertible part of ``up``: the enlarged frame (N, 1, 2**L h, 2**L w) before the
        least-squares return to HR size."""
        y = torch.cat([lr, z * torch.exp(-self.latent_log_scale[len(conds) - 1])], 1)
        for level in reversed(range(len(conds))):
            for block in reversed(self.couplings[level]):
                y = block.inverse(y, conds[level])
            y = self.haar[level].inverse(y)
        return y


class DownGraph(nn.Module):
    """The down direction for L levels with every size-dependent tensor as an input (ONNX export)."""

    def __init__(self, model: ArbitraryRescaler, levels: int):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, hr, up_rows, up_cols, *conds):  # noqa: ANN001 (traced)
        lr, _ = self.model.down(hr, up_rows, up_cols, tuple(conds))
        return lr


class UpGraph(nn.Module):
    """The up direction for L levels, z given (drawn by the caller), for ONNX export."""

    def __init__(self, model: ArbitraryRescaler, levels: int):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, lr, z, inv_rows, inv_cols, *conds):  # noqa: ANN001 (traced)
        return self.model.up(lr, z, inv_rows, inv_cols, tuple(conds))


class BoundDown(nn.Module):
    """The down direction for one frame geometry: ``forward(hr) -> lr``, as engines run models."""

    def __init__(self, model: ArbitraryRescaler, geometry: RescaleGeometry):
        super().__init__()
        self.model, self.geometry = model, geometry
        t = geometry.tensors()
        self.register_buffer("up_rows", t.up_rows)
        self.register_buffer("up_cols", t.up_cols)
        for i, c in enumerate(t.conds):
            self.register_buffer(f"cond{i}", c)
        self.example_shape = (1, 1, *geometry.hr)

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        conds = tuple(getattr(self, f"cond{i}") for i in range(self.geometry.levels))
        return self.model.down(hr, self.up_rows, self.up_cols, conds)[0]


class BoundUp(nn.Module):
    """The up direction for one frame geometry: ``forward(lr) -> hr`` with z drawn from N(0, 1)."""

    def __init__(self, model: ArbitraryRescaler, geometry: RescaleGeometry, temperature: float = 1.0):
        super().__init__()
        self.model, self.geometry = model, geometry
        # A buffer, not a float: it is part of the state, so an exported graph's cache key sees it.
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        t = geometry.tensors()
        self.register_buffer("inv_rows", t.inv_rows)
        self.register_buffer("inv_cols", t.inv_cols)
        for i, c in enumerate(t.conds):
            self.register_buffer(f"cond{i}", c)
        self.example_shape = (1, 1, *geometry.lr)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        levels = self.geometry.levels
        conds = tuple(getattr(self, f"cond{i}") for i in range(levels))
        # randn_like on an expanded view exports as one RandomNormalLike with the dynamic batch.
        z = torch.randn_like(lr.expand(-1, ArbitraryRescaler.latent_channels(levels), -1, -1)) * self.temperature
        return self.model.up(lr, z, self.inv_rows, self.inv_cols, conds)
