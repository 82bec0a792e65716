"""The arbitrary-scale invertible rescaler: exact inverse, sizes at the edges, export, weights, tag."""

from __future__ import annotations

import pytest
import torch

from vsr_pipe.errors import WeightsError
from vsr_pipe.io.tags import RescaleTag, find_tag, without_tag
from vsr_pipe.models.rescaler import ArbitraryRescaler, BoundDown, BoundUp, RescaleGeometry, quantise_8bit
from vsr_pipe.weights.store import architecture_header, load_model, save_model


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = ArbitraryRescaler(blocks=(2, 2))
    for p in model.parameters():  # leave the identity start, so the couplings really mix
        p.data.add_(torch.randn_like(p) * 0.05)
    return model.eval()


CASES = [
    ((40, 40), (1.0, 1.0)),  # no change of size
    ((48, 64), (2.0, 2.0)),
    ((45, 61), (1.5, 1.5)),  # odd sizes, non-integer
    ((47, 66), (2.0, 1.5)),  # asymmetric
    ((50, 50), (3.3, 2.7)),
    ((48, 64), (4.0, 4.0)),
    ((97, 130), (3.1, 4.0)),  # rounding would push the factor past 4
]


@pytest.mark.parametrize("hr, factor", CASES)
def test_inverse_of_forward_with_the_true_latent_gives_back_the_input(net, hr, factor):
    g = RescaleGeometry.for_factor(*hr, *factor)
    assert 1 <= g.factor_y <= 4 and 1 <= g.factor_x <= 4
    t = g.tensors()
    x = torch.rand(2, 1, *hr)
    with torch.no_grad():
        lr, z = net.down(x, t.up_rows, t.up_cols, t.conds)
        assert lr.shape == (2, 1, *g.lr)
        assert z.shape == (2, 4**g.levels - 1, *g.lr)
        back = net.up(lr, z, t.inv_rows, t.inv_cols, t.conds)
    assert back.shape == x.shape
    assert (back - x).abs().max().item() <= 1e-4


def test_levels_follow_the_factor_and_factors_past_four_are_refused():
    assert RescaleGeometry((64, 64), (32, 32)).levels == 1
    assert RescaleGeometry((64, 64), (31, 32)).levels == 2
    assert RescaleGeometry((64, 64), (16, 16)).levels == 2
    with pytest.raises(ValueError, match="outside"):
        _ = RescaleGeometry((64, 64), (15, 16)).levels
    with pytest.raises(ValueError, match="outside"):
        _ = RescaleGeometry((64, 64), (65, 64)).levels


def test_conditioning_maps_carry_phase_and_ratio():
    g = RescaleGeometry((45, 60), (30, 40))
    (cond,) = g.tensors().conds
    assert cond.shape == (1, 8, 30, 40)
    ratio_y = cond[0, 2].unique()
    assert ratio_y.numel() == 1 and abs(ratio_y.item() - 0.5 * torch.log2(torch.tensor(1.5)).item()) < 1e-6
    # At x1.5 the sub-pixel phase cycles through 3 values along each axis.
    assert cond[0, 0, :, 0].unique().numel() in (2, 3)


def test_first_level_knows_whether_it_is_the_last():
    """x2 and the first of x4's two levels see the same grid ratio; the whole factor tells them apart."""
    (only,) = RescaleGeometry((64, 64), (32, 32)).tensors().conds
    first, _ = RescaleGeometry((64, 64), (16, 16)).tensors().conds
    assert torch.equal(only[:, :6], first[:, :6])
    assert only[0, 6:].unique().tolist() == [0.5] and first[0, 6:].unique().tolist() == [1.0]


def test_bound_directions_match_the_free_ones(net):
    g = RescaleGeometry.for_factor(45, 61, 1.5, 1.5)
    x = torch.rand(1, 1, *g.hr)
    t = g.tensors()
    with torch.no_grad():
        assert torch.allclose(BoundDown(net, g)(x), net.down(x, t.up_rows, t.up_cols, t.conds)[0])
        torch.manual_seed(3)
        up = BoundUp(net, g)(torch.rand(2, 1, *g.lr))
    assert up.shape == (2, 1, *g.hr)


