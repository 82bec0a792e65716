"""``vsr-pipe INPUT -o OUTPUT``: rescale one video, a file, a pipe or a live stream."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from ..errors import InputLost, InvalidOption
from .errors import stopped, user_errors
from .options import (
    CHUNK,
    CONTAINER,
    ENGINE,
    INPUT,
    JSON,
    LIVE,
    QUIET,
    REFINE,
    SIZE,
    TILE,
    TRIM,
    encode_options,
    encoding,
    live_options,
    model,
    output,
    pipeline_options,
    restore_options,
    scale,
    source_options,
    threads,  # fmt: skip
)
from .report import note, print_latency, print_run
from .signals import stop_on_signals


@click.command()
@click.argument("input_path", metavar="INPUT")
@output("Output file, or - for standard output (needs -f).")
@scale(
    "Factor 1 to 8, e.g. 2, 1.5 or 1.5x2 (width x height); with irn also 0.25 to 1, with bicubic, "
    "lanczos or bilinear 0.125 to 8 (a --size follows the same rule). "
    "Default 2, or the size a rescaling tag in INPUT records."
)
@SIZE
@model("auto (on a file temporal where it ships for the factor, else espcn; irn's inverse on a video irn made), "
       "espcn, temporal (recurrent), irn, bicubic, lanczos or bilinear.")
@encoding()
@CONTAINER
@TRIM
@CHUNK
@ENGINE
@threads("CPU threads for the model (0: all).")
@TILE
@REFINE
@LIVE
@INPUT
@QUIET
@JSON
def upscale(input_path: str, output: str, quiet: bool, as_json: bool, **p) -> None:
    """Upscale INPUT (a file, - for standard input, or a URL) into -o (a file, -, a URL or an .m3u8 playlist).

    A .mkv made by deliver --embed is restored with the weights it carries (as restore does)."""
    from ..delivery.client import embedded_package
    from ..delivery.client import restore as restore_package
    from ..pipeline.run import run_to_file
    from ..progress import ProgressBar

    with user_errors():
        encode = encode_options(p)
        live = live_options(p)
        options = pipeline_options(p, encode=encode, source=source_options(p), live=live, realtime=p["realtime"])
        # A file carrying a delivery package restores with its weights, unless told how to rescale.
        told = p["model"] != "auto" or options.scale is not None or options.size is not None or live is not None
        restoring = not told and embedded_package(input_path)
        if restoring and (p["start"] is not None or p["duration"] is not None):
            raise InvalidOption(f"-ss/-t: {input_path} carries a delivery package, restored whole")
        if restoring:
            note(f"{input_path} carries a delivery package: restoring it with its weights "
                 "(as vsr-pipe restore; give --model or --scale to upscale it plainly)")  # fmt: skip
        bar = ProgressBar(f"{Path(input_path).name} -> {Path(output).name}", enabled=None if not quiet else False)
        stop, caught = threading.Event(), []
        with stop_on_signals(stop, caught):
            if restoring:
                summary = restore_package(
                    input_path, output, restore_options(p, encode), on_progress=bar.show, stop=stop
                )
            else:
                summary = run_to_file(input_path, output, options, on_progress=bar.show, stop=stop)
        bar.close()
        print_run(summary, quiet, as_json)
        if summary.latency_ms and not quiet and not as_json:
            print_latency(summary)
        interrupted = stopped(caught, output, summary.frames)
        if interrupted:
            raise interrupted
        if summary.lost:
            raise InputLost(f"{summary.lost}; {output} was closed with the {summary.frames} frames done")
