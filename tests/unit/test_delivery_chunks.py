"""Chunks by content: scene cuts, the maximum length, the cap; and the per-chunk fit as a pure task."""

from __future__ import annotations

import numpy as np

from vsr_pipe.delivery.chunks import ChunkRules, difficulty, scene_scores, split_chunks, thumbnail
from vsr_pipe.delivery.fit import PREFIX, BaseModel, ChunkTask, FitSettings, fit_chunk
from vsr_pipe.delivery.package import expected_tensors


def starts(spans) -> list[int]:
    return [s.first for s in spans]


def test_scene_cuts_start_chunks_and_long_scenes_are_cut_evenly():
    pts = [i * 3000 for i in range(100)]
    scores = [1.0] * 100
    scores[30] = scores[70] = 40.0  # two cuts
    spans = split_chunks(pts, scores, ChunkRules(max_frames=1000))
    assert starts(spans) == [0, 30, 70]
    assert [(s.first_pts, s.last_pts) for s in spans] == [
        (0, 29 * 3000),
        (30 * 3000, 69 * 3000),
        (70 * 3000, 99 * 3000),
    ]
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=20))) == [0, 15, 30, 50, 70, 85]


def test_cuts_too_close_or_too_weak_are_ignored_and_the_cap_keeps_the_strongest():
    pts = list(range(60))
    scores = [2.0] * 60
    scores[10], scores[12], scores[40], scores[57] = (
        30.0,
        50.0,
        5.0,
        60.0,
    )  # 12: too close; 40: weak; 57: tail too short
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000, min_frames=8))) == [0, 10]
    scores = [1.0] * 60
    scores[20], scores[40] = 20.0, 90.0
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000, cap=2))) == [0, 40]
    assert len(split_chunks(pts, [0.0] * 60, ChunkRules(max_frames=7, cap=3))) == 3
    assert split_chunks([], []) == []


def test_scene_scores_see_a_cut_not_noise():
    rng = np.random.default_rng(0)
    a = rng.integers(40, 60, (96, 160), dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    b = 255 - a
    scores = scene_scores([thumbnail(a), thumbnail(noisy), thumbnail(b)])
    assert scores[0] == 0 and scores[1] < 1 and scores[2] > 100


def test_fit_chunk_is_a_pure_task_returning_fp16_correction_tensors():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (3, 32, 48), dtype=np.uint8)
    lr = hr[:, ::2, ::2].copy()
    task = ChunkTask(
        0, lr, hr, BaseModel("espcn", "espcn_y_x2", 2), FitSettings(steps=3, features=4, blocks=1, batch=2, patch=8)
    )
    first, again = fit_chunk(task), fit_chunk(task)
    want = expected_tensors(2, 4, 1)
    assert {k: v.shape for k, v in first.tensors.items()} == want
    assert all(k.startswith(PREFIX) and v.dtype == np.float16 for k, v in first.tensors.items())
    assert first.steps == 3 and len(first.generic_psnr) == len(first.tuned_psnr) == 3
    assert np.mean(first.tuned_psnr) >= np.mean(first.generic_psnr)  # never worse than the generic model
    assert all(np.array_equal(first.tensors[k], again.tensors[k]) for k in want)  # same inputs and seed, same weights


def test_fitting_tasks_ask_ray_for_a_gpu_when_the_fit_runs_on_one():
    from vsr_pipe.delivery.fit import FitSettings
    from vsr_pipe.delivery.server import _fit_resources
    from vsr_pipe.runners import RayRunner

    ray = RayRunner("auto")  # not connected: a CUDA device decides without asking the cluster
    assert _fit_resources(ray, FitSettings(device="cuda")).num_gpus == 1
    assert _fit_resources(ray, FitSettings(device="cpu")).num_gpus == 0
    assert _fit_resources(None, FitSettings(device="cuda")).num_gpus == 0  # in process: nothing to ask


def test_a_fitted_chunk_is_cached_under_a_key_of_everything_the_fit_depends_on(tmp_path):
    from dataclasses import replace

    from vsr_pipe.delivery.resume import ChunkCache, task_key

    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (2, 32, 48), dtype=np.uint8)
    tiny = FitSettings(steps=2, features=4, blocks=1, batch=2, patch=8)
    task = ChunkTask(1, hr[:, ::2, ::2].copy(), hr, BaseModel("espcn", "espcn_y_x2", 2), tiny)
    key = task_key(task)
    assert task_key(replace(task, settings=replace(task.settings, threads=3))) == key  # speed only
    lr = task.lr.copy()
    lr[0, 0, 0] ^= 1
    changed = [replace(task, lr=lr), replace(task, index=2), replace(task, settings=replace(task.settings, seed=1)),
               replace(task, base=BaseModel("espcn", "espcn_y_x2", 2, (32, 48), (16, 24)))]  # fmt: skip
    assert len({key, *map(task_key, changed)}) == 5
    cache = ChunkCache(tmp_path / ".t.chunks")
    assert cache.load(key) is None
    result = fit_chunk(task)
    cache.save(key, result)
    back = cache.load(key)
    assert back is not None and (back.index, back.steps) == (1, 2)
    assert (back.losses, back.generic_psnr, back.tuned_psnr) == (result.losses, result.generic_psnr, result.tuned_psnr)
    assert all(np.array_equal(back.tensors[k], v) for k, v in result.tensors.items())
    assert sorted(p.suffix for p in (tmp_path / ".t.chunks").iterdir()) == [".json", ".safetensors"]  # never a pickle
    (tmp_path / ".t.chunks" / f"{key}.safetensors").write_bytes(b"damaged")
    assert cache.load(key) is None  # fitted again rather than trusted
    cache.remove()
    assert not (tmp_path / ".t.chunks").exists()


def test_a_change_of_difficulty_inside_a_scene_starts_a_chunk():
    pts, scores = list(range(100)), [1.0] * 100  # one scene, no cut
    harder_from_40 = [36.0] * 40 + [30.0] * 60
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000), harder_from_40)) == [0, 40]
    slight = [36.0] * 40 + [34.0] * 60  # 2 dB: below the 3 dB jump
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000), slight)) == [0]
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000, jump_db=0), harder_from_40)) == [0]
    wobble = [30.0 + 6 * (i % 2) for i in range(100)]  # frame to frame noise averages out over the windows
    assert starts(split_chunks(pts, scores, ChunkRules(max_frames=1000), wobble)) == [0]


def test_difficulty_is_the_detail_a_downscale_removes():
    smooth = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    busy = ((np.indices((48, 64)).sum(axis=0) % 2) * 200).astype(np.uint8)
    assert difficulty(np.full((48, 64), 90, np.uint8), 2) == float("inf")
    assert difficulty(busy, 2) < difficulty(smooth, 2)
    assert (
        abs(difficulty(smooth.astype(np.uint16) * 4, 2) - difficulty(smooth, 2)) < 0.05
    )  # 10-bit alike (1023 vs 4·255)
