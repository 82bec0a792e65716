"""The ``vsr-pipe`` command: parse options into config objects, call the library, print.

``vsr-pipe INPUT -o OUTPUT --scale S`` upscales; ``train``, ``eval`` and ``export-weights`` are
subcommands. Errors print one line on stderr and exit non-zero (130/143 after Ctrl-C/SIGTERM).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path

import click

from ._version import __version__
from .config import EncodeOptions, LiveOptions, PipelineOptions, Scale, SourceOptions, parse_size
from .errors import InputLost, Interrupted, InvalidOption, VsrPipeError
from .train.config import EspcnTrainConfig, IrnTrainConfig, default

DEFAULT_DATA = "../shared/data"
_PIPELINE, _ENCODE, _LIVE, _SOURCE = PipelineOptions(), EncodeOptions(), LiveOptions(), SourceOptions()  # for --help


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``upscale``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["upscale", *args]
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """Click's standalone handling, except that a usage error is one line like every other error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        _SIGNALS.install()  # before the heavy imports: a Ctrl-C while loading is not lost
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                exc.show()  # bare "vsr-pipe": the help, as click shows it
            else:
                click.echo(f"vsr-pipe: error: {exc.format_message()} (see --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if _SIGNALS.caught:  # click turns the KeyboardInterrupt a signal raised into Abort
                _SIGNALS.exit_now(True)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        _SIGNALS.exiting = True
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vsr-pipe")
def main() -> None:
    """Rescale video with neural networks, as a stream.

    \b
    vsr-pipe input.mp4 --scale 1.5 -o out.mp4
    vsr-pipe input.mkv --size 3840x2160 --codec libx265 -o out.mkv
    vsr-pipe - -f matroska --scale 2 -o - < in.mkv > out.mkv
    """


@main.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output file, or - for standard output (needs -f).")
@click.option(
    "-s",
    "--scale",
    default=None,
    help="Factor 1 to 8, e.g. 2, 1.5 or 1.5x2 (width x height); with irn also 0.25 to 1, with bicubic, "
    "lanczos or bilinear 0.125 to 8 (a --size follows the same rule). "
    "Default 2, or the size a rescaling tag in INPUT records.",
)
@click.option("--size", default=None, help="Output size WxH instead of --scale, e.g. 1920x1080.")
@click.option(
    "-m",
    "--model",
    default="auto",
    show_default=True,
    help="auto (espcn; irn's inverse on a video irn made), espcn, irn, bicubic, lanczos or bilinear.",
)
@click.option(
    "--codec",
    default=None,
    help="Video encoder (libx264, libx265, ffv1, h264_nvenc, ...); auto: NVENC if it opens, else libx264. "
    f"[default: {_ENCODE.codec}]",
)
@click.option("--crf", default=None, type=float, help=f"Constant rate factor (x264/x265/vpx/av1). [default: {_ENCODE.crf:g}]")
@click.option("--preset", default=None, help="Encoder preset, e.g. veryfast, medium, slow.")
@click.option("--pix-fmt", default=None, help="Output pixel format; default: the input's, if the codec takes it.")
@click.option("-f", "--format", "container_format", default=None, help="Container format (needed with -o - or a URL).")
@click.option("--chunk", "chunk_frames", default=None, type=int, help=f"Frames per model call. [default: {_PIPELINE.chunk_frames}]")
@click.option("--engine", default=None, help=f"auto, torch, onnxruntime, tensorrt or compile. [default: {_PIPELINE.engine}]")
@click.option("--device", default=None, help=f"auto, cpu, cuda, cuda:1, ... [default: {_PIPELINE.device}]")
@click.option(
    "--precision",
    default=None,
    type=click.Choice(["auto", "fp32", "fp16", "int8"]),
    help="auto: fp16 on a CUDA GPU, fp32 on a CPU. fp16: CUDA (torch, tensorrt); "
    f"int8: onnxruntime (dynamic) or tensorrt (calibrated). [default: {_PIPELINE.precision}]",
)
@click.option("--threads", default=None, type=int, help="CPU threads for the model (0: all).")
@click.option("--tile", default=None, type=int, help="Run the model on tiles of this many input pixels a side (0: whole frames).")
@click.option(
    "--refine",
    default=None,
    type=click.IntRange(0, 1000),
    help="irn downscale (server side): Adam steps per frame on the LR against the inverse; 50 adds about "
    "0.5 dB to the restoration. Slow on a CPU.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Live filter: 1-frame chunks, encoder tuned for latency, a deadline per frame (--max-latency) met by "
    "falling back to bicubic when the model cannot keep up; latency p50/p95/p99 reported.",
)
@click.option("--realtime", is_flag=True, help="Read INPUT at its own frame rate, as a camera would deliver it.")
@click.option(
    "--max-latency",
    "max_latency_ms",
    default=None,
    type=float,
    help=f"--live: each frame's budget from arrival to output, ms. [default: {_LIVE.max_latency_ms:g}]",
)
@click.option("--drop", is_flag=True, help="--live: drop frames (and count them) rather than make the input wait.")
@click.option(
    "--reconnect-timeout",
    default=None,
    type=click.FloatRange(min=0),
    help="URL input: reopen a stream that ended or stalled, for up to this many seconds (default: 10 with "
    "--live, else 0).",
)
@click.option(
    "--read-timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help=f"URL input: seconds without data before the input counts as stalled. [default: {_SOURCE.read_timeout_s:g}]",
)
@click.option("--input-format", default=None, help="Input container format, for inputs FFmpeg cannot probe.")
@click.option("--input-option", multiple=True, metavar="KEY=VALUE", help="FFmpeg option for the input (repeatable).")
@click.option("--output-option", multiple=True, metavar="KEY=VALUE", help="FFmpeg option for the output (repeatable).")
@click.option(
    "--codec-option", multiple=True, metavar="KEY=VALUE", help="FFmpeg option for the video encoder (repeatable)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def upscale(input_path, output, scale, size, model, codec, crf, preset, pix_fmt, container_format, chunk_frames,
            engine, device, precision, threads, tile, refine, live, realtime, max_latency_ms, drop, reconnect_timeout,
            read_timeout, input_format, input_option, output_option, codec_option, quiet,
            as_json) -> None:  # fmt: skip
    """Upscale INPUT (a file, - for standard input, or a URL) into -o (a file, -, a URL or an .m3u8 playlist).

    A .mkv made by deliver --embed is restored with the weights it carries (as restore does)."""
    from .delivery.client import RestoreOptions, embedded_package
    from .delivery.client import restore as restore_package
    from .pipeline.run import run_to_file
    from .progress import ProgressBar

    with _user_errors():
        if scale is not None and size is not None:
            raise InvalidOption("give --scale or --size, not both")
        if (max_latency_ms is not None or drop) and not live:
            raise InvalidOption("--max-latency and --drop go with --live")
        encode = EncodeOptions(
            muxer_options=_pairs(output_option, "--output-option"),
            codec_options=_pairs(codec_option, "--codec-option"),
            **_given(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, container_format=container_format),
        )
        source = SourceOptions(
            options=_pairs(input_option, "--input-option"), format=input_format,
            **_given(reconnect_timeout_s=reconnect_timeout if reconnect_timeout is not None else (10.0 if live else None),
                     read_timeout_s=read_timeout),
        )  # fmt: skip
        live_options = LiveOptions(**_given(max_latency_ms=max_latency_ms), drop=drop) if live else None
        options = PipelineOptions(
            scale=Scale.parse(scale) if scale is not None else None, size=parse_size(size) if size else None,
            model=model, encode=encode, source=source, live=live_options, realtime=realtime,
            **_given(engine=engine, device=device, precision=precision, chunk_frames=chunk_frames, threads=threads,
                     tile=tile, refine=refine),
        )  # fmt: skip
        # A file carrying a delivery package restores with its weights, unless told how to rescale.
        restoring = model == "auto" and scale is None and size is None and not live and embedded_package(input_path)
        if restoring:
            click.echo(
                f"vsr-pipe: note: {input_path} carries a delivery package: restoring it with its weights "
                "(as vsr-pipe restore; give --model or --scale to upscale it plainly)",
                err=True,
            )
        bar = ProgressBar(f"{Path(input_path).name} -> {Path(output).name}", enabled=None if not quiet else False)
        stop, caught = threading.Event(), []
        with _stop_on_signals(stop, caught):
            if restoring:
                restore_options = RestoreOptions(
                    encode=encode, **_given(engine=engine, device=device, threads=threads, chunk_frames=chunk_frames)
                )
                summary = restore_package(input_path, output, restore_options, on_progress=bar.show, stop=stop)
            else:
                summary = run_to_file(input_path, output, options, on_progress=bar.show, stop=stop)
        bar.close()
        for note in summary.notes:
            click.echo(f"vsr-pipe: note: {note}", err=True)
        if summary.bad_packets:
            click.echo(
                f"vsr-pipe: warning: {summary.bad_packets} damaged packet(s) in the input were skipped", err=True
            )
        if as_json:
            click.echo(json.dumps(_summary_dict(summary)))
        elif not quiet:
            click.echo(
                f"{summary.output}: {summary.frames} frames {summary.output_size[0]}x{summary.output_size[1]} "
                f"in {summary.seconds:.1f} s ({summary.fps:.1f} fps), {summary.model}",
                err=True,
            )
        if summary.latency_ms and not quiet and not as_json:
            lat = summary.latency_ms
            paths = ", ".join(f"{name} {n}" for name, n in (summary.paths or {}).items()) or summary.model
            click.echo(
                f"vsr-pipe: latency p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms; "
                f"frames per path: {paths}; dropped {summary.dropped}; reconnects {summary.reconnects}",
                err=True,
            )
        if caught:
            held = f"{output} holds the {summary.frames} frames done so far" if summary.frames else "no output written"
            raise Interrupted(f"stopped by {signal.Signals(caught[0]).name}: {held}", caught[0])
        if summary.lost:
            raise InputLost(f"{summary.lost}; {output} was closed with the {summary.frames} frames done")


def _features(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidOption(f"--features '{text}' is not two channel counts like 16,8") from None
    if not (1 <= a <= 256 and 1 <= b <= 256):
        raise InvalidOption(f"--features {a},{b} is out of range: 1 to 256 channels each")
    return a, b


def _pairs(values: tuple[str, ...], flag: str) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE strings as pairs; a malformed one is a usage error."""
    pairs = []
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise InvalidOption(f"{flag} '{text}' is not KEY=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


def _given(**options) -> dict:
    """The options the user gave; the rest keep the config dataclasses' defaults (their one home)."""
    return {k: v for k, v in options.items() if v is not None}


def _summary_dict(summary) -> dict:
    d = dict(summary.__dict__)
    d["input_size"], d["output_size"] = list(summary.input_size), list(summary.output_size)
    d["seconds"], d["fps"] = round(summary.seconds, 3), round(summary.fps, 2)
    return d


class _user_errors:
    """Turn library errors into one line on stderr and an exit code; never a traceback."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (click.exceptions.Exit, click.ClickException, click.Abort)):
            return False
        if isinstance(exc, VsrPipeError):
            click.echo(f"vsr-pipe: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", err=True)
            sys.exit(exc.exit_code)
        if isinstance(exc, KeyboardInterrupt):
            signum = getattr(exc, "signum", signal.SIGINT)
            click.echo(f"vsr-pipe: interrupted by {signal.Signals(signum).name}: no partial output kept", err=True)
            sys.exit(128 + signum)
        if isinstance(exc, BrokenPipeError):
            click.echo("vsr-pipe: error: the output's reader went away (broken pipe)", err=True)
            # Python would complain again when it flushes the dead stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        if os.environ.get("VSR_PIPE_DEBUG"):
            return False
        click.echo(
            f"vsr-pipe: internal error: {type(exc).__name__}: {exc} (set VSR_PIPE_DEBUG=1 for details)", err=True
        )
        sys.exit(70)


class _Stopped(KeyboardInterrupt):
    """A signal that stops the command at once (before a run, or the second one during it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalState:
    """SIGINT/SIGTERM from the command's start to its exit. Before a run, a signal stops the command
    at once (exit 128 + n, no output); while a run streams, the first sets its ``stop`` event (the
    output is finalised) and a second stops at once (no output); once the exit is under way, it
    leaves with 128 + n, so a late Ctrl-C never kills the process by the signal itself."""

    def __init__(self):
        self.caught: list[int] = []
        self.stop: threading.Event | None = None
        self.exiting = False
        self.installed = False

    def install(self) -> None:
        if not self.installed and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handler)
            self.installed = True

    def _handler(self, signum, frame) -> None:
        first = not self.caught
        self.caught.append(signum)
        if self.exiting:  # everything is written; the exit code still says a signal came
            self.exit_now(False)
        if self.stop is not None and first:
            self.stop.set()
            return
        raise _Stopped(signum)

    def exit_now(self, say: bool) -> None:
        signum = self.caught[0]
        if say:  # an upscale stopped here has written nothing yet; other commands keep what they saved
            os.write(2, f"vsr-pipe: interrupted by {signal.Signals(signum).name}\n".encode())
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 (a closed pipe: nothing more to say)
            pass
        os._exit(128 + signum)


_SIGNALS = _SignalState()


class _stop_on_signals:
    """While inside, SIGINT/SIGTERM set ``stop`` (and are noted in ``caught``) instead of killing;
    a second one raises KeyboardInterrupt (no output is kept)."""

    def __init__(self, stop: threading.Event, caught: list):
        self.stop, self.caught = stop, caught
        self.installed_here = False

    def __enter__(self):
        self.installed_here = not _SIGNALS.installed
        _SIGNALS.install()
        _SIGNALS.caught, _SIGNALS.stop = self.caught, self.stop  # kept after the run: a late signal is noted
        return self

    def __exit__(self, *exc):
        if self.installed_here and _SIGNALS.installed:  # called as a library (tests): give the handlers back
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _SIGNALS.installed, _SIGNALS.stop, _SIGNALS.caught = False, None, []
        return False


def _espcn(name: str):  # the defaults the help shows are the config's, never a copy
    return default(EspcnTrainConfig, name)


def _irn(name: str):
    return default(IrnTrainConfig, name)


@main.command()
@click.option(
    "--model",
    "model_name",
    default="espcn",
    show_default=True,
    type=click.Choice(["espcn", "irn"]),
    help="espcn (one scale per run) or irn (the invertible rescaler, all factors in [1, 4] at once).",
)
@click.option("--scale", default=None, type=click.IntRange(2, 4), help="espcn: integer factor 2, 3 or 4.")
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
    "--patch", "lr_patch", default=None, type=int, help=f"LR patch side; espcn: {_espcn('lr_patch')}; irn: {_irn('lr_patch')}."
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
@click.option(
    "--features",
    default=None,
    help="espcn: channels of its two hidden layers, e.g. 16,8 for a light model (the live fallback); "
    "default 64,32, the paper's. Weights of other widths are named espcn_y_xS_fAxB.",
)
@click.option("--threads", default=None, type=int, help="CPU threads (0: torch's default).")
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
def train(model_name, scale, data, out_dir, steps, batch, lr_patch, z_temperature, codec_share, init_from,
          learning_rate, cycle_weight, rgb, features, threads, export, release) -> None:  # fmt: skip
    """Train a model on image folders (resumes from the run folder's checkpoint)."""
    from .train.data import training_folders

    with _user_errors():
        train_dirs, val_dir = training_folders(data)
        if release and not (export and not rgb):
            raise InvalidOption("--release ships Y weights: it needs --export and no --rgb")
        given = _given(steps=steps, batch=batch, lr_patch=lr_patch, learning_rate=learning_rate, threads=threads)
        log = lambda m: click.echo(m, err=True)  # noqa: E731
        if model_name == "irn":
            from .train.irn import train as train_irn
            from .train.release import export_irn as export_model

            given |= _given(final_temperature=z_temperature, codec_share=codec_share, init_from=init_from,
                            cycle_weight=cycle_weight)  # fmt: skip
            cfg = IrnTrainConfig(train_dirs=train_dirs, val_dir=val_dir, out_dir=out_dir or "runs/irn", **given)
            ckpt = train_irn(cfg, log=log)
        else:
            from .train.espcn import train as train_espcn
            from .train.release import export_espcn as export_model

            if scale is None:
                raise InvalidOption("espcn trains one integer scale per run: give --scale 2, 3 or 4")
            if features is not None:
                given["num_feat"] = _features(features)
            cfg = EspcnTrainConfig(scale=scale, train_dirs=train_dirs, val_dir=val_dir, out_dir="", luma=not rgb, **given)
            cfg = dataclasses.replace(cfg, out_dir=out_dir or f"runs/{cfg.weights_name}{'_rgb' if rgb else ''}")
            ckpt = train_espcn(cfg, log=log)
        if export and not rgb:  # the pipeline runs Y models only
            from .train.release import export_folder
            from .weights.store import shipped_dir

            folder = shipped_dir() if release else export_folder(cfg.out_dir)
            click.echo(json.dumps(export_model(ckpt, data, folder, log=log), indent=2))


@main.group(name="eval")
def eval_group() -> None:
    """Measure quality: on an image benchmark, or per frame between two videos."""


@eval_group.command(name="images")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--scale", required=True, help="espcn/bicubic: 2, 3 or 4. irn: any factor in [1, 4], or WxH like 1.5x2.")
@click.option("--model", default="espcn", show_default=True, type=click.Choice(["espcn", "bicubic", "irn"]))
@click.option(
    "--weights", default=None, type=click.Path(dir_okay=False), help="A weights file instead of the shipped one."
)
@click.option("--cycles", default=1, show_default=True, type=click.IntRange(1, 20), help="irn: down-up cycles.")
@click.option(
    "--z",
    "z_mode",
    default="sample",
    show_default=True,
    type=click.Choice(["sample", "zero"]),
    help="irn: restore from z ~ N(0, 1) (the papers' protocol) or from z = 0 (what video restoration uses).",
)
@click.option("--json", "as_json", is_flag=True)
def eval_images(folder, scale, model, weights, cycles, z_mode, as_json) -> None:
    """Y-PSNR/SSIM on FOLDER, the benchmarks' way.

    \b
    espcn, bicubic: MATLAB-bicubic LR, SCALE border pixels shaved.
    irn: the model's own 8-bit LR restored with z ~ N(0, 1); also the LR against MATLAB bicubic.
    """
    from .weights.store import load_model, shipped_path

    with _user_errors():
        parsed = Scale.parse(scale)
        if model == "irn":
            from .quality.rescaling import evaluate_rescaling

            parsed.check_for("irn")
            net = load_model(weights or shipped_path("irn_y"))
            r = evaluate_rescaling(
                folder, net, parsed.y, parsed.x, cycles=cycles, temperature=1.0 if z_mode == "sample" else 0.0
            )
            result = {"set": r.name, "scale": str(parsed), "model": "irn", "cycles": cycles, "z": z_mode, "psnr": r.psnr,
                      "ssim": r.ssim, "lr_psnr": r.lr_psnr, "lr_ssim": r.lr_ssim}  # fmt: skip
            if as_json:
                click.echo(json.dumps(result))
            else:
                click.echo(f"{r.name} x{parsed} irn ({cycles} cycle{'s' if cycles > 1 else ''}, z {'~ N(0, 1)' if z_mode == 'sample' else '= 0'}): restored {r.psnr:.3f} dB "
                           f"SSIM {r.ssim:.4f}; LR vs bicubic {r.lr_psnr:.3f} dB SSIM {r.lr_ssim:.4f}")  # fmt: skip
            return
        from .quality.images import bicubic_upscaler, evaluate_folder, model_upscaler

        if not parsed.is_uniform or not float(parsed.x).is_integer() or not 2 <= parsed.x <= 4:
            raise InvalidOption(f"scale {parsed}: {model} is measured at 2, 3 or 4")
        factor = int(parsed.x)
        if model == "bicubic":
            upscaler = bicubic_upscaler
        else:
            upscaler = model_upscaler(load_model(weights or shipped_path(f"espcn_y_x{factor}")))
        score = evaluate_folder(folder, factor, upscaler)
        if as_json:
            click.echo(
                json.dumps({"set": score.name, "scale": factor, "model": model, "psnr": score.psnr, "ssim": score.ssim})
            )
            return
        for name, p, s in score.per_image:
            click.echo(f"{name:24s} {p:7.3f} dB  {s:.4f}")
        click.echo(f"{score.name} x{factor} {model}: {score.psnr:.3f} dB  SSIM {score.ssim:.4f}")


@eval_group.command(name="video")
@click.argument("reference", type=click.Path(exists=True, dir_okay=False))
@click.argument("test", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-ssim", is_flag=True, help="PSNR only (faster).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Write a PNG of PSNR per frame.")
@click.option("--json", "as_json", is_flag=True)
def eval_video(reference, test, no_ssim, plot, as_json) -> None:
    """Y-PSNR/SSIM per frame of TEST against REFERENCE (same size)."""
    from .quality.video import compare_videos

    with _user_errors():
        scores = compare_videos(reference, test, with_ssim=not no_ssim)
        if plot:
            from .quality.plots import plot_per_frame

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
        click.echo(f"{len(scores.psnr)} frames: mean {scores.mean_psnr:.3f} dB  SSIM {scores.mean_ssim:.4f}")


@main.command(name="export")
@click.option("--model", "model_name", default="espcn", show_default=True, type=click.Choice(["espcn", "irn"]))
@click.option(
    "--scale",
    required=True,
    help="espcn: 2, 3 or 4. irn: a factor; the pair of graphs written serves its whole band, (1, 2] or (2, 4].",
)
@click.option(
    "-o", "--output", default=None, help="ONNX file (irn: a prefix for -down.onnx/-up.onnx); default: the engine cache."
)
def export_cmd(model_name, scale, output) -> None:
    """Write a shipped model as ONNX (dynamic batch, height and width)."""
    from .export import export_espcn, export_irn, tensorrt_plan

    with _user_errors():
        parsed = Scale.parse(scale)
        if model_name == "irn":
            for path in export_irn(parsed, output):
                click.echo(str(path))
            return
        exported = export_espcn(parsed, output)
        click.echo(str(exported.path))
        plan = tensorrt_plan(exported)  # the serialized engine too, where TensorRT is installed
        if plan:
            click.echo(f"{plan[0]} ({'reused' if plan[1] else 'built'})")


@main.command()
def doctor() -> None:
    """Print what this machine offers: engines, devices, codecs, versions."""
    from .doctor import doctor_rows

    for key, value in doctor_rows():
        click.echo(f"{key:18s} {value}")


# batch: the upscale command's model and encoder options, repeated here (not shared) so that the
# upscale command stays untouched; the meanings and defaults are the same.
@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUTS...")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False), help="Folder for the outputs.")
@click.option("-s", "--scale", default=None, help="Factor 1 to 8, e.g. 2, 1.5 or 1.5x2 (width x height). Default 2.")
@click.option("--size", default=None, help="Output size WxH instead of --scale, e.g. 1920x1080.")
@click.option("-m", "--model", default="auto", show_default=True, help="auto, espcn, irn, bicubic, lanczos or bilinear.")
@click.option("--codec", default=None, help=f"Video encoder (libx264, libx265, ffv1, ...). [default: {_ENCODE.codec}]")
@click.option("--crf", default=None, type=float, help=f"Constant rate factor. [default: {_ENCODE.crf:g}]")
@click.option("--preset", default=None, help="Encoder preset, e.g. veryfast, medium, slow.")
@click.option("--pix-fmt", default=None, help="Output pixel format; default: the input's, if the codec takes it.")
@click.option("--ext", default=None, help="Output container by extension (mkv, mp4, ...); default: each input's own.")
@click.option("--chunk", "chunk_frames", default=None, type=int, help=f"Frames per model call. [default: {_PIPELINE.chunk_frames}]")
@click.option("--engine", default=None, help=f"auto, torch, onnxruntime, tensorrt or compile. [default: {_PIPELINE.engine}]")
@click.option("--device", default=None, help=f"auto, cpu, cuda, cuda:1, ... [default: {_PIPELINE.device}]")
@click.option("--precision", default=None, type=click.Choice(["auto", "fp32", "fp16", "int8"]), help="As for upscale.")
@click.option("--threads", default=None, type=int, help="CPU threads per task for the model (default: the task's CPUs).")
@click.option("--tile", default=None, type=int, help="Run the model on tiles of this many input pixels a side.")
@click.option("--ray", "ray_address", default=None, metavar="auto|ADDRESS",
              help="Run the tasks on Ray: auto (this machine's cluster, else a local one) or a cluster address.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Tasks at once: local processes (default 1, in this process), or a cap on Ray (default: what fits).")
@click.option("--cpus-per-task", default=None, type=click.FloatRange(min=0, min_open=True),
              help="CPUs each task asks for (Ray; default 1) and its threads.")
@click.option("--split", default=None, metavar="auto|N",
              help="Cut each file in time at keyframes into N parts (auto: two per worker) run side by side, "
              "joined without re-encoding.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def batch(inputs, output_dir, scale, size, model, codec, crf, preset, pix_fmt, ext, chunk_frames, engine, device,
          precision, threads, tile, ray_address, workers, cpus_per_task, split, quiet, as_json) -> None:  # fmt: skip
    """Rescale many files (INPUTS: files, folders, globs, http(s) URLs) into -o, one output each.

    Outputs already made from the same input and settings are skipped; a file that fails gets one
    line and the others go on; the exit code is 0 only when every input succeeded.
    """
    import time

    from .jobs.batch import run_batch
    from .jobs.runners import make_runner
    from .progress import ProgressBar

    with _user_errors():
        if scale is not None and size is not None:
            raise InvalidOption("give --scale or --size, not both")
        if split is not None and split != "auto" and not (split.isdigit() and int(split) >= 1):
            raise InvalidOption(f"--split {split}: give auto or a number of parts (1 or more)")
        encode = EncodeOptions(**_given(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt))
        options = PipelineOptions(
            scale=Scale.parse(scale) if scale is not None else None, size=parse_size(size) if size else None,
            model=model, encode=encode, **_given(engine=engine, device=device, precision=precision,
            chunk_frames=chunk_frames, threads=threads, tile=tile),
        )  # fmt: skip
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
                line += f" -> {result.output} ({result.frames} frames, {result.frames / max(result.seconds, 1e-9):.1f} fps)"
            elif result.status == "skipped":
                line += f" ({result.output} is up to date)"
            elif result.status == "failed":
                line += f": {result.error}"
            clear = "\r\x1b[K" if bar.enabled else ""  # over the live line, which comes back next second
            click.echo(f"{clear}{line}; all workers: {made[0] / (time.perf_counter() - started):.1f} frames/s", err=True)

        def live(frames: int, seconds: float) -> None:
            bar.update(frames, 0, seconds, f"  ({ends[0]}/{ends[1]} inputs ended, all workers)")

        stop, caught = threading.Event(), []
        with _stop_on_signals(stop, caught):
            summary = run_batch(
                list(inputs), output_dir, options, runner, suffix=ext, on_item=show, stop=stop,
                on_frames=live if bar.enabled else None,
                split=None if split is None else (split if split == "auto" else int(split)), cpus_per_task=cpus_per_task,
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
                f"stopped by {signal.Signals(caught[0]).name}: {len(summary.items)} of the inputs ended, none left half-written",
                caught[0],
            )
    if not summary.ok:
        sys.exit(1)  # the failures have had their lines



# deliver / restore: content-aware delivery (vsr_pipe/delivery). The encoder options mean what they
# mean for upscale; deliver's CRF defaults to 23 (a delivery rate), restore's to upscale's.
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


@main.command()
@click.argument("master", metavar="MASTER")
@click.option("-o", "--output", required=True,
              help="Package folder to write (replaced whole if it is one); with --embed, a NAME.mkv file.")
@click.option("-s", "--scale", default="0.5", show_default=True, help="LR size over the master's: 0.5, 1/3 or 0.25.")
@click.option("--down", default="irn", show_default=True, type=click.Choice(["irn", "bicubic"]),
              help="irn: the learned downscale (restored by its inverse + a correction); bicubic: restored by ESPCN + a correction.")
@click.option("--codec", default=None, help=f"LR video encoder. [default: {_ENCODE.codec}]")
@click.option("--crf", default=None, type=float, help="Constant rate factor of the LR. [default: 23]")
@click.option("--bitrate", default=None, help="Target bitrate of the LR instead of a CRF, e.g. 400k or 1.5M.")
@click.option("--preset", default=None, help="Encoder preset, e.g. veryfast, medium, slow.")
@click.option("--refine", default=None, type=int, help="irn: Adam steps per frame tuning the LR to its inverse (slow).")
@click.option("--budget", default="300", show_default=True, help="Per chunk: Adam steps (300) or seconds (90s).")
@click.option("--features", "corr_features", default=None, type=click.IntRange(1, 256), help="Correction network width. [default: 32]")
@click.option("--blocks", "corr_blocks", default=None, type=click.IntRange(0, 32), help="Correction network residual blocks. [default: 4]")
@click.option("--max-seconds", default=None, type=float, help="Longest chunk in seconds of video. [default: 5]")
@click.option("--chunks", "max_chunks", default=None, type=click.IntRange(min=1), help="At most this many chunks.")
@click.option("--seed", default=None, type=int, help="Seed of the per-chunk fits. [default: 0]")
@click.option("--joint", is_flag=True,
              help="One correction fitted over all the chunks (STDO's joint training; the budget times the chunks), for comparison.")
@click.option("--hls", is_flag=True, help="The LR as an HLS playlist (lr.m3u8) with one segment per chunk.")
@click.option("--embed", is_flag=True, help="One Matroska file (-o NAME.mkv): the LR with the manifest and weights attached.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Chunks fitted at once in local processes.")
@click.option("--ray", "ray_address", default=None, metavar="auto|ADDRESS", help="Fit the chunks as Ray tasks.")
@click.option("--threads", default=None, type=int, help="CPU threads per fit (0: torch's default).")
@click.option("--ladder", is_flag=True,
              help="A bitrate ladder in -o: the master coded directly and as packages (HLS) at several rates, the rungs on the hull, master.m3u8.")
@click.option("--direct-crfs", default="23,28,33,38,43,48", show_default=True, help="--ladder: CRFs of the master coded directly.")
@click.option("--lr-crfs", default="23,28,33,38,43", show_default=True, help="--ladder: CRFs of the packages' LR.")
@click.option("--factors", default="2,3", show_default=True, help="--ladder: LR factors of the packages (a factor the size does not allow is skipped).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def deliver(master, output, scale, down, codec, crf, bitrate, preset, refine, budget, corr_features, corr_blocks,
            max_seconds, max_chunks, seed, joint, hls, embed, workers, ray_address, threads, ladder, direct_crfs,
            lr_crfs, factors, quiet, as_json) -> None:  # fmt: skip
    """Package MASTER for delivery: an LR video plus per-chunk correction weights, in -o.

    An interrupted run keeps its finished chunks beside -o (.NAME.chunks); run it again with the
    same master and settings and they are reused.

    With --ladder, -o is a ladder folder: master.m3u8, a folder per rung, ladder.json (--max-seconds
    defaults to 10, --down to bicubic; --codec, --preset, --budget and the fit options apply to every
    candidate).
    """
    from fractions import Fraction

    from .delivery.chunks import ChunkRules
    from .delivery.fit import FitSettings
    from .delivery.server import DeliverOptions
    from .delivery.server import deliver as run_deliver
    from .jobs.runners import make_runner

    with _user_errors():
        try:
            factor = float(Fraction(scale))
        except (ValueError, ZeroDivisionError):
            raise InvalidOption(f"--scale '{scale}' is not a number like 0.5 or 1/3") from None
        if bitrate is not None and crf is not None:
            raise InvalidOption("give --crf or --bitrate, not both")
        if hls and embed:
            raise InvalidOption("give --hls or --embed, not both")
        codec_options = (("b", bitrate),) if bitrate else ()
        encode = EncodeOptions(
            crf=None if bitrate else (crf if crf is not None else 23), codec_options=codec_options,
            **_given(codec=codec, preset=preset),
        )  # fmt: skip
        fit = FitSettings(**_budget(budget), **_given(features=corr_features, blocks=corr_blocks, seed=seed, threads=threads))
        rules = ChunkRules(**_given(cap=max_chunks))
        options = DeliverOptions(
            scale=factor, down=down, encode=encode, fit=fit, rules=rules, joint=joint,
            layout="hls" if hls else "embed" if embed else "folder",
            **_given(refine=refine, max_seconds=max_seconds, threads=threads),
        )  # fmt: skip
        runner = make_runner(ray_address, workers)
        if ladder:  # candidates coded directly and as packages, the rungs on the hull (delivery/ladder.py)
            from click.core import ParameterSource

            from .delivery.ladder import LadderOptions, build_ladder, numbers

            source = click.get_current_context().get_parameter_source
            given = [f"--{n}" for n in ("scale", "crf", "bitrate", "hls", "embed") if source(n) is ParameterSource.COMMANDLINE]
            if given:
                raise InvalidOption(f"{', '.join(given)}: not with --ladder, which sets them (--factors, --lr-crfs, --direct-crfs)")
            seconds = max_seconds if max_seconds is not None else 10.0
            down = down if source("down") is ParameterSource.COMMANDLINE else "bicubic"
            ladder_options = LadderOptions(
                direct_crfs=numbers(direct_crfs, "--direct-crfs"), lr_crfs=numbers(lr_crfs, "--lr-crfs"),
                factors=numbers(factors, "--factors", int), fit=fit, max_seconds=seconds,
                extra=dataclasses.replace(options, down=down, max_seconds=seconds), **_given(codec=codec, preset=preset, threads=threads),
            )  # fmt: skip

            def show_candidate(done) -> None:
                c = done.candidate
                if not quiet:
                    click.echo(f"[{done.done}/{done.total}] {done.name}: {c.size[0]}x{c.size[1]}, {c.bytes} bytes, "
                               f"{c.psnr:.2f} dB, peak {c.bandwidth} bit/s", err=True)  # fmt: skip

            built = build_ladder(master, output, ladder_options, on_progress=show_candidate, runner=runner)
            if as_json:
                click.echo(json.dumps(built.summary()))
            elif not quiet:
                for note in built.skipped:
                    click.echo(f"vsr-pipe: note: skipped {note}", err=True)
                for k, r in enumerate(built.rungs):
                    click.echo(f"rung {k}: {r.folder}/{r.playlist}, {r.bandwidth} bit/s peak, {r.psnr:.2f} dB", err=True)
            return

        def show(done) -> None:
            if quiet:
                return
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

        try:
            summary = run_deliver(master, output, options, runner, on_chunk=show)
        except KeyboardInterrupt as e:  # the fits that ended are kept: say so, as the generic line would not
            signum = getattr(e, "signum", signal.SIGINT)
            raise Interrupted(
                f"interrupted by {signal.Signals(signum).name}: no package written; the chunks fitted so far "
                "are kept beside it, for the same command to reuse",
                signum,
            ) from None
        if as_json:
            click.echo(json.dumps({**summary.__dict__, "gain_db": summary.gain_db}))
        elif not quiet:
            click.echo(
                f"{summary.output}: {summary.frames} frames in {summary.chunks} chunks ({summary.mode}); "
                f"Y-PSNR {summary.generic_psnr:.2f} "
                f"(generic) -> {summary.tuned_psnr:.2f} dB ({summary.gain_db:+.2f}); LR {summary.lr_bytes} bytes + "
                f"weights {summary.weights_bytes} bytes" + (f"; {summary.reused} chunk(s) reused" if summary.reused else ""),
                err=True,
            )


@main.command()
@click.argument("package", metavar="PACKAGE")
@click.option("-o", "--output", required=True, help="Output video file.")
@click.option("--codec", default=None, help=f"Video encoder. [default: {_ENCODE.codec}]")
@click.option("--crf", default=None, type=float, help=f"Constant rate factor. [default: {_ENCODE.crf:g}]")
@click.option("--preset", default=None, help="Encoder preset.")
@click.option("--engine", default=None, help=f"auto, torch, onnxruntime, tensorrt or compile. [default: {_PIPELINE.engine}]")
@click.option("--device", default=None, help=f"auto, cpu, cuda, ... [default: {_PIPELINE.device}]")
@click.option("--threads", default=None, type=int, help="CPU threads for the model (0: all).")
@click.option("--rung", default=None, type=click.IntRange(min=0), help="A ladder: restore this rung (its index in ladder.json).")
@click.option("--bandwidth", default=None, metavar="RATE",
              help="A ladder: the best rung whose peak bandwidth fits RATE bits/s (300k, 1.5M); none fits: the lowest.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def restore(package, output, codec, crf, preset, engine, device, threads, rung, bandwidth, quiet, as_json) -> None:
    """Restore a delivery PACKAGE into -o: a folder, a .mkv with the package attached, or the URL
    of its manifest.json or HLS playlist.

    A ladder folder (deliver --ladder) plays one rung: --rung N, --bandwidth RATE, or else the best.
    A package rung is restored with its weights; a direct rung is decoded and coded again as it is
    (the pipeline at scale 1), into -o with --codec and --crf."""
    from .delivery.client import RestoreOptions
    from .delivery.client import restore as run_restore
    from .delivery.ladder import is_ladder, restore_ladder
    from .progress import ProgressBar

    with _user_errors():
        encode = EncodeOptions(**_given(codec=codec, crf=crf, preset=preset))
        options = RestoreOptions(encode=encode, **_given(engine=engine, device=device, threads=threads))
        bar = ProgressBar(f"{Path(package).name} -> {Path(output).name}", enabled=None if not quiet else False)
        stop, caught = threading.Event(), []
        with _stop_on_signals(stop, caught):
            if rung is not None or bandwidth is not None or is_ladder(package):
                summary = restore_ladder(package, output, options, rung, bandwidth, on_progress=bar.show, stop=stop)
            else:
                summary = run_restore(package, output, options, on_progress=bar.show, stop=stop)
        bar.close()
        for note in summary.notes:
            click.echo(f"vsr-pipe: note: {note}", err=True)
        if summary.weight_stalls and not quiet and not as_json:
            click.echo(
                f"vsr-pipe: {summary.weight_stalls} weight swap(s) waited for their weights "
                f"({summary.weight_wait_s:.1f} s in all)",
                err=True,
            )
        if as_json:
            click.echo(json.dumps(_summary_dict(summary)))
        elif not quiet:
            click.echo(
                f"{summary.output}: {summary.frames} frames {summary.output_size[0]}x{summary.output_size[1]} "
                f"in {summary.seconds:.1f} s ({summary.fps:.1f} fps), {summary.model}",
                err=True,
            )
        if caught:
            held = f"{output} holds the {summary.frames} frames done so far" if summary.frames else "no output written"
            raise Interrupted(f"stopped by {signal.Signals(caught[0]).name}: {held}", caught[0])


if __name__ == "__main__":
    main()
