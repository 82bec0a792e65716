"""Compact delivery weights: modulation codes that fold into plain weights exactly, files that cost
a few hundred bytes, deltas that cost less, a strict reader, and the rule that decides what ships."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zstandard

from vsr_pipe.delivery.compact import CompactWeightsError, decode, encode, kind_of
from vsr_pipe.delivery.fit import ChunkResult
from vsr_pipe.delivery.title import decide_chunks, decide_title, pays, title_frames
from vsr_pipe.models.correction import CorrectionNet
from vsr_pipe.models.modulation import ModulatedCorrection, TitleCodes, code_shapes, fold, modulated


def _net(features=8, blocks=2) -> CorrectionNet:
    torch.manual_seed(0)
    net = CorrectionNet(2, features, blocks)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return net


def _codes(net, seed=1, spread=60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.integers(-spread, spread, s).astype(np.int8) for k, s in code_shapes(net).items()}


def test_training_titles_codes_steer_each_sample_as_the_client_folds_them_and_none_leave_the_correction_as_shipped():
    """The trainer's joint codes (``--title-codes``): a sample of title t sees exactly the network a
    client folds from t's codes; a sample with none (-1) sees the plain correction."""
    net = _net()
    titles = TitleCodes(net, 3)
    with torch.no_grad():
        for rows in titles.rows.values():
            rows.copy_(torch.randn_like(rows) * 20)
    x, y = torch.rand(3, 1, 10, 12), torch.rand(3, 1, 20, 24)
    index = torch.tensor([2, -1, 0])
    out = modulated(net, x, y, titles(index).__getitem__)
    assert torch.allclose(out[1:2], net(x[1:2], y[1:2]), atol=1e-6)
    for k, t in ((0, 2), (2, 0)):
        codes = {n: v[k].detach().round().to(torch.int8) for n, v in titles(torch.tensor([t] * 3)).items()}
        folded = CorrectionNet(2, 8, 2)
        folded.load_state_dict(fold(net, codes))
        assert torch.allclose(out[k : k + 1], folded(x[k : k + 1], y[k : k + 1]), atol=1e-5)
    out.sum().backward()  # the codes learn (straight through the rounding); a title no sample drew does not move
    grads = [r.grad for r in titles.rows.values()]
    assert all(g is not None and g[1].abs().sum() == 0 and g[2].abs().sum() > 0 for g in grads)


def test_codes_fold_into_the_plain_correction_exactly():
    net, codes = _net(), _codes(_net())
    x, y = torch.rand(2, 1, 10, 12), torch.rand(2, 1, 20, 24)
    modulated = ModulatedCorrection(net, {k: torch.from_numpy(v) for k, v in codes.items()})
    folded = CorrectionNet(2, 8, 2)
    folded.load_state_dict(fold(net, {k: torch.from_numpy(v) for k, v in codes.items()}))
    assert torch.allclose(modulated(x, y), folded(x, y), atol=1e-5)
    assert all(np.array_equal(v.numpy(), codes[k]) for k, v in modulated.codes().items())


def test_a_coarser_code_grid_gives_multiples_of_it_and_smaller_files():
    net = CorrectionNet(2, 16, 4)
    raw = {k: torch.from_numpy(v.astype(np.float32) + 0.3) for k, v in _codes(net, spread=40).items()}
    fine, coarse = ModulatedCorrection(net, raw).codes(), ModulatedCorrection(net, raw, grid=4).codes()
    assert all((v.int() % 4 == 0).all() for v in coarse.values())
    assert all((v.int() - fine[k].int()).abs().max() <= 2 for k, v in coarse.items())
    top = ModulatedCorrection(net, {k: torch.full_like(v, 127.0) for k, v in raw.items()}, grid=8).codes()
    assert all((v == 120).all() for v in top.values())  # the largest multiple of 8 an int8 holds
    size = {g: len(encode({k: v.numpy() for k, v in c.items()})) for g, c in ((1, fine), (4, coarse))}
    assert size[4] < 0.8 * size[1]


def test_zero_codes_leave_the_correction_as_it_was():
    net = _net()
    zero = {k: torch.zeros(s, dtype=torch.int8) for k, s in code_shapes(net).items()}
    for k, v in fold(net, zero).items():
        assert torch.equal(v, net.state_dict()[k])


