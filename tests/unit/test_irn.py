import torch

from vsr_pipe.models.irn import HaarSplit, InvertibleRescaler


def test_haar_low_band_is_the_2x2_mean_and_inverts_exactly():
    haar = HaarSplit(3)
    x = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    haar = haar.double()
    y = haar(x)
    assert y.shape == (2, 12, 4, 5)
    assert torch.allclose(y[:, :3], torch.nn.functional.avg_pool2d(x, 2))
    assert torch.allclose(haar.inverse(y), x)


def test_rescaler_inverse_of_forward_with_the_true_latent_gives_back_the_input():
    torch.manual_seed(0)
    for levels in (1, 2):
        net = InvertibleRescaler(levels=levels, blocks=2)
        for p in net.parameters():  # leave the identity start: make the couplings do something
            p.data.add_(torch.randn_like(p) * 0.05)
        x = torch.rand(1, 3, 16, 24)
        with torch.no_grad():
            lr, z = net.downscale(x)
            assert lr.shape == (1, 3, 16 // 2**levels, 24 // 2**levels)
            assert z.shape[1] == 3 * (4**levels - 1)
            back = net.upscale(lr, z)
        assert (back - x).abs().max().item() <= 1e-4
