"""Server-side LR refinement: the shipped inverse restores the refined LR better, and it still looks
like a bicubic downscale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsr_pipe.models.matlab_resize import imresize_matrix
from vsr_pipe.models.refine import RefinedDown
from vsr_pipe.models.rescaler import BoundDown, BoundUp, RescaleGeometry, quantise_8bit
from vsr_pipe.weights.store import load_model, shipped_path


def textured(h: int, w: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.2 * np.sin(xx / 3.1 + yy / 5.3) + 0.15 * np.cos(xx * yy / 90.0) + 0.03 * rng.standard_normal((h, w))
    return torch.from_numpy(np.round(np.clip(img, 0, 1) * 255) / 255).float()[None, None]


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_refined_lr_restores_better_and_stays_near_bicubic():
    net = load_model(shipped_path("irn_y"))
    g = RescaleGeometry.for_factor(48, 64, 2, 2)
    rows, cols = (torch.from_numpy(imresize_matrix(n, m)) for n, m in zip(g.hr, g.lr))
    hr = torch.cat([textured(48, 64, 0), textured(48, 64, 1)])
    up = BoundUp(net, g, temperature=0.0)
    refined = RefinedDown(net, g, rows, cols, iters=15, lr_db=38.5)
    with torch.no_grad():
        plain_lr, refined_lr = BoundDown(net, g)(hr), refined(hr)
        errors = [((up(quantise_8bit(lr)) - hr) ** 2).mean(dim=(1, 2, 3)) for lr in (plain_lr, refined_lr)]
    assert torch.all(errors[1] < errors[0] * 0.97), errors  # each frame of the chunk gains
    bicubic = rows.float() @ hr @ cols.float().T
    lr_db = 10 * torch.log10(1 / ((refined_lr - bicubic) ** 2).mean(dim=(1, 2, 3)))
    assert torch.all(lr_db >= 38.5 - 1e-3), lr_db
    assert refined_lr.shape == plain_lr.shape and not refined_lr.requires_grad
    assert math.isfinite(float(refined_lr.sum()))
