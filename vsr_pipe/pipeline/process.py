"""The processing stage: input chunk planes -> output chunk planes.

Y goes through the neural chain (integer sub-pixel stages) and an antialiased resample to the exact
target size; chroma is resampled directly, with its siting kept, so colours never take a round trip
through RGB. Works on whole chunks, on whichever device the engines use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..engines.tiling import run_tiled
from ..io.layout import FrameLayout
from ..models.resample import resize_planes
from .process_plan import ProcessPlan  # noqa: F401 (the name callers know)

LumaModel = Callable[[torch.Tensor], torch.Tensor]


class PlaneRescaler:
    """Rescales chunks of planes; ``luma_model`` (or None for the plain ``kernel``) upscales Y."""

    def __init__(
        self,
        plan: ProcessPlan,
        luma_stages: Sequence[LumaModel] = (),
        device: str | torch.device = "cpu",
        tile: int = 0,
        stage_scales: Sequence[int] = (),
        halo: int = 8,
    ):
        self.plan = plan
        self.luma_stages = list(luma_stages)
        self.device = torch.device(device)
        self.tile = tile
        self.stage_scales = list(stage_scales)
        self.halo = halo

    def __call__(self, planes_in: list[np.ndarray], planes_out: list[np.ndarray]) -> None:
        """Read (n, h, w) input planes and write (n, H, W) output planes in place."""
        src, dst = self.plan.src, self.plan.dst
        y = self._to_float(planes_in[0], src)
        y = self._luma(y)
        self._store(y, planes_out[0], dst)
        if dst.gray:
            return
        sub_in, sub_out, (h, w) = self.plan.chroma
        for i in (1, 2):
            if src.gray:
                planes_out[i][: planes_in[0].shape[0]] = self.plan.neutral_chroma
                continue
            c = self._to_float(planes_in[i], src)
            c = resize_planes(
                c, h, w, self.plan.scale_y, self.plan.scale_x, self.plan.kernel, sub_in, sub_out,
                left_sited=src.chroma_sited_left,
            )  # fmt: skip
            self._store(c, planes_out[i], dst)

    def _luma(self, y: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.luma_stages):
            y = run_tiled(stage, y, self.tile, self.halo, self.stage_scales[i]) if self.tile else stage(y)
        out_h, out_w = self.plan.dst.height, self.plan.dst.width
        h, w = y.shape[-2:]
        if (h, w) != (out_h, out_w):
            y = resize_planes(y, out_h, out_w, out_h / h, out_w / w, self.plan.kernel)
        return y

    def _to_float(self, plane: np.ndarray, layout: FrameLayout) -> torch.Tensor:
        t = torch.from_numpy(plane.view(np.int16) if plane.dtype == np.uint16 else plane)
        return t.to(self.device, non_blocking=True).float().unsqueeze(1) / layout.unit

    @staticmethod
    def _store(x: torch.Tensor, out: np.ndarray, layout: FrameLayout) -> None:
        # In place (x is this stage's own temporary); +0.5 then truncation is rounding for x >= 0.
        q = x.squeeze(1).mul_(layout.unit).add_(0.5).clamp_(0, layout.max_code)
        target = torch.from_numpy(out.view(np.int16) if out.dtype == np.uint16 else out)
        target[: q.shape[0]].copy_(q)
