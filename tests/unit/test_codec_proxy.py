"""The differentiable codec stand-in that the rescaler can train against."""

from __future__ import annotations

import math

import torch

from vsr_pipe.models.codec_proxy import CRF_STRENGTH, code_intra


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


def texture(h=37, w=53, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(
        torch.rand(1, 1, h // 4 + 1, w // 4 + 1, generator=g), (h, w), mode="bicubic"
    )
    return (smooth + 0.05 * torch.rand(1, 1, h, w, generator=g)).clamp(0, 1)


def test_odd_sizes_keep_their_shape_and_a_gentle_coder_is_nearly_lossless():
    y = texture()
    out = code_intra(y, 0.005)
    assert out.shape == y.shape
    assert psnr(out, y) > 50


def test_stronger_coding_loses_more_and_crf_23_loses_more_than_crf_18():
    y = texture()
    scores = [psnr(code_intra(y, s), y) for s in (0.02, CRF_STRENGTH[18], CRF_STRENGTH[23], 0.5, 1.0)]
    assert scores == sorted(scores, reverse=True)
    flat = torch.full((1, 1, 16, 24), 0.5)
    assert torch.allclose(code_intra(flat, 1.0), flat, atol=1 / 255)


def test_gradient_passes_straight_through_per_pixel():
    y = texture().requires_grad_(True)
    code_intra(y, 0.3).sum().backward()
    assert torch.allclose(y.grad, torch.ones_like(y), atol=1e-4)


def test_one_strength_per_sample():
    y = torch.cat([texture(seed=1), texture(seed=1)])
    out = code_intra(y, torch.tensor([0.01, 1.0]))
    assert psnr(out[:1], y[:1]) > psnr(out[1:], y[1:]) + 10