def test_a_32x4_title_file_is_under_a_kilobyte_and_a_small_delta_far_less():
    net = CorrectionNet(2, 32, 4)
    codes = _codes(net, spread=20)
    title = encode(codes)
    assert sum(np.prod(s) for s in code_shapes(net).values()) == 584
    assert len(title) < 700
    nudged = {k: v.copy() for k, v in codes.items()}
    nudged["tail.shift"][:2] += 3
    delta = encode(nudged, codes)
    assert len(delta) < len(title) / 2
    assert kind_of(title) == "absolute" and kind_of(delta) == "delta"
    shapes = code_shapes(net)
    back = decode(delta, shapes, decode(title, shapes, None, "t"), "d")
    assert all(np.array_equal(back[k], nudged[k]) for k in codes)


def test_a_delta_wraps_modulo_256_and_still_decodes_exactly():
    net = _net()
    a = {k: np.full(s, -120, np.int8) for k, s in code_shapes(net).items()}
    b = {k: np.full(s, 120, np.int8) for k, s in code_shapes(net).items()}
    back = decode(encode(b, a), code_shapes(net), a, "d")
    assert all(np.array_equal(back[k], b[k]) for k in b)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-3], "damaged|not a zstd"),
        (lambda data: b"\x00" * 16, "not a zstd"),
        (lambda data: zstandard.ZstdCompressor().compress(b"\x00" * (2 << 20)), "uncompressed"),
        (lambda data: zstandard.ZstdCompressor().compress(b"not safetensors at all"), "safetensors"),
    ],
)
def test_damaged_or_hostile_files_are_one_clear_error(damage, message):
    net = _net()
    data = damage(encode(_codes(net)))
    with pytest.raises(CompactWeightsError, match=message):
        decode(data, code_shapes(net), None, "chunk_0001.mod")


def test_codes_for_another_correction_are_refused():
    data = encode(_codes(_net(8, 2)))
    with pytest.raises(CompactWeightsError, match="not this correction's"):
        decode(data, code_shapes(CorrectionNet(2, 8, 3)), None, "x")
    with pytest.raises(CompactWeightsError, match="not this correction's"):
        decode(data, code_shapes(CorrectionNet(2, 16, 2)), None, "x")


def test_a_delta_needs_the_codes_before_it():
    net = _net()
    with pytest.raises(CompactWeightsError, match="no weights before"):
        decode(encode(_codes(net), _codes(net, 2)), code_shapes(net), None, "x")


def test_weights_pay_only_where_the_lr_could_not_buy_the_same_for_the_bytes():
    assert not pays(0.0, 100, 10_000)
    assert not pays(-0.5, 100, 10_000)
    # 0.3 dB at 3 dB per doubling is 2^0.1 - 1 = 7.2% more LR: 720 bytes of 10 kB.
    assert pays(0.3, 700, 10_000) and not pays(0.3, 740, 10_000)


def _result(index, codes, start_psnr, tuned_psnr):
    tensors = {"mod." + k: v for k, v in codes.items()}
    return ChunkResult(index, tensors, (), tuple(start_psnr), tuple(tuned_psnr), 1, 0.0, tuple(start_psnr))


def test_chunks_that_do_not_pay_ship_nothing_and_play_with_the_title_codes():
    net = CorrectionNet(2, 32, 4)
    title = _codes(net, 1, 10)
    gainful, useless = _codes(net, 2, 10), _codes(net, 3, 10)
    results = [_result(0, gainful, [30.0] * 4, [31.0] * 4), _result(1, useless, [30.0] * 4, [30.01] * 4)]
    files, effective, decisions = decide_chunks(title, results, [50_000, 50_000])
    assert files[0] is not None and files[1] is None
    assert effective[1] is title and all(np.array_equal(effective[0][k], gainful[k]) for k in gainful)
    assert decisions[0].ships and not decisions[1].ships


def test_a_title_whose_fit_gained_nothing_ships_no_file():
    net = CorrectionNet(2, 32, 4)
    data, codes, decision = decide_title(_result(0, _codes(net), [30.0], [30.0]), 100_000)
    assert data is None and not decision.ships and all(not v.any() for v in codes.values())


def test_title_frames_spread_over_the_whole_title():
    assert title_frames(10, 48) == list(range(10))
    picked = title_frames(1000, 48)
    assert len(picked) == 48 and picked[0] == 0 and picked[-1] == 999
