"""Server-side refinement of the rescaler's LR against its own inverse (HCD's LR step, ``papers.md`` §6).

The server holds the HR, so after the learned downscale it can search for the 8-bit LR that the fixed
inverse restores best: Adam steps on the LR minimising the squared error between the HR and
up(quantise(LR), z = 0), the rounding passed straight through. After each step the LR is pulled back
into the ball around the MATLAB-bicubic LR whose radius is ``lr_db`` dB of PSNR, so it keeps looking
like a proper downscale. Nothing changes for the client: the inverse is the same one.

Written without data-dependent branches (the projection is a clamped scale, Adam's bias corrections
are plain numbers), so the loop does not wait on the device between steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .rescaler import ArbitraryRescaler, RescaleGeometry, quantise_8bit


class RefinedDown(nn.Module):
    """``forward(hr) -> lr``: the down direction of ``model`` for one geometry, then ``iters`` steps.

    Args:
        guide_rows, guide_cols: the MATLAB-bicubic resampling matrices (lr_h, H) and (lr_w, W).
        iters: Adam steps; step: their size in 8-bit codes; lr_db: the LR stays at least this close
            (PSNR) to the bicubic LR.
    """

    def __init__(
        self,
        model: ArbitraryRescaler,
        geometry: RescaleGeometry,
        guide_rows: torch.Tensor,
        guide_cols: torch.Tensor,
        iters: int = 50,
        step: float = 0.5,
        lr_db: float = 38.5,
    ):
        super().__init__()
        self.model, self.geometry, self.iters = model, geometry, iters
        self.step, self.lr_db = step / 255.0, lr_db
        t = geometry.tensors()
        for name in ("up_rows", "up_cols", "inv_rows", "inv_cols"):
            self.register_buffer(name, getattr(t, name))
        for i, c in enumerate(t.conds):
            self.register_buffer(f"cond{i}", c)
        self.register_buffer("guide_rows", guide_rows.float())
        self.register_buffer("guide_cols", guide_cols.float())
        self.example_shape = (1, 1, *geometry.hr)

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        conds = tuple(getattr(self, f"cond{i}") for i in range(self.geometry.levels))
        with torch.enable_grad():
            hr = hr.detach().clone()
            lr = self.model.down(hr, self.up_rows, self.up_cols, conds)[0].detach()
            guide = self.guide_rows @ hr @ self.guide_cols.transpose(0, 1)
            # Per frame: the squared distance to the bicubic LR that ``lr_db`` of PSNR allows.
            radius = math.sqrt(lr.shape[-2] * lr.shape[-1] * 10 ** (-self.lr_db / 10))
            zero = torch.zeros(
                lr.shape[0], self.model.latent_channels(self.geometry.levels), *lr.shape[-2:],
                device=lr.device, dtype=lr.dtype,
            )  # fmt: skip
            first, second = torch.zeros_like(lr), torch.zeros_like(lr)
            beta1, beta2 = 0.9, 0.999
            x = lr.clone().requires_grad_(True)
            for i in range(1, self.iters + 1):
                restored = self.model.up(quantise_8bit(x), zero, self.inv_rows, self.inv_cols, conds)
                (grad,) = torch.autograd.grad(((restored - hr) ** 2).sum(), x)
                with torch.no_grad():
                    first.mul_(beta1).add_(grad, alpha=1 - beta1)
                    second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    update = (first / (1 - beta1**i)) / ((second / (1 - beta2**i)).sqrt() + 1e-8)
                    x.sub_(self.step * update)
                    off = x - guide
                    norm = off.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                    x.copy_(guide + off * (radius / norm).clamp(max=1.0))
        return x.detach()
