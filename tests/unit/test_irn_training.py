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


def test_cycle_loss_is_zero_where_nothing_is_resampled_and_pulls_elsewhere():
    import torch

    from vsr_pipe.models.rescaler import ArbitraryRescaler, RescaleGeometry
    from vsr_pipe.train.irn import rescale_losses

    torch.manual_seed(0)
    model = ArbitraryRescaler((1, 1), growth=4, convs=2)
    with torch.no_grad():  # a coupling that is not the identity, so the inner frame leaves E's range
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hr = torch.rand(2, 1, 24, 24)
    assert "cycle" not in rescale_losses(model, hr, RescaleGeometry((24, 24), (12, 12)), 0.0)
    losses = rescale_losses(model, hr, RescaleGeometry((24, 24), (16, 16)), 0.0)
    assert losses["cycle"].item() > 0
    losses["cycle"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_warm_start_from_weights_without_the_whole_factor_maps_computes_the_same(tmp_path):
    import torch

    from vsr_pipe.models.rescaler import LEGACY_COND_CHANNELS, ArbitraryRescaler, RescaleGeometry
    from vsr_pipe.train.irn import warm_start
    from vsr_pipe.weights.store import save_model

    torch.manual_seed(0)
    old = ArbitraryRescaler((1, 1), growth=4, convs=2, cond_channels=LEGACY_COND_CHANNELS)
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(old, tmp_path / "old.safetensors")
    new = ArbitraryRescaler((1, 1), growth=4, convs=2)
    warm_start(new, tmp_path / "old.safetensors")
    g = RescaleGeometry.for_factor(30, 42, 2.6, 1.7)
    t = g.tensors()
    hr = torch.rand(1, 1, *g.hr)
    with torch.no_grad():
        assert torch.allclose(
            new.down(hr, t.up_rows, t.up_cols, t.conds)[0], old.down(hr, t.up_rows, t.up_cols, t.conds)[0]
        )


def test_warm_start_from_other_weights_is_a_weights_error():
    from vsr_pipe.errors import WeightsError
    from vsr_pipe.models.rescaler import ArbitraryRescaler
    from vsr_pipe.train.irn import warm_start
    from vsr_pipe.weights.store import shipped_path

    with pytest.raises(WeightsError, match="not a rescaler"):
        warm_start(ArbitraryRescaler(), shipped_path("espcn_y_x2"))


def test_the_command_line_passes_only_what_it_was_given(images, tmp_path):
    """Options left out keep `IrnTrainConfig`'s defaults, the one place they live (README: 30k steps,
    batch 16, patch 16, Adam 5e-4, cycle weight 10, z temperature 0)."""
    from click.testing import CliRunner

    from vsr_pipe.cli import main
    from vsr_pipe.train.checkpoint import read_info
    from vsr_pipe.train.config import from_saved

    data = tmp_path / "data"
    data.mkdir()
    for sub in ("T91", "BSD200", "Set5"):
        (data / sub).symlink_to(images, target_is_directory=True)
    defaults = IrnTrainConfig(train_dirs=(), val_dir=None, out_dir="")
    assert (defaults.steps, defaults.batch, defaults.lr_patch, defaults.learning_rate) == (30_000, 16, 16, 5e-4)
    assert (defaults.cycle_weight, defaults.final_temperature, defaults.codec_share) == (10.0, 0.0, 0.0)

    args = ["train", "--model", "irn", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
            "--batch", "2", "--patch", "8", "--cycle-weight", "3", "--no-export"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    saved = from_saved(IrnTrainConfig, read_info(tmp_path / "run" / "checkpoint.safetensors")["config"])
    given = {"steps": 1, "batch": 2, "lr_patch": 8, "cycle_weight": 3.0}
    assert {k: getattr(saved, k) for k in given} == given
    assert saved.learning_rate == defaults.learning_rate and saved.final_temperature == defaults.final_temperature
    assert saved.threads == defaults.threads and saved.blocks == defaults.blocks
