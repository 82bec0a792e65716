"""Every option of every command, declared once: groups of options as decorators, and the builders
that turn what a group parsed into the config dataclasses (whose defaults are the only defaults).

A command takes a group whole (``@encoding()``) and gets its values as keyword arguments; an option
whose meaning depends on the command (``--scale``, ``--model``, ``--threads``) is a factory taking
the help text, so its names still appear once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import click

from ..config import EncodeOptions, LiveOptions, PipelineOptions, Scale, SourceOptions, parse_size, parse_time
from ..errors import InvalidOption

_PIPELINE, _ENCODE, _LIVE, _SOURCE = PipelineOptions(), EncodeOptions(), LiveOptions(), SourceOptions()  # for --help
PRECISIONS = ["auto", "fp32", "fp16", "int8"]


def group(*options: Callable) -> Callable:
    """One decorator applying ``options`` so that --help lists them in the order given."""

    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f

    return apply


# Options whose help depends on the command: the names once, the help from the caller.
def output(help: str, name: str = "--output", **kw) -> Callable:
    kw.setdefault("required", True)
    return click.option("-o", name, help=help, **kw)


def scale(help: str, **kw) -> Callable:
    kw.setdefault("default", None)
    return click.option("-s", "--scale", help=help, **kw)


def model(help: str, **kw) -> Callable:
    kw.setdefault("default", "auto")
    return click.option("-m", "--model", show_default=True, help=help, **kw)


def threads(help: str) -> Callable:
    return click.option("--threads", default=None, type=int, help=help)


def features(help: str, **kw) -> Callable:
    return click.option("--features", default=None, help=help, **kw)  # espcn's layer widths, or a correction's


SIZE = click.option("--size", default=None, help="Output size WxH instead of --scale, e.g. 1920x1080.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar or lines.")
OVERWRITE = click.option(
    "-y/-n", "overwrite", default=_ENCODE.overwrite,
    help="Replace an existing output file (-y), as a rename over it always has, or refuse it and exit 1 (-n). "
    f"[default: {'-y' if _ENCODE.overwrite else '-n'}]",
)  # fmt: skip
REFINE = click.option(
    "--refine", default=None, type=click.IntRange(0, 1000),
    help="irn downscale: Adam steps per frame tuning the LR to its inverse; 50 adds about 0.5 dB. Slow on a CPU.",
)  # fmt: skip
RAY = click.option("--ray", "ray_address", default=None, metavar="auto|ADDRESS",
                   help="Run the tasks on Ray: auto (this machine's cluster, else a local one) or a cluster address.")  # fmt: skip
WORKERS = click.option("--workers", default=None, type=click.IntRange(min=1),
                       help="Tasks at once: local processes (default 1, in this process), or a cap on Ray.")  # fmt: skip
CHUNK = click.option("--chunk", "chunk_frames", default=None, type=int,
                     help=f"Frames per model call. [default: {_PIPELINE.chunk_frames}]")  # fmt: skip
TILE = click.option("--tile", default=None, type=int,
                    help="Run the model on tiles of this many input pixels a side (0: whole frames).")  # fmt: skip
PIX_FMT = click.option(
    "--pix-fmt", default=None, help="Output pixel format; default: the input's, if the codec takes it."
)


def encoding(base: EncodeOptions = _ENCODE, crf_default: str | None = None) -> Callable:
    """--codec, --crf or --bitrate, --preset, --codec-option, and which streams are copied;
    ``crf_default``: the CRF's default as --help shows it, where it is not ``base``'s."""
    return group(
        click.option(
            "--codec",
            default=None,
            help="Video encoder (libx264, libx265, ffv1, h264_nvenc, ...); auto: "
            f"NVENC if it opens, else libx264. [default: {base.codec}]",
        ),  # fmt: skip
        click.option(
            "--crf",
            default=None,
            type=float,
            help=f"Constant rate factor (x264/x265/vpx/av1). [default: {crf_default or f'{base.crf:g}'}]",
        ),  # fmt: skip
        click.option("--bitrate", default=None, help="Target bitrate instead of a CRF, e.g. 400k or 1.5M."),
        click.option("--preset", default=None, help="Encoder preset, e.g. veryfast, medium, slow."),
        click.option(
            "--codec-option",
            multiple=True,
            metavar="KEY=VALUE",
            help="FFmpeg option for the video encoder (repeatable).",
        ),  # fmt: skip
        click.option("-an", "no_audio", is_flag=True, help="Leave the input's audio out (it is copied otherwise)."),
        click.option("-sn", "no_subtitles", is_flag=True, help="Leave the input's subtitles out."),
    )


CONTAINER = group(
    PIX_FMT,
    click.option(
        "-f", "--format", "container_format", default=None, help="Container format (needed with -o - or a URL)."
    ),
    click.option(
        "--output-option", multiple=True, metavar="KEY=VALUE", help="FFmpeg option for the output (repeatable)."
    ),
    OVERWRITE,
)
ENGINE = group(
    click.option(
        "--engine", default=None, help=f"auto, torch, onnxruntime, tensorrt or compile. [default: {_PIPELINE.engine}]"
    ),
    click.option("--device", default=None, help=f"auto, cpu, cuda, cuda:1, ... [default: {_PIPELINE.device}]"),
    click.option(
        "--precision",
        default=None,
        type=click.Choice(PRECISIONS),
        help="auto: fp16 on a CUDA GPU, fp32 on a CPU. fp16: CUDA (torch, tensorrt); "
        f"int8: onnxruntime (dynamic) or tensorrt (calibrated). [default: {_PIPELINE.precision}]",
    ),  # fmt: skip
)
TRIM = group(
    click.option(
        "-ss",
        "start",
        default=None,
        metavar="TIME",
        help="Start at this time of the input: seconds or HH:MM:SS[.ms] (frame-exact, by timestamps).",
    ),  # fmt: skip
    click.option(
        "-t", "duration", default=None, metavar="TIME", help="Read this long from the start: seconds or HH:MM:SS[.ms]."
    ),
)
LIVE = group(
    click.option(
        "--live",
        is_flag=True,
        help="Live filter: 1-frame chunks, encoder tuned for latency, a deadline per frame (--max-latency) met by "
        "falling back to bicubic when the model cannot keep up; latency p50/p95/p99 reported.",
    ),  # fmt: skip
    click.option("--realtime", is_flag=True, help="Read INPUT at its own frame rate, as a camera would deliver it."),
    click.option(
        "--max-latency",
        "max_latency_ms",
        default=None,
        type=float,
        help=f"--live: each frame's budget from arrival to output, ms. [default: {_LIVE.max_latency_ms:g}]",
    ),  # fmt: skip
    click.option("--drop", is_flag=True, help="--live: drop frames (and count them) rather than make the input wait."),
)
INPUT = group(
    click.option(
        "--reconnect-timeout",
        default=None,
        type=click.FloatRange(min=0),
        help="URL input: reopen a stream that ended or stalled, for up to this many seconds "
        "(default: 10 with --live, else 0).",
    ),  # fmt: skip
    click.option(
        "--read-timeout",
        default=None,
        type=click.FloatRange(min=0, min_open=True),
        help=f"URL input: seconds without data before the input counts as stalled. [default: {_SOURCE.read_timeout_s:g}]",
    ),  # fmt: skip
    click.option("--input-format", default=None, help="Input container format, for inputs FFmpeg cannot probe."),
    click.option(
        "--input-option", multiple=True, metavar="KEY=VALUE", help="FFmpeg option for the input (repeatable)."
    ),
)


def given(**options) -> dict:
    """The options the user gave; the rest keep the config dataclasses' defaults (their one home)."""
    return {k: v for k, v in options.items() if v is not None}


