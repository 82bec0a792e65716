import numpy as np
import pytest
import torch

from vsr_pipe.models.matlab_resize import imresize
from vsr_pipe.models.resample import resize_matrix, resize_planes


@pytest.mark.parametrize("scale", [2.0, 3.0, 1.5, 0.5, 0.25])
def test_bicubic_matches_matlab_imresize_away_from_edges(scale):
    x = torch.rand(1, 1, 48, 60, dtype=torch.float64)
    h, w = round(48 * scale), round(60 * scale)
    ours = resize_planes(x, h, w, scale, scale)[0, 0].numpy()
    matlab = imresize(x[0, 0].numpy(), size=(h, w))
    m = int(np.ceil(4 * max(scale, 1 / scale)))
    np.testing.assert_allclose(ours[m:-m, m:-m], matlab[m:-m, m:-m], atol=1e-12)


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos", "bilinear"])
def test_rows_sum_to_one_so_flat_colour_stays_flat(kernel):
    m = resize_matrix(37, 91, 91 / 37, kernel, 2, 2, True)
    np.testing.assert_allclose(m.sum(1).numpy(), 1.0, atol=1e-12)
    flat = torch.full((1, 1, 20, 30), 0.3, dtype=torch.float64)
    out = resize_planes(flat, 45, 71, 45 / 20, 71 / 30, kernel, (2, 2), (2, 2), True)
    assert torch.allclose(out, torch.full_like(out, 0.3))


def test_left_sited_chroma_keeps_an_edge_where_luma_has_it():
    # A step at luma x = 32 appears in left-sited chroma (4:2:0) between samples 15 and 16.
    w = 64
    luma_edge = 32
    chroma = torch.zeros(1, 1, 4, w // 2, dtype=torch.float64)
    chroma[..., luma_edge // 2 :] = 1.0
    up = resize_planes(chroma, 4, w, 1.0, 2.0, "bilinear", (1, 2), (1, 2), left_sited=True)  # 2x wider, still 4:2:0
    # Output chroma j sits on output luma 2j; the edge moves to output luma 64, i.e. chroma 32.
    row = up[0, 0, 0].numpy()
    assert row[30] < 0.5 < row[33]
    assert abs(row[31] + row[32] - 1.0) < 0.3
