"""``vsr-pipe train``: train a model on image folders; export or release its weights."""

from __future__ import annotations

import dataclasses
import json

import click

from ..errors import InvalidOption
from ..train.config import EspcnTrainConfig, IrnTrainConfig, default
from . import options
from .errors import user_errors
from .options import features, model, scale, threads

DEFAULT_DATA = "../shared/data"


def _features(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidOption(f"--features '{text}' is not two channel counts like 16,8") from None
    if not (1 <= a <= 256 and 1 <= b <= 256):
        raise InvalidOption(f"--features {a},{b} is out of range: 1 to 256 channels each")
    return a, b


def _espcn(name: str):  # the defaults the help shows are the config's, never a copy
    return default(EspcnTrainConfig, name)


def _irn(name: str):
    return default(IrnTrainConfig, name)


@click.command()
@model(
    "espcn (one scale per run) or irn (the invertible rescaler, all factors in [1, 4] at once).",
    default="espcn",
    type=click.Choice(["espcn", "irn"]),
)
@scale("espcn: integer factor 2, 3 or 4.", type=click.IntRange(2, 4))
@click.option(
    "--data",
    default=DEFAULT_DATA,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder holding T91/, BSD200/ and Set5/.",
)
@click.option("--out", "out_dir", default=None, help="Run folder (checkpoints); default runs/espcn_y_xS or runs/irn.")
@click.option("--steps", default=None, type=int, help=f"espcn: {_espcn('steps')}; irn: {_irn('steps')}.")
@click.option("--batch", default=None, type=int, help=f"espcn: {_espcn('batch')}; irn: {_irn('batch')}.")
@click.option(
    "--patch",
    "lr_patch",
    default=None,
    type=int,
    help=f"LR patch side; espcn: {_espcn('lr_patch')}; irn: {_irn('lr_patch')}.",
)
@click.option(
    "--z-temperature",
    default=None,
    type=click.FloatRange(0, 1),
    help="irn: scale of the z reconstruction draws in training; 1 is IRN's protocol, 0 what video restores from; "
    f"default {_irn('final_temperature'):g}.",
)
@click.option(
    "--codec-share",
    default=None,
    type=click.FloatRange(0, 1),
    help="irn: share of batches whose LR goes through a differentiable H.264-like intra coder before restoring; "
    f"default {_irn('codec_share'):g}.",
)
@click.option(
    "--init-from",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="irn: start from these weights (e.g. the shipped ones) instead of a fresh initialisation.",
)
@click.option(
    "--learning-rate",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help=f"espcn: {_espcn('learning_rate'):g}; irn: {_irn('learning_rate'):g}.",
)
@click.option(
    "--cycle-weight",
    default=None,
    type=click.FloatRange(min=0),
    help=f"irn: weight of the term that keeps repeated down-up cycles from drifting; default {_irn('cycle_weight'):g}.",
)
@click.option("--rgb", is_flag=True, help="espcn: train on RGB instead of Y.")
@features(
    "espcn: channels of its two hidden layers, e.g. 16,8 for a light model (the live fallback); "
    "default 64,32, the paper's. Weights of other widths are named espcn_y_xS_fAxB."
)
@threads("CPU threads (0: torch's default).")
@click.option(
    "--export/--no-export",
    default=True,
    show_default=True,
    help="Measure the trained weights and write them with a manifest entry into the run folder's export/.",
)
@click.option(
    "--release",
    is_flag=True,
    help="Write the exported weights into the package instead, replacing the shipped ones, and update its manifest.",
)
def train(model, scale, data, out_dir, steps, batch, lr_patch, z_temperature, codec_share, init_from,
          learning_rate, cycle_weight, rgb, features, threads, export, release) -> None:  # fmt: skip
    """Train a model on image folders (resumes from the run folder's checkpoint)."""
    from ..train.data import training_folders

    with user_errors():
        train_dirs, val_dir = training_folders(data)
        if release and not (export and not rgb):
            raise InvalidOption("--release ships Y weights: it needs --export and no --rgb")
        given = options.given(steps=steps, batch=batch, lr_patch=lr_patch, learning_rate=learning_rate, threads=threads)
        log = lambda m: click.echo(m, err=True)  # noqa: E731
        if model == "irn":
            from ..train.irn import train as train_irn
            from ..train.release import export_irn as export_model

            given |= options.given(final_temperature=z_temperature, codec_share=codec_share, init_from=init_from,
                            cycle_weight=cycle_weight)  # fmt: skip
            cfg = IrnTrainConfig(train_dirs=train_dirs, val_dir=val_dir, out_dir=out_dir or "runs/irn", **given)
            ckpt = train_irn(cfg, log=log)
        else:
            from ..train.espcn import train as train_espcn
            from ..train.release import export_espcn as export_model

            if scale is None:
                raise InvalidOption("espcn trains one integer scale per run: give --scale 2, 3 or 4")
            if features is not None:
                given["num_feat"] = _features(features)
            cfg = EspcnTrainConfig(
                scale=scale, train_dirs=train_dirs, val_dir=val_dir, out_dir="", luma=not rgb, **given
            )
            cfg = dataclasses.replace(cfg, out_dir=out_dir or f"runs/{cfg.weights_name}{'_rgb' if rgb else ''}")
            ckpt = train_espcn(cfg, log=log)
        if export and not rgb:  # the pipeline runs Y models only
            from ..train.release import export_folder
            from ..weights.store import shipped_dir

            folder = shipped_dir() if release else export_folder(cfg.out_dir)
            click.echo(json.dumps(export_model(ckpt, data, folder, log=log), indent=2))