def pairs(values: tuple[str, ...], flag: str) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE strings as pairs; a malformed one is a usage error."""
    out = []
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise InvalidOption(f"{flag} '{text}' is not KEY=VALUE")
        out.append((key, value))
    return tuple(out)


def encode_options(p: dict, base: EncodeOptions = _ENCODE) -> EncodeOptions:
    """What ``encoding()``, ``CONTAINER`` and ``PIX_FMT`` parsed, over ``base``; --bitrate is the
    encoder's ``b`` and replaces the CRF."""
    bitrate = p.get("bitrate")
    if bitrate is not None and p.get("crf") is not None:
        raise InvalidOption("give --crf or --bitrate, not both")
    codec_options = pairs(p.get("codec_option", ()), "--codec-option") + ((("b", bitrate),) if bitrate else ())
    return dataclasses.replace(
        base, codec_options=base.codec_options + codec_options,
        muxer_options=base.muxer_options + pairs(p.get("output_option", ()), "--output-option"),
        audio=base.audio and not p.get("no_audio"), subtitles=base.subtitles and not p.get("no_subtitles"),
        **({"crf": None} if bitrate else {}),
        **given(codec=p.get("codec"), crf=p.get("crf"), preset=p.get("preset"), pix_fmt=p.get("pix_fmt"),
                container_format=p.get("container_format"), overwrite=p.get("overwrite")),
    )  # fmt: skip


def engine_given(p: dict) -> dict:
    """The engine options given (``ENGINE``, ``CHUNK``, ``TILE``, threads), by their config names."""
    names = ("engine", "device", "precision", "chunk_frames", "threads", "tile")
    return given(**{n: p.get(n) for n in names})


def source_options(p: dict) -> SourceOptions:
    """What ``INPUT`` and ``TRIM`` parsed; a URL under --live reconnects for 10 s unless told."""
    reconnect = p.get("reconnect_timeout")
    if reconnect is None and p.get("live"):
        reconnect = 10.0
    start, duration = p.get("start"), p.get("duration")
    return SourceOptions(
        options=pairs(p.get("input_option", ()), "--input-option"), format=p.get("input_format"),
        **given(reconnect_timeout_s=reconnect, read_timeout_s=p.get("read_timeout"),
                start_s=parse_time(start) if start is not None else None,
                duration_s=parse_time(duration) if duration is not None else None),
    )  # fmt: skip


