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


def test_a_wall_clock_budget_stops_the_run_with_a_checkpoint_to_resume_from(images, tmp_path):
    from vsr_pipe.train.checkpoint import read_info

    logs: list[str] = []
    cfg = IrnTrainConfig(train_dirs=(str(images),), val_dir=None, out_dir=str(tmp_path / "run"), steps=10_000,
                         batch=2, lr_patch=8, blocks=(1, 1), growth=4, convs=2, device="cpu", max_seconds=0.5,
                         checkpoint_every=100_000)  # fmt: skip
    ckpt = train(cfg, log=logs.append)
    step = read_info(ckpt)["step"]
    assert 0 < step < 10_000 and any("wall-clock" in m for m in logs)


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


@pytest.mark.parametrize(
    "model, args, given",
    [
        (
            "irn",
            ["--steps", "1", "--patch", "8", "--cycle-weight", "3"],
            {"steps": 1, "lr_patch": 8, "cycle_weight": 3.0},
        ),
        ("irn", ["--z-temperature", "0.5", "--batch", "2"], {"final_temperature": 0.5, "batch": 2}),
        ("espcn", ["--scale", "3", "--learning-rate", "0.01"], {"scale": 3, "learning_rate": 0.01}),
    ],
)
def test_the_command_line_passes_only_what_it_was_given(images, tmp_path, monkeypatch, model, args, given):
    """Options left out keep the config dataclass's defaults, the one place they live."""
    from dataclasses import fields

    from click.testing import CliRunner

    import vsr_pipe.train.espcn
    import vsr_pipe.train.irn
    from vsr_pipe.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for sub in ("T91", "BSD200", "Set5"):
        (data / sub).symlink_to(images, target_is_directory=True)
    seen = []
    module = vsr_pipe.train.irn if model == "irn" else vsr_pipe.train.espcn
    monkeypatch.setattr(module, "train", lambda cfg, log: seen.append(cfg) or tmp_path / "ckpt")
    result = CliRunner().invoke(main, ["train", "--model", model, "--data", str(data), *args, "--no-export"])
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert {k: getattr(cfg, k) for k in given} == given
    run_fields = {"scale", "train_dirs", "val_dir", "out_dir", "luma"}
    left_out = [f for f in fields(cfg) if f.name not in given and f.name not in run_fields]
    assert left_out and all(getattr(cfg, f.name) == f.default for f in left_out)


def test_the_irn_defaults_are_the_readme_s():
    """README: 30,000 steps, batch 16, patch 16, Adam 5e-4, cycle weight 10, z temperature 0."""
    d = IrnTrainConfig(train_dirs=(), val_dir=None, out_dir="")
    assert (d.steps, d.batch, d.lr_patch, d.learning_rate, d.cycle_weight, d.final_temperature) == (
        30_000, 16, 16, 5e-4, 10.0, 0.0
    )  # fmt: skip
