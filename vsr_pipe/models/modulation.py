"""Per-channel modulation of a trained correction: what a delivery ships per title or per chunk.

CaFM's idea (Liu et al., ICCV 2021): keep a trained network and adapt it to new content by scaling
and shifting each conv's output channels. For a :class:`CorrectionNet` of 32 features and 4 blocks
that is 292 channels, 584 numbers, against its 76 k weights. Each number is an integer code (int8):
factor = 1 + code · SCALE_STEP, shift = code · SHIFT_STEP, so the fit sees exactly what ships
(quantisation in the loop, rounding with a straight-through gradient). A scale and shift on a conv's
output fold into that conv's weights and bias, so the client's network is the plain correction with
other weights: no new graph, and the engine swaps them like any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .correction import CorrectionNet

SCALE_STEP = 1 / 128  # factor resolution; codes in [-128, 127] cover 0-1.99 (-128: the channel off)
SHIFT_STEP = 1 / 512  # in the layer's output units ([0, 1] image units at the tail)
CODE_MIN, CODE_MAX = -128, 127


def conv_names(net: CorrectionNet) -> list[str]:
    """The correction's convs in a fixed order, by state-dict prefix (``head``, ``body.0.0`` ...)."""
    return ["head"] + [f"body.{b}.{i}" for b in range(net.blocks) for i in (0, 2)] + ["tail"]


def code_shapes(net: CorrectionNet) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every code tensor: ``{conv}.scale`` and ``{conv}.shift``, one per output channel."""
    shapes = {}
    for name in conv_names(net):
        out = _conv(net, name).out_channels
        shapes[f"{name}.scale"] = (out,)
        shapes[f"{name}.shift"] = (out,)
    return shapes


def fold(net: CorrectionNet, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` with ``codes`` (integer tensors by :func:`code_shapes` name) folded in."""
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for name in conv_names(net):
        factor, shift = _factor_shift(codes[f"{name}.scale"].float(), codes[f"{name}.shift"].float())
        state[f"{name}.weight"] = state[f"{name}.weight"] * factor[:, None, None, None]
        state[f"{name}.bias"] = state[f"{name}.bias"] * factor + shift
    return state


class ModulatedCorrection(nn.Module):
    """A frozen :class:`CorrectionNet` whose convs' outputs are scaled and shifted by trainable,
    quantised per-channel codes. ``forward(x, y)`` as the correction's; ``codes()`` gives the
    integer codes (int8) that :func:`fold` turns back into plain weights.

    ``grid``: the codes are multiples of it. A coarser grid is a coarser quantiser with the same
    file format: a few distinct values compress to fewer bytes (zstd's literal coding), which at the
    low rates where a package pays is worth more than the precision."""

    def __init__(self, net: CorrectionNet, start: dict[str, torch.Tensor] | None = None, grid: int = 1):
        super().__init__()
        if not 1 <= grid <= 64:
            raise ValueError(f"code grid {grid}: need 1-64")
        self.net, self.grid = net, int(grid)
        for p in net.parameters():
            p.requires_grad_(False)
        self.scale = net.scale
        self.raw = nn.ParameterDict()
        for name, shape in code_shapes(net).items():
            value = torch.zeros(shape) if start is None else start[name].float().reshape(shape)
            self.raw[name.replace(".", "_")] = nn.Parameter(value.clone())

    def codes(self) -> dict[str, torch.Tensor]:
        return {name: self._code(name).detach().round().to(torch.int8) for name in code_shapes(self.net)}

    def _code(self, name: str) -> torch.Tensor:
        return quantised(self.raw[name.replace(".", "_")], self.grid)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return modulated(self.net, x, y, self._code)


class TitleCodes(nn.Module):
    """Codes of their own for each of ``titles`` training titles, trained with the correction
    (CaFM's joint training): ``forward(index)`` gives, by :func:`code_shapes` name, the rounded
    codes (straight-through) of the titles ``index`` (N,) as (N, channels) rows; index -1: zero codes,
    the correction as the client has it before any fit."""

    def __init__(self, net: CorrectionNet, titles: int):
        super().__init__()
        self.names = sorted(code_shapes(net))
        self.rows = nn.ParameterDict(
            {n.replace(".", "_"): nn.Parameter(torch.zeros(titles, code_shapes(net)[n][0])) for n in self.names}
        )

    def forward(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.names:
            rows = self.rows[name.replace(".", "_")]
            code = quantised(rows[index.clamp_min(0)])
            out[name] = code * (index >= 0).to(code.dtype)[:, None]
        return out


def quantised(raw: torch.Tensor, grid: int = 1) -> torch.Tensor:
    """``raw`` codes clamped to int8 and rounded to multiples of ``grid``: rounded forward, the
    gradient passed back unchanged (straight through), so a fit sees exactly what ships."""
    raw = raw.clamp(CODE_MIN, CODE_MAX // grid * grid)
    return raw + (torch.round(raw / grid) * grid - raw).detach()


def modulated(net: CorrectionNet, x: torch.Tensor, y: torch.Tensor, code) -> torch.Tensor:
    """The correction's output with each conv's channels scaled and shifted by ``code(name)``: one
    code per channel (C,), or one row per sample (N, C)."""

    def conv(name: str, t: torch.Tensor) -> torch.Tensor:
        c = _conv(net, name)
        factor, shift = _factor_shift(code(f"{name}.scale"), code(f"{name}.shift"))
        out = F.conv2d(t, c.weight, c.bias, padding=c.padding)
        return out * factor.reshape(-1, c.out_channels, 1, 1) + shift.reshape(-1, c.out_channels, 1, 1)

    feat = F.relu(conv("head", torch.cat([x, net.unshuffle(y)], 1)))
    for b in range(net.blocks):
        feat = feat + conv(f"body.{b}.2", F.relu(conv(f"body.{b}.0", feat)))
    return net.shuffle(conv("tail", feat))


def off_codes(net: CorrectionNet) -> dict[str, torch.Tensor]:
    """Codes that switch the correction off (the tail's outputs scaled by 0): the base model alone."""
    codes = {k: torch.zeros(s, dtype=torch.int8) for k, s in code_shapes(net).items()}
    codes["tail.scale"][:] = CODE_MIN
    return codes


def _factor_shift(scale_codes: torch.Tensor, shift_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return 1 + scale_codes * SCALE_STEP, shift_codes * SHIFT_STEP


def _conv(net: CorrectionNet, name: str) -> nn.Conv2d:
    module: nn.Module = net
    for part in name.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module
