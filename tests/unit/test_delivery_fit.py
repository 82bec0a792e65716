"""Per-chunk fitting: patches are drawn where the generic model is wrong, and a watcher can end a fit."""

from __future__ import annotations

import numpy as np
import torch

from vsr_pipe.delivery.fit import BaseModel, ChunkTask, FitSettings, fit_chunk, patch_sampler


def test_patches_are_drawn_where_the_generic_output_is_wrong():
    y, hr = torch.zeros(3, 1, 80, 120), torch.zeros(3, 1, 80, 120)
    hr[1, :, 40:60, 80:100] = 1  # the only error: frame 1, LR rows 20-30, columns 40-50
    frames, tops, lefts = patch_sampler(y, hr, 2, 16, 0.25, np.random.default_rng(0))(2000)
    covers = (frames == 1) & (tops <= 29) & (tops + 16 > 20) & (lefts <= 49) & (lefts + 16 > 40)
    assert covers.mean() > 0.7  # 3/4 drawn by error, every one of them over the error
    assert tops.max() <= 40 - 16 and lefts.max() <= 60 - 16  # patches stay inside the frame
    uniform = patch_sampler(y, hr, 2, 16, 1.0, np.random.default_rng(0))(2000)[0]
    assert 0.25 < (uniform == 1).mean() < 0.42


def test_without_any_error_sampling_is_uniform():
    y = torch.zeros(2, 1, 40, 40)
    frames, tops, lefts = patch_sampler(y, y.clone(), 2, 8, 0.25, np.random.default_rng(1))(500)
    assert set(frames) == {0, 1} and tops.max() <= 12 and lefts.max() <= 12


def test_a_watcher_sees_every_step_and_can_end_the_fit():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    lr = hr[:, ::2, ::2].copy()
    seen = []

    def watch(step, seconds, loss, net):
        seen.append((step, loss))
        return step == 3

    settings = FitSettings(steps=50, features=4, blocks=1, batch=2, patch=8)
    result = fit_chunk(ChunkTask(0, lr, hr, BaseModel("espcn", "espcn_y_x2", 2), settings), watch)
    assert [s for s, _ in seen] == [1, 2, 3] and result.steps == 3
