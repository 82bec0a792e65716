"""``vsr-pipe eval images|video``: quality on an image benchmark, or per frame between two videos."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import user_errors
from .options import JSON, model, scale


@click.group(name="eval")
def eval_group() -> None:
    """Measure quality: on an image benchmark, or per frame between two videos."""


@eval_group.command(name="images")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@scale("espcn/bicubic: 2, 3 or 4. irn: any factor in [1, 4], or WxH like 1.5x2.", required=True)
@model("Which model.", default="espcn", type=click.Choice(["espcn", "bicubic", "irn"]))
@click.option(
    "--weights", default=None, type=click.Path(dir_okay=False), help="A weights file instead of the shipped one."
)
@click.option("--cycles", default=1, show_default=True, type=click.IntRange(1, 20), help="irn: down-up cycles.")
@click.option("--z", "z_mode", default="sample", show_default=True, type=click.Choice(["sample", "zero"]),
              help="irn: restore from z ~ N(0, 1) (the papers' protocol) or from z = 0 (what video restoration uses).")  # fmt: skip
@JSON
def eval_images(
    folder: str, scale: str, model: str, weights: str | None, cycles: int, z_mode: str, as_json: bool
) -> None:
    """Y-PSNR/SSIM on FOLDER, the benchmarks' way.

    \b
    espcn, bicubic: MATLAB-bicubic LR, SCALE border pixels shaved.
    irn: the model's own 8-bit LR restored with z ~ N(0, 1); also the LR against MATLAB bicubic.
    """
    from ..quality.benchmark import evaluate_benchmark

    with user_errors():
        r = evaluate_benchmark(folder, scale, model, weights, cycles, z_mode)
        if as_json:
            click.echo(json.dumps(r.summary))
        elif model == "irn":
            z = "~ N(0, 1)" if z_mode == "sample" else "= 0"
            click.echo(f"{r.name} x{r.scale} irn ({cycles} cycle{'s' if cycles > 1 else ''}, z {z}): restored "
                       f"{r.psnr:.3f} dB SSIM {r.ssim:.4f}; LR vs bicubic {r.lr_psnr:.3f} dB SSIM {r.lr_ssim:.4f}")  # fmt: skip
        else:
            for name, p, s in r.per_image:
                click.echo(f"{name:24s} {p:7.3f} dB  {s:.4f}")
            click.echo(f"{r.name} x{r.scale} {model}: {r.psnr:.3f} dB  SSIM {r.ssim:.4f}")


@eval_group.command(name="video")
@click.argument("reference", type=click.Path(exists=True, dir_okay=False))
@click.argument("test", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-ssim", is_flag=True, help="PSNR only (faster).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Write a PNG of PSNR per frame.")
@JSON
def eval_video(reference: str, test: str, no_ssim: bool, plot: str | None, as_json: bool) -> None:
    """Y-PSNR/SSIM per frame of TEST against REFERENCE (same size)."""
    from ..quality.video import compare_videos

    with user_errors():
        scores = compare_videos(reference, test, with_ssim=not no_ssim)
        if plot:
            from ..quality.plots import plot_per_frame

            plot_per_frame(scores, plot, title=f"{Path(test).name} vs {Path(reference).name}")
        if as_json:  # --no-ssim: no SSIM keys (a NaN is not JSON)
            result = {"frames": len(scores.psnr), "mean_psnr": scores.mean_psnr, "psnr": list(scores.psnr)}
            if scores.ssim:
                result |= {"mean_ssim": scores.mean_ssim, "ssim": list(scores.ssim)}
            click.echo(json.dumps(result))
            return
        for i, p in enumerate(scores.psnr):
            s = f"  {scores.ssim[i]:.4f}" if scores.ssim else ""
            click.echo(f"frame {i:5d} {p:7.3f} dB{s}")
        ssim = f"  SSIM {scores.mean_ssim:.4f}" if scores.ssim else ""
        click.echo(f"{len(scores.psnr)} frames: mean {scores.mean_psnr:.3f} dB{ssim}")
