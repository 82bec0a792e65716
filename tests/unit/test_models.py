import torch

from vsr_pipe.models.espcn import ESPCN
from vsr_pipe.models.resample import resize_planes
from vsr_pipe.models.scale_aware import ScaleAwareESPCN


def test_espcn_shapes_and_parameter_counts_match_the_paper():
    for scale, params in ((2, 21_284), (3, 22_729), (4, 24_752)):
        m = ESPCN(scale)
        assert sum(p.numel() for p in m.parameters()) == params
        assert m(torch.rand(2, 1, 9, 11)).shape == (2, 1, 9 * scale, 11 * scale)


def test_espcn_residual_starts_as_nearest_neighbour_upscale():
    torch.manual_seed(0)
    m = ESPCN(2)
    torch.nn.init.zeros_(m.conv_last.weight)
    x = torch.rand(1, 1, 5, 6)
    assert torch.allclose(m(x), x.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_scale_aware_head_takes_any_size_and_starts_as_bicubic():
    m = ScaleAwareESPCN()
    x = torch.rand(1, 1, 20, 30)
    for out_h, out_w in ((30, 45), (50, 75), (31, 60)):
        y = m(x, out_h, out_w)
        assert y.shape == (1, 1, out_h, out_w)
        bicubic = resize_planes(x, out_h, out_w, out_h / 20, out_w / 30, "bicubic")
        assert torch.allclose(y, bicubic, atol=1e-6)  # zero-initialised head: residual is 0
