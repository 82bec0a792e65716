import pytest
import torch

from vsr_pipe.engines.tiling import run_tiled
from vsr_pipe.models.espcn import ESPCN


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("tile", [16, 23, 40])
def test_tiled_output_equals_untiled_for_a_halo_at_least_the_receptive_radius(scale, tile):
    torch.manual_seed(0)
    model = ESPCN(scale).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    x = torch.rand(2, 1, 57, 83)
    with torch.no_grad():
        whole = model(x)
        tiled = run_tiled(model, x, tile, model.receptive_radius, scale)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() <= 1e-5


def test_too_small_a_halo_shows_seams():
    torch.manual_seed(0)
    model = ESPCN(2).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        assert (run_tiled(model, x, 16, 1, 2) - model(x)).abs().max().item() > 1e-3
