"""``vsr-pipe batch INPUTS... -o DIR``: many files, one output each, on local processes or Ray."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import click

from ..errors import Interrupted
from .errors import user_errors
from .options import (
    CHUNK,
    ENGINE,
    JSON,
    PIX_FMT,
    QUIET,
    RAY,
    SIZE,
    TILE,
    WORKERS,
    encode_options,
    encoding,
    model,
    output,  # fmt: skip
    pipeline_options,
    scale,
    split_parts,
    threads,
)
from .signals import stop_on_signals


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUTS...")
@output("Folder for the outputs.", name="--output-dir", type=click.Path(file_okay=False))
@scale("Factor 1 to 8, e.g. 2, 1.5 or 1.5x2 (width x height). Default 2.")
@SIZE
@model("auto, espcn, temporal, irn, bicubic, lanczos or bilinear.")
@encoding()
@PIX_FMT
@click.option("--ext", default=None, help="Output container by extension (mkv, mp4, ...); default: each input's own.")
@CHUNK
@ENGINE
@threads("CPU threads per task for the model (default: the task's CPUs).")
@TILE
@RAY
@WORKERS
@click.option("--cpus-per-task", default=None, type=click.FloatRange(min=0, min_open=True),
              help="CPUs each task asks for (Ray; default 1) and its threads.")  # fmt: skip
@click.option("--split", default=None, metavar="auto|N",
              help="Cut each file in time at keyframes into N parts (auto: two per worker) run side by side, "
              "joined without re-encoding.")  # fmt: skip
@QUIET
@JSON
def batch(inputs: tuple[str, ...], output_dir: str, ext: str | None, ray_address: str | None, workers: int | None,
          cpus_per_task: float | None, split: str | None, quiet: bool, as_json: bool, **p) -> None:  # fmt: skip
    """Rescale many files (INPUTS: files, folders, globs, http(s) URLs) into -o, one output each.

    Outputs already made from the same input and settings are skipped; a file that fails gets one
    line and the others go on; the exit code is 0 only when every input succeeded.
    """
    from ..jobs.batch import run_batch
    from ..progress import ProgressBar
    from ..runners import make_runner

    with user_errors():
        parts = split_parts(split)
        options = pipeline_options(p, encode=encode_options(p))
        runner = make_runner(ray_address, workers)
        started, made, ends = time.perf_counter(), [0], [0, 0]
        bar = ProgressBar("batch:", enabled=None if not quiet else False)  # live, on a terminal only

        def show(result, ended: int, total: int) -> None:
            made[0] += result.frames if result.status == "done" else 0
            ends[:] = [ended, total]
            if quiet:  # --quiet hides progress, never a failure
                if result.status == "failed":
                    click.echo(f"[{ended}/{total}] failed  {result.source}: {result.error}", err=True)
                return
            line = f"[{ended}/{total}] {result.status:7s} {result.source}"
            if result.status == "done":
                line += (
                    f" -> {result.output} ({result.frames} frames, {result.frames / max(result.seconds, 1e-9):.1f} fps)"
                )
            elif result.status == "skipped":
                line += f" ({result.output} is up to date)"
            elif result.status == "failed":
                line += f": {result.error}"
            clear = "\r\x1b[K" if bar.enabled else ""  # over the live line, which comes back next second
            click.echo(
                f"{clear}{line}; all workers: {made[0] / (time.perf_counter() - started):.1f} frames/s", err=True
            )

        def live(frames: int, seconds: float) -> None:
            bar.update(frames, 0, seconds, f"  ({ends[0]}/{ends[1]} inputs ended, all workers)")

        stop, caught = threading.Event(), []
        with stop_on_signals(stop, caught):
            summary = run_batch(
                list(inputs), output_dir, options, runner, suffix=ext, on_item=show, stop=stop,
                on_frames=live if bar.enabled else None, split=parts, cpus_per_task=cpus_per_task,
            )  # fmt: skip
        bar.close()
        counts = summary.counts()
        if as_json:
            click.echo(json.dumps({
                "ok": summary.ok, "seconds": round(summary.seconds, 3), "frames": summary.frames,
                "fps": round(summary.fps, 2), **counts, "items": [dict(i.__dict__) for i in summary.items],
            }))  # fmt: skip
        if not quiet:
            click.echo(
                f"vsr-pipe: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
                f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s in total)",
                err=True,
            )
        if caught:
            raise Interrupted(
                f"stopped by {signal.Signals(caught[0]).name}: {len(summary.items)} of the inputs ended, "
                "none left half-written",
                caught[0],
            )
    if not summary.ok:
        sys.exit(1)  # the failures have had their lines
