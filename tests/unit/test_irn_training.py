"""`train --model irn`'s loop on a few generated images: runs, checkpoints, resumes, codes the LR."""

from __future__ import annotations

import numpy as np
import pytest

from vsr_pipe.train.irn import IrnTrainConfig, train


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        base = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
        Image.fromarray(base).resize((72, 64), Image.BICUBIC).save(folder / f"{i}.png")
    return folder


def test_training_checkpoints_and_resumes_with_the_codec_stand_in(images, tmp_path):
    logs: list[str] = []
    cfg = IrnTrainConfig(train_dirs=(str(images),), val_dir=None, out_dir=str(tmp_path / "run"), steps=2, batch=2,
                         lr_patch=8, blocks=(1, 1), growth=4, convs=2, codec_share=1.0, checkpoint_every=1)  # fmt: skip
    ckpt = train(cfg, log=logs.append)
    assert ckpt.exists()
    train(IrnTrainConfig(**{**cfg.__dict__, "steps": 3}), log=logs.append)
    assert any("resumed" in m and "step 2" in m for m in logs)
