"""The processing stage in numpy, for a CPU run whose models run in ONNX Runtime: the same maths
as ``process.py``'s :class:`PlaneRescaler` (Y through the models, then the separable resample;
chroma resampled directly with its siting), without importing torch, which costs a live run about
a second before its first frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..io.layout import FrameLayout
from ..models.resample_weights import resize_weights
from .process_plan import ProcessPlan

HostModel = Callable[[np.ndarray], np.ndarray]  # (n, 1, h, w) float32 -> (n, 1, r*h, r*w) float32


@dataclass(frozen=True)
class HostDevice:
    """Where a host rescaler's arrays live: the CPU (what the threads ask of ``device.type``)."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


class HostPlaneRescaler:
    """Rescales chunks of planes in numpy; ``luma_stages`` (none: the plain ``kernel``) upscale Y."""

    device = HostDevice()

    def __init__(self, plan: ProcessPlan, luma_stages: Sequence[HostModel] = ()):
        self.plan = plan
        self.luma_stages = list(luma_stages)

    def __call__(self, planes_in: list[np.ndarray], planes_out: list[np.ndarray]) -> None:
        """Read (n, h, w) input planes and write (n, H, W) output planes in place."""
        src, dst = self.plan.src, self.plan.dst
        n = planes_in[0].shape[0]
        y = _to_float(planes_in[0], src)[:, None]
        for stage in self.luma_stages:
            y = stage(y)
        out_h, out_w = dst.height, dst.width
        h, w = y.shape[-2:]
        if (h, w) != (out_h, out_w):
            y = _resize(y, out_h, out_w, out_h / h, out_w / w, self.plan.kernel)
        _store(y[:, 0], planes_out[0][:n], dst)
        if dst.gray:
            return
        sub_in, sub_out, (h, w) = self.plan.chroma
        for i in (1, 2):
            if src.gray:
                planes_out[i][:n] = self.plan.neutral_chroma
                continue
            c = _resize(_to_float(planes_in[i], src), h, w, self.plan.scale_y, self.plan.scale_x,
                        self.plan.kernel, sub_in, sub_out, src.chroma_sited_left)  # fmt: skip
            _store(c, planes_out[i][:n], dst)


def _to_float(plane: np.ndarray, layout: FrameLayout) -> np.ndarray:
    return plane.astype(np.float32) / np.float32(layout.unit)


def _resize(x, out_h, out_w, scale_y, scale_x, kernel, in_sub=(1, 1), out_sub=(1, 1), left_sited=False) -> np.ndarray:
    """(..., h, w) float32 planes resampled to (..., out_h, out_w): ``Wy @ x @ Wx^T`` computed from
    each matrix's band of non-zero taps, elementwise. A dense matmul would call a multithreaded BLAS
    whose spinning threads take the cores from the model and the encoder beside a busy job."""
    h, w = x.shape[-2:]
    if (h, w) == (out_h, out_w) and scale_x == 1 and scale_y == 1 and in_sub == out_sub:
        return x
    rows, row_w = _band(h, out_h, scale_y, kernel, in_sub[0], out_sub[0], False)
    cols, col_w = _band(w, out_w, scale_x, kernel, in_sub[1], out_sub[1], left_sited)
    y = row_w[:, 0, None] * x[..., rows[:, 0], :]
    for t in range(1, rows.shape[1]):
        y += row_w[:, t, None] * x[..., rows[:, t], :]
    out = col_w[:, 0] * y[..., cols[:, 0]]
    for t in range(1, cols.shape[1]):
        out += col_w[:, t] * y[..., cols[:, t]]
    return out


@lru_cache(maxsize=64)
def _band(*args) -> tuple[np.ndarray, np.ndarray]:
    """The (out, taps) input indices and float32 weights of :func:`resize_weights`'s rows."""
    m = resize_weights(*args)
    nonzero = m != 0
    first = nonzero.argmax(axis=1)
    last = m.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    taps = first[:, None] + np.arange(int((last - first).max()) + 1)
    inside = taps <= last[:, None]
    idx = np.where(inside, taps, first[:, None])
    return idx, np.where(inside, np.take_along_axis(m, idx, axis=1), 0.0).astype(np.float32)


def _store(x: np.ndarray, out: np.ndarray, layout: FrameLayout) -> None:
    # +0.5 then truncation is rounding for x >= 0, as PlaneRescaler stores.
    x *= layout.unit
    x += 0.5
    np.clip(x, 0, layout.max_code, out=x)
    np.copyto(out, x, casting="unsafe")