def live_options(p: dict) -> LiveOptions | None:
    """What ``LIVE`` parsed; --max-latency and --drop need --live."""
    if (p.get("max_latency_ms") is not None or p.get("drop")) and not p.get("live"):
        raise InvalidOption("--max-latency and --drop go with --live")
    return LiveOptions(**given(max_latency_ms=p.get("max_latency_ms")), drop=p["drop"]) if p.get("live") else None


def pipeline_options(p: dict, **more) -> PipelineOptions:
    """What --scale or --size, --model, ``ENGINE``, ``CHUNK``, ``TILE`` and --refine parsed."""
    if p.get("scale") is not None and p.get("size") is not None:
        raise InvalidOption("give --scale or --size, not both")
    return PipelineOptions(
        scale=Scale.parse(p["scale"]) if p.get("scale") is not None else None,
        size=parse_size(p["size"]) if p.get("size") else None,
        model=p["model"], **engine_given(p), **given(refine=p.get("refine")), **more,
    )  # fmt: skip


def restore_options(p: dict, encode: EncodeOptions):
    """A package restore's options: the encoder's, and the engine's (no tiles)."""
    from ..delivery.client import RestoreOptions

    return RestoreOptions(encode=encode, **{k: v for k, v in engine_given(p).items() if k != "tile"})


def _budget(text: str) -> dict:
    """--budget: "300" (Adam steps per chunk) or "90s" (seconds per chunk)."""
    t = text.strip().lower()
    try:
        value = float(t[:-1]) if t.endswith("s") else int(t)
    except ValueError:
        raise InvalidOption(f"--budget '{text}' is not a number of steps (300) or seconds (90s)") from None
    if value <= 0:
        raise InvalidOption(f"--budget {text}: must be positive")
    return {"seconds": float(value), "steps": 0} if t.endswith("s") else {"steps": int(value)}


def deliver_options(p: dict):
    """deliver's options as ``DeliverOptions`` (the fit's and the chunking's inside)."""
    from fractions import Fraction

    from ..delivery.chunks import ChunkRules
    from ..delivery.fit import FitSettings
    from ..delivery.server import DeliverOptions

    try:
        factor = float(Fraction(p["scale"]))
    except (ValueError, ZeroDivisionError):
        raise InvalidOption(f"--scale '{p['scale']}' is not a number like 0.5 or 1/3") from None
    if p["hls"] and p["embed"]:
        raise InvalidOption("give --hls or --embed, not both")
    fit = FitSettings(**_budget(p["budget"]), train=p["weights_format"], **given(features=p["features"], blocks=p["blocks"],
                                                                           seed=p["seed"], threads=p["threads"]))  # fmt: skip
    return DeliverOptions(
        scale=factor, down=p["down"], encode=encode_options(p, DeliverOptions().encode), fit=fit,
        rules=ChunkRules(**given(cap=p["max_chunks"])), joint=p["joint"],
        layout="hls" if p["hls"] else "embed" if p["embed"] else "folder",
        **given(refine=p["refine"], max_seconds=p["max_seconds"], threads=p["threads"]),
    )  # fmt: skip


def ladder_options(p: dict, options):
    """deliver --ladder's options: the candidates' rates and factors, over ``options``; --scale,
    --crf, --bitrate, --hls and --embed are the ladder's to set. Its own defaults: chunks of 10 s,
    a bicubic down (unless --max-seconds or --down say otherwise)."""
    from click.core import ParameterSource

    from ..delivery.ladder import LadderOptions, numbers

    source = click.get_current_context().get_parameter_source
    told = [f"--{n}" for n in ("scale", "crf", "bitrate", "hls", "embed") if source(n) is ParameterSource.COMMANDLINE]
    if told:
        raise InvalidOption(
            f"{', '.join(told)}: not with --ladder, which sets them (--factors, --lr-crfs, --direct-crfs)"
        )
    seconds = p["max_seconds"] if p["max_seconds"] is not None else 10.0
    down = p["down"] if source("down") is ParameterSource.COMMANDLINE else "bicubic"
    return LadderOptions(
        direct_crfs=numbers(p["direct_crfs"], "--direct-crfs"), lr_crfs=numbers(p["lr_crfs"], "--lr-crfs"),
        factors=numbers(p["factors"], "--factors", int), fit=options.fit, max_seconds=seconds,
        extra=dataclasses.replace(options, down=down, max_seconds=seconds),
        **given(codec=p["codec"], preset=p["preset"], threads=p["threads"]),
    )  # fmt: skip


def split_parts(text: str | None) -> str | int | None:
    """--split: "auto", a number of parts (1 or more), or None (no split)."""
    if text is None or text == "auto":
        return text
    if not (text.isdigit() and int(text) >= 1):
        raise InvalidOption(f"--split {text}: give auto or a number of parts (1 or more)")
    return int(text)