def test_quantise_rounds_to_8_bit_codes_and_passes_the_gradient():
    x = torch.tensor([-0.2, 0.5004, 1.3], requires_grad=True)
    q = quantise_8bit(x)
    assert torch.allclose(q, torch.tensor([0.0, 128 / 255, 1.0]))
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


@pytest.mark.slow  # moved from the fast tier: it must stay under two minutes
def test_onnx_graphs_match_pytorch(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from vsr_pipe.engines.onnx_export import export_rescaler

    for levels, hr, factor in ((1, (45, 61), (1.5, 1.9)), (2, (50, 66), (2.5, 3.7))):
        down_path, up_path = export_rescaler(net, levels, tmp_path / f"irn{levels}")
        g = RescaleGeometry.for_factor(*hr, *factor)
        assert g.levels == levels
        t = g.tensors()
        x = torch.rand(2, 1, *hr)
        with torch.no_grad():
            lr, z = net.down(x, t.up_rows, t.up_cols, t.conds)
            hr_torch = net.up(lr, z, t.inv_rows, t.inv_cols, t.conds)
        conds = {f"cond{i}": c.numpy() for i, c in enumerate(t.conds)}
        down = ort.InferenceSession(str(down_path), providers=["CPUExecutionProvider"])
        up = ort.InferenceSession(str(up_path), providers=["CPUExecutionProvider"])
        lr_onnx = down.run(
            None, {"hr": x.numpy(), "up_rows": t.up_rows.numpy(), "up_cols": t.up_cols.numpy(), **conds}
        )[0]
        hr_onnx = up.run(None, {"lr": lr.numpy(), "z": z.numpy(), "inv_rows": t.inv_rows.numpy(),
                                "inv_cols": t.inv_cols.numpy(), **conds})[0]  # fmt: skip
        assert abs(lr_onnx - lr.numpy()).max() <= 1e-4
        assert abs(hr_onnx - hr_torch.numpy()).max() <= 1e-4


def test_weights_round_trip_and_a_wrong_header_is_one_clear_error(net, tmp_path):
    path = tmp_path / "irn.safetensors"
    save_model(net, path)
    back = load_model(path)
    assert isinstance(back, ArbitraryRescaler) and back.blocks == (2, 2)
    for name, p in net.state_dict().items():
        assert torch.equal(back.state_dict()[name], p)
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"),
              metadata={"architecture": "irn_arbitrary", "blocks": "2", "growth": "16", "convs": "3"})  # fmt: skip
    with pytest.raises(WeightsError, match="malformed"):
        load_model(tmp_path / "bad.safetensors")
    save_file(load_file(str(path)), str(tmp_path / "shape.safetensors"),
              metadata={"architecture": "irn_arbitrary", "blocks": "3,2", "growth": "16", "convs": "3"})  # fmt: skip
    with pytest.raises(WeightsError, match="does not fit"):
        load_model(tmp_path / "shape.safetensors")
    # Weights from before the whole-factor maps have no cond_channels: they read the first six.
    save_file(load_file(str(path)), str(tmp_path / "legacy.safetensors"),
              metadata={"architecture": "irn_arbitrary", "blocks": "2,2", "growth": "16", "convs": "3"})  # fmt: skip
    with pytest.raises(WeightsError, match="does not fit"):  # net reads eight
        load_model(tmp_path / "legacy.safetensors")
    save_file(load_file(str(path)), str(tmp_path / "cond.safetensors"),
              metadata={**architecture_header(net), "cond_channels": "7"})  # fmt: skip
    with pytest.raises(WeightsError, match="cond_channels 7"):
        load_model(tmp_path / "cond.safetensors")


def test_rescaling_tag_round_trip():
    tag = RescaleTag("irn_y", "3f2a9c01d2e4", (1280, 720), (853, 480))
    text = tag.format()
    assert "factor=1.50059x1.5" in text
    assert RescaleTag.parse(text) == tag
    assert find_tag({"VSR_PIPE_RESCALE": text, "title": "t"}) == tag  # Matroska upper-cases names
    assert find_tag({"title": "t"}) is None
    assert without_tag({"vsr_pipe_rescale": text, "title": "t"}) == {"title": "t"}
    for broken in ("", "model=irn_y", "model=irn_y;hr=1x2;lr=0x1", "hr=axb;lr=1x1;model=m"):
        assert RescaleTag.parse(broken) is None
