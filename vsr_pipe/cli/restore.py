"""``vsr-pipe restore PACKAGE -o OUT``: the client side of delivery."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from .errors import stopped, user_errors
from .options import CHUNK, CONTAINER, ENGINE, JSON, QUIET, encode_options, encoding, output, restore_options, threads
from .report import print_run
from .signals import stop_on_signals


@click.command()
@click.argument("package", metavar="PACKAGE")
@output("Output video file.")
@encoding()
@CONTAINER
@CHUNK
@ENGINE
@threads("CPU threads for the model (0: all).")
@click.option(
    "--rung", default=None, type=click.IntRange(min=0), help="A ladder: restore this rung (its index in ladder.json)."
)
@click.option("--bandwidth", default=None, metavar="RATE",
              help="A ladder: the best rung whose peak bandwidth fits RATE bits/s (300k, 1.5M); none fits: the lowest.")  # fmt: skip
@QUIET
@JSON
def restore(
    package: str, output: str, rung: int | None, bandwidth: str | None, quiet: bool, as_json: bool, **p
) -> None:
    """Restore a delivery PACKAGE into -o: a folder, a .mkv with the package attached, or the URL
    of its manifest.json or HLS playlist.

    A ladder folder (deliver --ladder) plays one rung: --rung N, --bandwidth RATE, or else the best.
    A package rung is restored with its weights; a direct rung is decoded and coded again as it is
    (the pipeline at scale 1), into -o with --codec and --crf."""
    from ..delivery.client import restore as run_restore
    from ..delivery.ladder import is_ladder, restore_ladder
    from ..progress import ProgressBar

    with user_errors():
        options = restore_options(p, encode_options(p))
        bar = ProgressBar(f"{Path(package).name} -> {Path(output).name}", enabled=None if not quiet else False)
        stop, caught = threading.Event(), []
        with stop_on_signals(stop, caught):
            if rung is not None or bandwidth is not None or is_ladder(package):
                summary = restore_ladder(package, output, options, rung, bandwidth, on_progress=bar.show, stop=stop)
            else:
                summary = run_restore(package, output, options, on_progress=bar.show, stop=stop)
        bar.close()
        if summary.weight_stalls and not quiet and not as_json:
            click.echo(
                f"vsr-pipe: {summary.weight_stalls} weight swap(s) waited for their weights "
                f"({summary.weight_wait_s:.1f} s in all)",
                err=True,
            )
        print_run(summary, quiet, as_json)
        interrupted = stopped(caught, output, summary.frames)
        if interrupted:
            raise interrupted
