"""The codec round trip the rate–distortion bench and the codec-aware training share: real x264/x265
encodes in memory, bytes counted, frames decoded as a client would."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vsr_pipe.io.codec_roundtrip import code_frames, gray_frames
from vsr_pipe.train.codec_pairs import PanSettings, coded_pairs


def _texture(h=64, w=96, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + 60 * np.sin(np.arange(w)[None] / 3) + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_a_coded_clip_counts_its_bytes_and_decodes_every_frame(codec):
    frames = gray_frames([np.roll(_texture(), k, axis=1) for k in range(6)])
    fine, coarse = code_frames(frames, codec, 18), code_frames(frames, codec, 45)
    assert len(fine.planes) == 6 and fine.luma[0].shape == (64, 96) and fine.planes[0][1].shape == (32, 48)
    assert fine.bytes > coarse.bytes > 0
    error = [np.mean(np.abs(a.astype(int) - b[0].astype(int))) for a, b in zip(fine.luma, frames)]
    assert max(error) < 4


def test_pans_over_images_give_aligned_coded_pairs(tmp_path):
    for k in range(2):
        Image.fromarray(np.stack([_texture(160, 200, k)] * 3, -1)).save(tmp_path / f"{k}.png")
    settings = PanSettings(scale=2, lr_size=(24, 32), frames=4, pans_per_image=2)
    pairs = coded_pairs([tmp_path], settings, seed=1, log=None)
    assert pairs.lr.shape == (16, 24, 32) and pairs.hr.shape == (16, 48, 64)
    assert pairs.lr.dtype == np.uint8 and ((18 <= pairs.crf) & (pairs.crf <= 48)).all()
    # the LR is the HR downscaled (then coded): close to its 2x2 block means
    means = pairs.hr.reshape(16, 24, 2, 32, 2).mean(axis=(2, 4))
    assert np.mean(np.abs(means - pairs.lr)) < 12


def test_windows_of_a_real_clip_are_consecutive_frames_coded_as_pans_are():
    from vsr_pipe.train.codec_pairs import clip_pairs

    clip = np.stack([np.roll(_texture(80, 120), 2 * t, axis=1) for t in range(10)])  # moves 2 px a frame
    settings = PanSettings(scale=2, lr_size=(24, 32), frames=4)
    pairs = clip_pairs([clip], settings, windows=3, seed=2)
    assert pairs.lr.shape == (12, 24, 32) and pairs.hr.shape == (12, 48, 64)
    for w in range(3):  # each window: four consecutive frames of the clip, cut at one place
        hr = pairs.hr[4 * w : 4 * w + 4]
        assert all(np.array_equal(np.roll(hr[k], 2, axis=1)[:, 2:], hr[k + 1][:, 2:]) for k in range(3))
        assert len(set(pairs.crf[4 * w : 4 * w + 4])) == 1
    means = pairs.hr.reshape(12, 24, 2, 32, 2).mean(axis=(2, 4))
    assert np.mean(np.abs(means - pairs.lr)) < 12
    with pytest.raises(ValueError, match="no clip has 4 frames of at least 64x48"):
        clip_pairs([clip[:, :40]], settings, windows=1)
