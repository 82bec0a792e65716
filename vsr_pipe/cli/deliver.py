"""``vsr-pipe deliver MASTER -o PACKAGE``: the server side of delivery (vsr_pipe/delivery). The
encoder options mean what they mean for upscale; the LR's CRF defaults to the delivery's own."""

from __future__ import annotations

import signal

import click

from ..errors import Interrupted
from .errors import user_errors
from .options import (
    JSON,
    QUIET,
    RAY,
    REFINE,
    WORKERS,
    deliver_options,
    encoding,
    features,
    ladder_options,
    output,
    scale,  # fmt: skip
    threads,
)
from .report import print_candidate, print_chunk, print_delivery, print_ladder, print_stage

_SILENT = lambda *args: None  # noqa: E731 (--quiet: no progress lines)


@click.command()
@click.argument("master", metavar="MASTER")
@output("Package folder to write (replaced whole if it is one); with --embed, a NAME.mkv file.")
@scale("LR size over the master's: 0.5, 1/3 or 0.25.", show_default=True, default="0.5")
@click.option("--down", default="irn", show_default=True, type=click.Choice(["irn", "bicubic"]),
              help="irn: the learned downscale (restored by its inverse + a correction); bicubic: restored by ESPCN + a correction.")  # fmt: skip
@encoding(crf_default="23, DeliverOptions.encode's")
@REFINE
@click.option("--budget", default="300", show_default=True, help="Per chunk: Adam steps (300) or seconds (90s).")
@features("Correction network width. [default: 32]", type=click.IntRange(1, 256))
@click.option(
    "--blocks", default=None, type=click.IntRange(0, 32), help="Correction network residual blocks. [default: 4]"
)
@click.option("--max-seconds", default=None, type=float, help="Longest chunk in seconds of video. [default: 5]")
@click.option("--chunks", "max_chunks", default=None, type=click.IntRange(min=1), help="At most this many chunks.")
@click.option("--seed", default=None, type=int, help="Seed of the per-chunk fits. [default: 0]")
@click.option("--weights-format", default="auto", show_default=True, type=click.Choice(["auto", "modulation", "correction"]),
              help="modulation: compact per-channel codes on the codec-aware restorer, shipped only where they pay for their bytes; "
                   "correction: a whole correction network per chunk; auto: modulation for a bicubic LR (and --ladder) where one ships.")  # fmt: skip
@click.option("--joint", is_flag=True,
              help="One correction fitted over all the chunks (STDO's joint training; the budget times the chunks), for comparison.")  # fmt: skip
@click.option("--hls", is_flag=True, help="The LR as an HLS playlist (lr.m3u8) with one segment per chunk.")
@click.option(
    "--embed", is_flag=True, help="One Matroska file (-o NAME.mkv): the LR with the manifest and weights attached."
)
@WORKERS
@RAY
@threads("CPU threads per fit (0: torch's default).")
@click.option("--ladder", is_flag=True,
              help="A bitrate ladder in -o: the master coded directly and as packages (HLS) at several rates, the rungs on the hull, master.m3u8.")  # fmt: skip
@click.option(
    "--direct-crfs", default="23,28,33,38,43,48", show_default=True, help="--ladder: CRFs of the master coded directly."
)
@click.option("--lr-crfs", default="28,33,38,43,48", show_default=True, help="--ladder: CRFs of the packages' LR.")
@click.option(
    "--factors",
    default="2,3",
    show_default=True,
    help="--ladder: LR factors of the packages (a factor the size does not allow is skipped).",
)
@QUIET
@JSON
def deliver(master: str, output: str, ladder: bool, quiet: bool, as_json: bool, **p) -> None:
    """Package MASTER for delivery: an LR video plus per-chunk correction weights, in -o.

    An interrupted run keeps its finished chunks beside -o (.NAME.chunks); run it again with the
    same master and settings and they are reused.

    With --ladder, -o is a ladder folder: master.m3u8, a folder per rung, ladder.json (--max-seconds
    defaults to 10, --down to bicubic; --codec, --preset, --budget and the fit options apply to every
    candidate).
    """
    from ..delivery.ladder import build_ladder
    from ..delivery.server import deliver as run_deliver
    from ..runners import make_runner

    with user_errors():
        options = deliver_options(p)
        runner = make_runner(p["ray_address"], p["workers"])
        if ladder:  # candidates coded directly and as packages, the rungs on the hull (delivery/ladder.py)
            show = _SILENT if quiet else print_candidate
            built = build_ladder(master, output, ladder_options(p, options), on_progress=show, runner=runner)
            if as_json or not quiet:
                print_ladder(built, as_json)
            return
        try:
            summary = run_deliver(master, output, options, runner, on_chunk=_SILENT if quiet else print_chunk,
                                  on_stage=_SILENT if quiet else print_stage)  # fmt: skip
        except KeyboardInterrupt as e:  # the fits that ended are kept: say so, as the generic line would not
            signum = getattr(e, "signum", signal.SIGINT)
            raise Interrupted(
                f"interrupted by {signal.Signals(signum).name}: no package written; the chunks fitted so far "
                "are kept beside it, for the same command to reuse",
                signum,
            ) from None
        if as_json or not quiet:
            print_delivery(summary, as_json)
