"""What a run prints: its notes on stderr, then a JSON summary on stdout or one line on stderr."""

from __future__ import annotations

import json

import click


def summary_dict(summary) -> dict:
    """A pipeline ``RunSummary`` as JSON-ready values."""
    d = dict(summary.__dict__)
    d["input_size"], d["output_size"] = list(summary.input_size), list(summary.output_size)
    d["seconds"], d["fps"] = round(summary.seconds, 3), round(summary.fps, 2)
    return d


def note(text: str) -> None:
    click.echo(f"vsr-pipe: note: {text}", err=True)


def print_run(summary, quiet: bool, as_json: bool) -> None:
    """The notes and the summary of one run (upscale, restore)."""
    for text in summary.notes:
        note(text)
    if summary.bad_packets:
        click.echo(f"vsr-pipe: warning: {summary.bad_packets} damaged packet(s) in the input were skipped", err=True)
    if as_json:
        click.echo(json.dumps(summary_dict(summary)))
    elif not quiet:
        click.echo(
            f"{summary.output}: {summary.frames} frames {summary.output_size[0]}x{summary.output_size[1]} "
            f"in {summary.seconds:.1f} s ({summary.fps:.1f} fps), {summary.model}",
            err=True,
        )


def print_latency(summary) -> None:
    """A live run's latency percentiles and where its frames went."""
    lat = summary.latency_ms
    paths = ", ".join(f"{name} {n}" for name, n in (summary.paths or {}).items()) or summary.model
    click.echo(
        f"vsr-pipe: latency p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms; "
        f"frames per path: {paths}; dropped {summary.dropped}; reconnects {summary.reconnects}",
        err=True,
    )


def print_chunk(done) -> None:
    """A delivery chunk fitted (or reused): its steps, loss and gain."""
    r = done.result
    g, t = sum(r.generic_psnr) / len(r.generic_psnr), sum(r.tuned_psnr) / len(r.tuned_psnr)
    loss = r.losses[-1] if r.losses else float("nan")
    fit = "joint fit " if done.joint else ""
    reused = " reused (fitted by an earlier run)" if done.reused else ""
    click.echo(
        f"[{done.done}/{done.total}] chunk {r.index}{reused}: {done.span.frames} frames, {fit}{r.steps} steps "
        f"in {r.seconds:.1f} s, loss {loss:.3g}, {g:.2f} -> {t:.2f} dB ({t - g:+.2f})",
        err=True,
    )


def print_stage(name: str, done: int, total: int) -> None:
    """A delivery stage's progress; a fit's end is print_chunk's line."""
    if name == "fit" and done:
        return
    what = {"scan": "scanning the master", "lr": "making the LR", "decode": "decoding the LR",
            "title": "fitting the title's codes"}  # fmt: skip
    count = f"{done}/{total}" if total else f"{done}"
    unit = {"fit": "chunks", "title": "steps"}.get(name, "frames")
    click.echo(f"{what.get(name, 'fitting')}: {count} {unit}", err=True)


def print_delivery(summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**summary.__dict__, "gain_db": summary.gain_db}))
        return
    reused = f"; {summary.reused} chunk(s) reused" if summary.reused else ""
    click.echo(
        f"{summary.output}: {summary.frames} frames in {summary.chunks} chunks ({summary.mode}); "
        f"Y-PSNR {summary.generic_psnr:.2f} (generic) -> {summary.tuned_psnr:.2f} dB ({summary.gain_db:+.2f}); "
        f"LR {summary.lr_bytes} bytes + weights {summary.weights_bytes} bytes{reused}",
        err=True,
    )


def print_candidate(done) -> None:
    """A ladder candidate coded and measured."""
    c = done.candidate
    click.echo(f"[{done.done}/{done.total}] {done.name}: {c.size[0]}x{c.size[1]}, {c.bytes} bytes, "
               f"{c.psnr:.2f} dB, peak {c.bandwidth} bit/s", err=True)  # fmt: skip


def print_ladder(built, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(built.summary()))
        return
    for text in built.skipped:
        note(f"skipped {text}")
    for k, r in enumerate(built.rungs):
        click.echo(f"rung {k}: {r.folder}/{r.playlist}, {r.bandwidth} bit/s peak, {r.psnr:.2f} dB", err=True)
